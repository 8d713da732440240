package serde

import (
	"encoding/binary"
	"fmt"
	"math"
)

// String returns the serde Kafka's Java StringSerializer and
// StringDeserializer use: the string's bytes as they are (UTF-8 for valid Go
// strings). The empty string encodes to an empty, non-nil slice; a nil
// payload (a Kafka null) decodes to "".
func String() Serde[string] { return stringSerde{} }

type stringSerde struct{}

func (stringSerde) Serialize(_ string, v string) ([]byte, error) {
	return append(make([]byte, 0, len(v)), v...), nil
}

func (stringSerde) Deserialize(_ string, data []byte) (string, error) {
	return string(data), nil
}

// Bytes returns the identity serde (Kafka's ByteArraySerializer). A nil
// slice stays nil (a tombstone when used for values). Deserialize returns
// data itself, not a copy.
func Bytes() Serde[[]byte] { return bytesSerde{} }

type bytesSerde struct{}

func (bytesSerde) Serialize(_ string, v []byte) ([]byte, error)      { return v, nil }
func (bytesSerde) Deserialize(_ string, data []byte) ([]byte, error) { return data, nil }

// Int32 returns the serde of Kafka's Java IntegerSerializer: four bytes,
// big-endian two's complement. A nil payload decodes to 0; any other length
// than four is an error ([ErrTruncated] when shorter, [ErrCorrupt] when
// longer).
func Int32() Serde[int32] { return int32Serde{} }

type int32Serde struct{}

func (int32Serde) Serialize(_ string, v int32) ([]byte, error) {
	return binary.BigEndian.AppendUint32(make([]byte, 0, 4), uint32(v)), nil
}

func (int32Serde) Deserialize(topic string, data []byte) (int32, error) {
	if data == nil {
		return 0, nil
	}
	if err := fixedLen("int32", topic, data, 4); err != nil {
		return 0, err
	}
	return int32(binary.BigEndian.Uint32(data)), nil
}

// Int64 returns the serde of Kafka's Java LongSerializer: eight bytes,
// big-endian two's complement. A nil payload decodes to 0; any other length
// than eight is an error.
func Int64() Serde[int64] { return int64Serde{} }

type int64Serde struct{}

func (int64Serde) Serialize(_ string, v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(v)), nil
}

func (int64Serde) Deserialize(topic string, data []byte) (int64, error) {
	if data == nil {
		return 0, nil
	}
	if err := fixedLen("int64", topic, data, 8); err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint64(data)), nil
}

// Float64 returns the serde of Kafka's Java DoubleSerializer: the IEEE 754
// bits, big-endian, eight bytes. Like Java's Double.doubleToLongBits, every
// NaN is written as the canonical NaN 0x7ff8000000000000. A nil payload
// decodes to 0; any other length than eight is an error.
func Float64() Serde[float64] { return float64Serde{} }

type float64Serde struct{}

const canonicalNaN = 0x7ff8000000000000

func (float64Serde) Serialize(_ string, v float64) ([]byte, error) {
	bits := math.Float64bits(v)
	if v != v { // NaN
		bits = canonicalNaN
	}
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), bits), nil
}

func (float64Serde) Deserialize(topic string, data []byte) (float64, error) {
	if data == nil {
		return 0, nil
	}
	if err := fixedLen("float64", topic, data, 8); err != nil {
		return 0, err
	}
	return math.Float64frombits(binary.BigEndian.Uint64(data)), nil
}

func fixedLen(format, topic string, data []byte, n int) error {
	switch {
	case len(data) < n:
		return decodeErr(format, topic, -1, ErrTruncated,
			fmt.Errorf("got %d bytes, want %d", len(data), n))
	case len(data) > n:
		return decodeErr(format, topic, -1, ErrCorrupt,
			fmt.Errorf("got %d bytes, want %d", len(data), n))
	}
	return nil
}
