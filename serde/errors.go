package serde

import (
	"errors"
	"fmt"
)

// Kinds of decode failure. Every error returned by a Deserialize method in
// this package matches exactly one of them with [errors.Is], so the
// runtime's deserialization-error handlers can tell bad bytes apart without
// parsing messages.
var (
	// ErrWrongMagicByte means the payload does not start with the Confluent
	// wire-format magic byte 0: it was not written by a registry-aware
	// serializer (or was written by another format entirely).
	ErrWrongMagicByte = errors.New("wrong magic byte")
	// ErrUnknownSchemaID means the registry does not know the schema id
	// found in the payload.
	ErrUnknownSchemaID = errors.New("unknown schema id")
	// ErrTruncated means the payload ended before a complete value was read.
	ErrTruncated = errors.New("truncated payload")
	// ErrCorrupt means the payload is complete but not a valid encoding of
	// a value (bad length, invalid JSON, invalid Avro, trailing bytes, a
	// value that does not resolve to the reader's schema).
	ErrCorrupt = errors.New("corrupt payload")
	// ErrRegistryUnavailable means the schema registry could not be reached
	// or gave no verdict (a time-out, a server error, a 429, an answer
	// that is not the registry's API) for as long as the registry client kept
	// retrying (serde/avro.WithRetry). It says nothing about the payload: brook's
	// runtime never hands such an error to a deserialization, processing
	// or production handler (nor to a dead-letter handler) but stops the
	// application with it, committing only up to the record, so that a
	// restart resumes exactly there. Custom serdes that depend on a remote
	// service may wrap it to get the same treatment.
	ErrRegistryUnavailable = errors.New("schema registry unavailable")
)

// DecodeError describes why a payload could not be deserialized.
//
// Kind is one of [ErrWrongMagicByte], [ErrUnknownSchemaID], [ErrTruncated],
// [ErrCorrupt] or [ErrRegistryUnavailable]; errors.Is matches both Kind and
// the underlying Err.
type DecodeError struct {
	// Format names the serde that failed: "int32", "json", "avro", ...
	Format string
	// Topic is the topic passed to Deserialize.
	Topic string
	// SchemaID is the schema id read from the payload, or -1 when the
	// failure happened before one was read or the format has none.
	SchemaID int
	// Kind classifies the failure; see the type's documentation.
	Kind error
	// Err is the underlying cause, if any.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string {
	msg := fmt.Sprintf("serde: %s: decode topic %q: %v", e.Format, e.Topic, e.Kind)
	if e.SchemaID >= 0 {
		msg += fmt.Sprintf(" (schema id %d)", e.SchemaID)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the kind and the underlying cause.
func (e *DecodeError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func decodeErr(format, topic string, id int, kind, cause error) *DecodeError {
	return &DecodeError{Format: format, Topic: topic, SchemaID: id, Kind: kind, Err: cause}
}

// EncodeError describes why a value could not be serialized.
type EncodeError struct {
	// Format names the serde that failed: "json", "avro", ...
	Format string
	// Topic is the topic passed to Serialize.
	Topic string
	// Err is the underlying cause.
	Err error
}

// Error implements error.
func (e *EncodeError) Error() string {
	return fmt.Sprintf("serde: %s: encode for topic %q: %v", e.Format, e.Topic, e.Err)
}

// Unwrap returns the underlying cause.
func (e *EncodeError) Unwrap() error { return e.Err }
