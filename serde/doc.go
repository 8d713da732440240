// Package serde converts keys and values to and from bytes.
//
// It owns the generic [Serde] interface, the primitive serdes (encoded the
// way Kafka's Java serdes encode them), JSON, and Avro in the Confluent wire
// format with schema-registry compatibility checks and schema resolution.
//
// serde must not import topology, processor, store or the runtime: it is a
// leaf that every other package may use.
package serde
