// Package partition maps record keys to partitions exactly as the Apache
// Kafka Java producer's default partitioner does for keyed records, so that
// brook sinks, repartition topics and interactive-query routing agree with
// Java producers and Kafka Streams about where a key lives.
//
// The Java rule is
//
//	partition = toPositive(murmur2(keyBytes)) % numPartitions
//
// where murmur2 is Kafka's Utils.murmur2 (MurmurHash2, seed 0x9747b28c,
// 32-bit signed arithmetic with Java's wrap-around and unsigned shifts) and
// toPositive clears the sign bit (h & 0x7fffffff; it is not an absolute
// value). The key bytes are the serialized key, so both sides must use the
// same key serde for partitions to line up.
//
// Records without a key are not covered: the Java client then picks a
// "sticky" partition that has nothing to do with the record, and so may
// brook.
package partition
