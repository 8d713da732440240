// Package serde converts keys and values to and from bytes.
//
// It owns the generic [Serde] interface, the primitive serdes (encoded the
// way Kafka's Java serdes encode them), JSON, and Avro in the Confluent wire
// format with schema-registry compatibility checks and schema resolution.
//
// Nothing is rounded: an Avro decimal that does not fit its schema's
// precision and scale is a [*DecimalError] naming the field, when writing
// and when reading, on the struct and generic paths alike (see
// [AvroCodec]).
//
// serde must not import topology, processor, store or the runtime: it is a
// leaf that every other package may use.
package serde
