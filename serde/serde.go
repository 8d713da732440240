package serde

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
