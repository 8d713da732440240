package topology

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/brookstream/brook/serde"
)

// Windowed is the key of a windowed aggregation's results: the record key
// and its window, start inclusive, end exclusive (for a session window,
// End is the session's last record time plus one millisecond, so that
// [Start, End) covers the session as for time windows).
type Windowed[K any] struct {
	Key        K
	Start, End time.Time
}

// String renders the key as "<key>@<startMs>-<endMs>", the form of the
// reference outputs in docs/DSL.md.
func (w Windowed[K]) String() string {
	return fmt.Sprintf("%v@%d-%d", w.Key, w.Start.UnixMilli(), w.End.UnixMilli())
}

// WindowedSerde returns the serde of windowed keys over keys: the key's
// bytes, then the window start and end as big-endian epoch milliseconds
// (8 bytes each). Kafka Streams writes only the start for time windows
// (and end, start for session windows); brook writes both bounds so that
// a consumer needs no window size to read a key. Window bounds keep
// millisecond precision.
func WindowedSerde[K any](keys serde.Serde[K]) serde.Serde[Windowed[K]] {
	return windowedSerde[K]{keys: keys}
}

type windowedSerde[K any] struct{ keys serde.Serde[K] }

func (s windowedSerde[K]) Serialize(topic string, w Windowed[K]) ([]byte, error) {
	kb, err := s.keys.Serialize(topic, w.Key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(kb)+16)
	out = append(out, kb...)
	out = binary.BigEndian.AppendUint64(out, uint64(w.Start.UnixMilli()))
	out = binary.BigEndian.AppendUint64(out, uint64(w.End.UnixMilli()))
	return out, nil
}

func (s windowedSerde[K]) Deserialize(topic string, data []byte) (Windowed[K], error) {
	if len(data) < 16 {
		return Windowed[K]{}, &serde.DecodeError{Format: "windowed", Topic: topic, SchemaID: -1, Kind: serde.ErrTruncated,
			Err: fmt.Errorf("windowed key of %d bytes, need at least 16", len(data))}
	}
	n := len(data) - 16
	k, err := s.keys.Deserialize(topic, data[:n])
	if err != nil {
		return Windowed[K]{}, err
	}
	start := int64(binary.BigEndian.Uint64(data[n:]))
	end := int64(binary.BigEndian.Uint64(data[n+8:]))
	return Windowed[K]{Key: k, Start: time.UnixMilli(start).UTC(), End: time.UnixMilli(end).UTC()}, nil
}

// Preflight checks the key serde, if it checks anything.
func (s windowedSerde[K]) Preflight(ctx context.Context, topic string) error {
	if p, ok := s.keys.(serde.Preflighter); ok {
		return p.Preflight(ctx, topic)
	}
	return nil
}
