package serde

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// JSON returns a serde that encodes values with encoding/json.
//
// Serialize writes the compact encoding without a trailing newline.
// Deserialize accepts exactly one JSON value (surrounding whitespace
// allowed); a nil payload (a Kafka null) decodes to the zero T. Invalid or
// trailing input is an [ErrCorrupt] error, input that ends mid-value an
// [ErrTruncated] one, both as a [*DecodeError].
func JSON[T any]() Serde[T] { return jsonSerde[T]{} }

type jsonSerde[T any] struct{}

func (jsonSerde[T]) Serialize(topic string, v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &EncodeError{Format: "json", Topic: topic, Err: err}
	}
	return b, nil
}

func (jsonSerde[T]) Deserialize(topic string, data []byte) (T, error) {
	var v T
	if data == nil {
		return v, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&v); err != nil {
		var zero T
		kind := ErrCorrupt
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			kind = ErrTruncated
		}
		return zero, decodeErr("json", topic, -1, kind, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var zero T
		return zero, decodeErr("json", topic, -1, ErrCorrupt, errors.New("trailing data after JSON value"))
	}
	return v, nil
}
