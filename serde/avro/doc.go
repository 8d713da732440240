// Package avro is brook's Avro serde: Avro in the Confluent wire format
// with schema-registry compatibility checks and schema resolution.
//
// [Avro] implements serde.Serde, serde.ContextDeserializer,
// serde.Preflighter and serde.JSONValuer over a [Registry] (brook's own
// REST client for the Confluent schema-registry API). [AvroCodec] is the
// registry-free binary codec for one schema (structs or generic values).
// Decode failures are *serde.DecodeError values whose Kind is one of
// package serde's sentinels (or [ErrSchemaMismatch]).
//
// Nothing is rounded: an Avro decimal that does not fit its schema's
// precision and scale is a [*DecimalError] naming the field, when writing
// and when reading, on the struct and generic paths alike (see
// [AvroCodec]).
//
// # Schema registry outages
//
// An unavailable registry is an infrastructure failure, not bad data. The
// [Registry] tells the registry's verdicts on the data (an unknown schema
// id, a subject without versions, a refused schema) from everything else:
// a refused connection, a time-out ([WithRequestTimeout], 10 s by
// default), an HTTP 5xx or 429, an answer that is not the registry's API.
// Those are serde.ErrRegistryUnavailable and are retried with exponential
// backoff (100 ms doubling up to 5 s) for up to [WithRetry]'s bound (30 s
// by default) before the call fails; a registry that comes back in time
// costs a pause, nothing else. An unknown id is remembered for 10 s and a
// registry found unavailable for a second, so neither a flood of records
// with a bogus id nor a blackholed registry costs a request per record.
// Source records are deserialized through serde.ContextDeserializer, so a
// stopping application does not sit out the wait.
//
// The runtime never hands serde.ErrRegistryUnavailable to an error
// handler: the application stops with it (naming the registry, the subject
// or schema id and the cause), having committed only the records before
// the one that needed the registry, and a restart resumes exactly at it.
//
// avro must not import topology, processor, store or the runtime.
package avro
