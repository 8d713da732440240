package processor

import (
	"fmt"
	"time"
)

// Header is one Kafka record header. Keys may repeat within [Headers].
type Header struct {
	Key   string
	Value []byte
}

// Headers are a record's headers in their wire order.
//
// A forwarded record shares its Headers slice with the record it came
// from and with its siblings: a processor that changes headers should
// Clone them first.
type Headers []Header

// Get returns the value of the last header named key and whether one was
// present.
func (h Headers) Get(key string) ([]byte, bool) {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Key == key {
			return h[i].Value, true
		}
	}
	return nil, false
}

// Clone returns a deep copy of h (nil stays nil).
func (h Headers) Clone() Headers {
	if h == nil {
		return nil
	}
	out := make(Headers, len(h))
	for i, x := range h {
		out[i] = Header{Key: x.Key}
		if x.Value != nil {
			out[i].Value = append([]byte{}, x.Value...)
		}
	}
	return out
}

// With returns a copy of h with the header key=value appended; h itself is
// not modified.
func (h Headers) With(key string, value []byte) Headers {
	out := make(Headers, len(h), len(h)+1)
	copy(out, h)
	return append(out, Header{Key: key, Value: value})
}

// Record is one key/value record flowing through a topology.
//
// Timestamp is a time.Time rather than Kafka's int64 milliseconds so that
// processors can use the time package directly; brook keeps millisecond
// precision on the wire, so a timestamp read from or written to Kafka is
// truncated to the millisecond (the TestDriver does the same). The zero
// Timestamp means "no timestamp".
type Record[K, V any] struct {
	Key       K
	Value     V
	Timestamp time.Time
	Headers   Headers
}

// WithValue returns a copy of r carrying value instead of r.Value. It
// keeps the key, timestamp and headers.
func (r Record[K, V]) WithValue(value V) Record[K, V] {
	r.Value = value
	return r
}

// WithKey returns a copy of r carrying key instead of r.Key.
func (r Record[K, V]) WithKey(key K) Record[K, V] {
	r.Key = key
	return r
}

// Rekey returns a record with r's value, timestamp and headers and a key
// of another type. It is a function because methods cannot change type
// parameters.
func Rekey[KOut, K, V any](r Record[K, V], key KOut) Record[KOut, V] {
	return Record[KOut, V]{Key: key, Value: r.Value, Timestamp: r.Timestamp, Headers: r.Headers}
}

// Revalue returns a record with r's key, timestamp and headers and a value
// of another type.
func Revalue[VOut, K, V any](r Record[K, V], value VOut) Record[K, VOut] {
	return Record[K, VOut]{Key: r.Key, Value: value, Timestamp: r.Timestamp, Headers: r.Headers}
}

// TaskID identifies a task: one sub-topology instance for one partition
// (of each of its co-partitioned source topics).
type TaskID struct {
	// SubTopology is the sub-topology's index as numbered by Build.
	SubTopology int
	// Partition is the source partition the task owns.
	Partition int32
}

// String formats the id as "<sub-topology>_<partition>", as Kafka Streams
// does.
func (id TaskID) String() string { return fmt.Sprintf("%d_%d", id.SubTopology, id.Partition) }

// RecordMetadata locates the source record being processed.
type RecordMetadata struct {
	Topic     string
	Partition int32
	Offset    int64
	// NullKey reports that the source record's key was null on the wire
	// (Kafka's null, which a key serde may have turned into its zero
	// value, such as "" for serde.String). Aggregations drop such records
	// as Kafka Streams does, where the key is still the source's.
	NullKey bool
}
