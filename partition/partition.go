package partition

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/IBM/sarama"
)

// murmur2 constants of Kafka's Utils.murmur2.
const (
	seed uint32 = 0x9747b28c
	m    uint32 = 0x5bd1e995
	r           = 24
)

// Murmur2 returns Kafka's Utils.murmur2 of data as the Java int it computes.
//
// Java's int arithmetic wraps modulo 2^32 and ">>>" is an unsigned shift, so
// the computation is done on uint32 and only the result is reinterpreted as
// a signed value.
func Murmur2(data []byte) int32 {
	length := len(data)
	// Java: int h = seed ^ length. The length is an int; for slices longer
	// than 2^31-1 Java could not hold the array at all, so truncation to
	// 32 bits is the faithful choice.
	h := seed ^ uint32(length)

	n := length / 4
	for i := range n {
		j := i * 4
		// Little-endian assembly of four bytes, as Java's
		// (b0 & 0xff) + ((b1 & 0xff) << 8) + ((b2 & 0xff) << 16) + ((b3 & 0xff) << 24).
		k := uint32(data[j]) | uint32(data[j+1])<<8 | uint32(data[j+2])<<16 | uint32(data[j+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}

	// The trailing 1-3 bytes fall through from the highest to the lowest,
	// as the Java switch does.
	tail := data[n*4:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}

	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// ToPositive is Kafka's Utils.toPositive: it clears the sign bit. It is not
// math.Abs: ToPositive(-1) is 2147483647, and ToPositive(MinInt32) is 0.
func ToPositive(h int32) int32 {
	return h & 0x7fffffff
}

// ErrNoPartitions is returned when a key is partitioned over zero or fewer
// partitions.
var ErrNoPartitions = errors.New("partition: number of partitions must be positive")

// ForKey returns the partition that Kafka's Java default partitioner picks
// for the serialized key keyBytes among numPartitions partitions. It fails
// only when numPartitions is not positive.
func ForKey(keyBytes []byte, numPartitions int32) (int32, error) {
	if numPartitions <= 0 {
		return -1, fmt.Errorf("%w: got %d", ErrNoPartitions, numPartitions)
	}
	return ToPositive(Murmur2(keyBytes)) % numPartitions, nil
}

// NewSaramaPartitioner is a sarama.PartitionerConstructor whose partitioners
// place keyed messages with ForKey (the Java default partitioner). A message
// with a nil key goes to a random partition, like sarama's hash
// partitioners; a key that fails to encode gives its error.
//
// It behaves like sarama.NewMurmur2Partitioner (the tests check that they
// agree); brook uses its own so that sinks, repartitioning and
// interactive-query routing share one implementation.
func NewSaramaPartitioner(topic string) sarama.Partitioner {
	_ = topic // the placement does not depend on the topic
	return saramaPartitioner{}
}

var _ sarama.PartitionerConstructor = NewSaramaPartitioner

type saramaPartitioner struct{}

// Partition implements sarama.Partitioner.
func (saramaPartitioner) Partition(msg *sarama.ProducerMessage, numPartitions int32) (int32, error) {
	if numPartitions <= 0 {
		return -1, fmt.Errorf("%w: got %d for topic %q", ErrNoPartitions, numPartitions, msg.Topic)
	}
	if msg.Key == nil {
		return rand.Int32N(numPartitions), nil
	}
	key, err := msg.Key.Encode()
	if err != nil {
		return -1, fmt.Errorf("partition: encode key for topic %q: %w", msg.Topic, err)
	}
	if key == nil {
		// An encoder that yields no bytes writes a null key on the wire,
		// which the Java client treats as "no key".
		return rand.Int32N(numPartitions), nil
	}
	return ForKey(key, numPartitions)
}

// RequiresConsistency implements sarama.Partitioner: a keyed message must go
// to the partition chosen for it even if that partition is unavailable.
func (saramaPartitioner) RequiresConsistency() bool { return true }

// MessageRequiresConsistency implements sarama.DynamicConsistencyPartitioner:
// only keyless messages may be placed on any available partition.
func (saramaPartitioner) MessageRequiresConsistency(msg *sarama.ProducerMessage) bool {
	return msg.Key != nil
}

var _ sarama.DynamicConsistencyPartitioner = saramaPartitioner{}
