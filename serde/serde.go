package serde

import "context"

// Serde converts values of type T to and from bytes for one topic.
//
// The topic is passed so that serdes that depend on it (the Avro serde's
// topic subject-name strategy) can use it; most serdes ignore it.
// Implementations must be safe for concurrent use.
type Serde[T any] interface {
	// Serialize encodes v. A nil slice with a nil error means "no bytes"
	// (a Kafka null), which the runtime writes as a tombstone.
	Serialize(topic string, v T) ([]byte, error)
	// Deserialize decodes data. It must never panic on arbitrary input;
	// bad bytes give an error that describes what was wrong.
	Deserialize(topic string, data []byte) (T, error)
}

// ContextDeserializer is implemented by serdes whose Deserialize may wait
// for an external system, as the Avro serde (package serde/avro) waits out an unavailable
// schema registry. The runtime deserializes source records through it,
// with a context that ends when the task stops (shutdown, rebalance, a
// fatal error elsewhere), so such a wait does not hold a stopping
// application up. A serde that gives up waiting returns an error that
// matches both [ErrRegistryUnavailable] and ctx's error.
//
// Custom serdes that depend on a remote service should wrap
// [ErrRegistryUnavailable] in their errors when it cannot be reached: the
// runtime then treats the failure as an outage (stop, commit up to the
// record, resume there after a restart) and never hands it to the
// deserialization or dead-letter handler as bad data.
type ContextDeserializer[T any] interface {
	// DeserializeContext is Deserialize with a context bounding any wait.
	DeserializeContext(ctx context.Context, topic string, data []byte) (T, error)
}

// Preflighter is implemented by serdes that must check something with an
// external system before use. The runtime calls Preflight on every key and
// value serde of every source and sink (type-asserting each Serde) before
// it joins its consumer group, and refuses to start on an error.
type Preflighter interface {
	// Preflight checks that the serde can be used for topic.
	Preflight(ctx context.Context, topic string) error
}

// JSONValuer is implemented by serdes whose values render as JSON better
// through the serde than through encoding/json (Avro: by the schema's
// field names and types). Interactive queries use it to answer with JSON.
type JSONValuer[T any] interface {
	// ValueJSON returns v as a JSON document.
	ValueJSON(v T) ([]byte, error)
}
