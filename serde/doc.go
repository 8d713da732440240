// Package serde converts keys and values to and from bytes.
//
// It owns the generic [Serde] interface, the primitive serdes (encoded the
// way Kafka's Java serdes encode them), JSON, the decode and encode error
// types every serde returns, and the small interfaces the runtime discovers
// on a serde by type assertion: [Preflighter] (checked before the app
// joins its consumer group), [ContextDeserializer] (a deserialization that
// may wait for a remote system) and [JSONValuer] (interactive queries).
//
// Avro in the Confluent wire format, its codec and the schema-registry
// client live in package serde/avro, which implements those interfaces.
// Keeping them apart keeps this package light: a program that only uses
// primitives or JSON links neither goavro nor an HTTP client.
//
// # Schema registry outages
//
// An unavailable registry is an infrastructure failure, not bad data. A
// serde that cannot reach the remote system it depends on wraps
// [ErrRegistryUnavailable]; the runtime never hands such an error to an
// error handler: the application stops with it, having committed only the
// records before the one that needed the registry, and a restart resumes
// exactly at it. serde/avro's registry client retries such failures for a
// bounded time first (see its package documentation).
//
// serde must not import topology, processor, store or the runtime, nor
// goavro, goleveldb or net/http: it is a light leaf that every other
// package may use (imports_test.go at the module root checks this).
package serde
