package topology

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// This file is suppression (emit final) of windowed tables: Suppress and
// UntilWindowCloses (docs/DSL.md, "Emit final").

// Suppressed configures Suppress; get one from UntilWindowCloses.
type Suppressed struct {
	maxRecords int64
}

// BufferOption bounds a suppression buffer.
type BufferOption func(*Suppressed)

// BufferMaxRecords bounds the suppression buffer to n pending windows. A
// window update that would make the buffer hold more than n windows is
// refused with a *SuppressBufferFullError for the processing error
// handler, after the update has been buffered: the default handler stops
// the application (as Kafka Streams' shutDownWhenFull), and a handler that
// continues keeps the update (the buffer then holds more than n windows
// until they close). Nothing is emitted early and nothing is lost: final
// results stay final. Without it the buffer is unbounded (it lives in a
// store, on disk by default).
func BufferMaxRecords(n int64) BufferOption { return func(s *Suppressed) { s.maxRecords = n } }

// UntilWindowCloses suppresses a windowed table's updates until each
// window closes (stream time reaches its end + grace), then emits the
// window's final aggregate once: Kafka Streams'
// Suppressed.untilWindowCloses.
func UntilWindowCloses(opts ...BufferOption) Suppressed {
	var s Suppressed
	for _, o := range opts {
		o(&s)
	}
	return s
}

// SuppressBufferFullError reports a suppression buffer over its
// BufferMaxRecords bound.
type SuppressBufferFullError struct {
	// Node is the suppression's node, Store its buffer store.
	Node, Store string
	// Records is the number of pending windows, MaxRecords the bound.
	Records, MaxRecords int64
}

// Error implements error.
func (e *SuppressBufferFullError) Error() string {
	return fmt.Sprintf("suppress %q: buffer store %q holds %d pending windows, over its bound of %d (BufferMaxRecords): raise the bound, or shorten the windows or their grace",
		e.Node, e.Store, e.Records, e.MaxRecords)
}

// Suppress declares a processor node named name that holds back the
// table's updates and forwards, once per window, the window's final value
// when the window closes: when the task's stream time reaches the window's
// end + grace, the moment the aggregation stops accepting records for it
// (for a sliding window [s, e]: e + 1ms + grace, its exclusive end plus
// grace; Kafka Streams' suppression emits it at e + grace, while its
// aggregation still accepts a record for it, which could then be emitted
// a second time).
// The final value carries the timestamp and headers of the window's last
// update (its largest record timestamp). Windows are emitted in the order
// of their ends, then of their serialized keys.
//
// Pending windows live in the key-value store name (LevelDB unless opts
// has InMemory), logged to "<application-id>-<name>-changelog", so they
// survive restarts and rebalances; under exactly-once the buffer's writes
// and deletions commit in the same transaction as the emitted finals, so
// finals are neither lost nor repeated. WithoutLogging is refused: a
// buffer without a changelog loses pending windows when its task moves.
// A buffer key is the window end (8 bytes, big-endian, sign bit flipped)
// then the windowed key, so a later update of a window replaces its
// pending value in place and emission reads the buffer from the start,
// stopping at the first window still open (no full scan).
//
// Emission happens when a window update reaches the node and on a
// stream-time punctuation (every millisecond of stream time, so a record
// that advances the task's stream time without reaching the node still
// closes windows). Kafka Streams emits only when an update reaches the
// node; the finals are the same, they may come out earlier.
//
// The result is a table (not queryable: it has no store of its own; query
// the aggregation's window store).
func (t WindowedKTable[K, V]) Suppress(name string, s Suppressed, opts ...StoreOption) KTable[Windowed[K], V] {
	b := t.b
	if b == nil {
		return KTable[Windowed[K], V]{}
	}
	if name == "" {
		b.dslProblem("", "a suppression has an empty name")
		return KTable[Windowed[K], V]{}
	}
	var cfg storeConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.unlogged {
		b.dslProblem(name, "suppression buffer %q cannot be WithoutLogging: pending windows would be lost when the task moves or restarts", name)
		return KTable[Windowed[K], V]{}
	}
	if s.maxRecords < 0 {
		b.dslProblem(name, "BufferMaxRecords %d is negative", s.maxRecords)
	}
	if !checkSerde(b, name, "windowed key", t.keys) || !checkSerde(b, name, "value", t.values) {
		return KTable[Windowed[K], V]{}
	}
	ref := KeyValueStore(b, name, bufKeySerde[K]{t.keys}, bufEntrySerde[V]{t.values}, opts...)
	// Describe the buffer with the user's types, not its internal ones.
	if d, ok := b.storeByName[name]; ok {
		d.spec.KeyType, d.spec.ValueType = typeName[Windowed[K]](), typeName[V]()
	}
	closeAt := t.closeAt
	n := process(b, name, []Node[Windowed[K], Change[V]]{t.Node()}, func() processor.Processor[Windowed[K], Change[V], Windowed[K], Change[V]] {
		return &suppressor[K, V]{ref: ref, closeAt: closeAt, max: s.maxRecords}
	}, []ProcessOption{WithStores(name)})
	return KTable[Windowed[K], V]{b: b, name: n.name, keys: t.keys, values: t.values}
}

// bufKey is a suppression buffer key: the window end, then the windowed
// key.
type bufKey[K any] struct {
	end int64
	key Windowed[K]
}

type bufKeySerde[K any] struct{ keys serde.Serde[Windowed[K]] }

func (s bufKeySerde[K]) Serialize(topic string, k bufKey[K]) ([]byte, error) {
	kb, err := s.keys.Serialize(topic, k.key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 8+len(kb))
	out = binary.BigEndian.AppendUint64(out, uint64(k.end)^(1<<63))
	return append(out, kb...), nil
}

func (s bufKeySerde[K]) Deserialize(topic string, data []byte) (bufKey[K], error) {
	if len(data) < 8 {
		return bufKey[K]{}, &serde.DecodeError{Format: "suppress-buffer-key", Topic: topic, SchemaID: -1, Kind: serde.ErrTruncated,
			Err: fmt.Errorf("%d bytes, need at least 8", len(data))}
	}
	k, err := s.keys.Deserialize(topic, data[8:])
	return bufKey[K]{end: int64(binary.BigEndian.Uint64(data) ^ (1 << 63)), key: k}, err
}

// bufEntry is a pending window: its latest change, with that update's
// timestamp and headers.
type bufEntry[V any] struct {
	change    Change[V]
	timestamp time.Time
	headers   processor.Headers
}

// bufEntrySerde writes an entry as
//
//	timestamp int64 ms BE | flags byte (1: deleted) | uvarint header count |
//	per header: uvarint key length, key, varint value length (-1: nil), value |
//	value bytes (the rest)
type bufEntrySerde[V any] struct{ values serde.Serde[V] }

var errBadBufEntry = errors.New("malformed suppression buffer entry")

func (s bufEntrySerde[V]) Serialize(topic string, e bufEntry[V]) ([]byte, error) {
	out := binary.BigEndian.AppendUint64(nil, uint64(e.timestamp.UnixMilli()))
	var flags byte
	if e.change.Deleted {
		flags = 1
	}
	out = append(out, flags)
	out = binary.AppendUvarint(out, uint64(len(e.headers)))
	for _, h := range e.headers {
		out = binary.AppendUvarint(out, uint64(len(h.Key)))
		out = append(out, h.Key...)
		if h.Value == nil {
			out = binary.AppendVarint(out, -1)
			continue
		}
		out = binary.AppendVarint(out, int64(len(h.Value)))
		out = append(out, h.Value...)
	}
	if !e.change.Deleted {
		vb, err := s.values.Serialize(topic, e.change.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, vb...)
	}
	return out, nil
}

func (s bufEntrySerde[V]) Deserialize(topic string, data []byte) (bufEntry[V], error) {
	bad := func(what string) (bufEntry[V], error) {
		return bufEntry[V]{}, &serde.DecodeError{Format: "suppress-buffer-entry", Topic: topic, SchemaID: -1, Kind: serde.ErrTruncated,
			Err: fmt.Errorf("%w: %s", errBadBufEntry, what)}
	}
	if len(data) < 9 {
		return bad(fmt.Sprintf("%d bytes, need at least 9", len(data)))
	}
	e := bufEntry[V]{timestamp: time.UnixMilli(int64(binary.BigEndian.Uint64(data))).UTC()}
	e.change.Deleted = data[8]&1 != 0
	rest := data[9:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)) {
		return bad("header count")
	}
	rest = rest[k:]
	for range n {
		kl, k := binary.Uvarint(rest)
		if k <= 0 || kl > uint64(len(rest)-k) {
			return bad("header key")
		}
		key := string(rest[k : k+int(kl)])
		rest = rest[k+int(kl):]
		vl, k := binary.Varint(rest)
		if k <= 0 || vl < -1 || vl > int64(len(rest)-k) {
			return bad("header value")
		}
		rest = rest[k:]
		var val []byte
		if vl >= 0 {
			val = append([]byte{}, rest[:vl]...)
			rest = rest[vl:]
		}
		e.headers = append(e.headers, processor.Header{Key: key, Value: val})
	}
	if !e.change.Deleted {
		v, err := s.values.Deserialize(topic, rest)
		if err != nil {
			return bufEntry[V]{}, err
		}
		e.change.Value = v
	}
	return e, nil
}

// suppressor is the processor of Suppress.
type suppressor[K, V any] struct {
	ref     KeyValueStoreRef[bufKey[K], bufEntry[V]]
	buf     store.KeyValueStore[bufKey[K], bufEntry[V]]
	closeAt func(endMs int64) int64
	max     int64
	ctx     processor.Context[Windowed[K], Change[V]]

	// next is the earliest close time of a pending window (MaxInt64 when
	// none), valid when nextKnown; it spares a store read per record.
	next      int64
	nextKnown bool
	// records counts the pending windows (for the bound), valid when
	// counted.
	records int64
	counted bool
}

// evictBatch bounds how many due windows are held in memory at once.
const evictBatch = 1000

func (p *suppressor[K, V]) Init(ctx processor.Context[Windowed[K], Change[V]]) (err error) {
	p.ctx = ctx
	if p.buf, err = p.ref.From(ctx); err != nil {
		return err
	}
	_, err = ctx.Schedule(time.Millisecond, processor.StreamTime, func(now time.Time) error { return p.evict(now) })
	return err
}

func (p *suppressor[K, V]) Process(_ processor.Context[Windowed[K], Change[V]], r processor.Record[Windowed[K], Change[V]]) error {
	end := r.Key.End.UnixMilli()
	k := bufKey[K]{end: end, key: r.Key}
	if p.max > 0 {
		if err := p.count(); err != nil {
			return err
		}
		_, found, err := p.buf.Get(k)
		if err != nil {
			return err
		}
		if !found {
			p.records++
		}
	}
	if err := p.buf.Put(k, bufEntry[V]{change: r.Value, timestamp: r.Timestamp, headers: r.Headers}); err != nil {
		return err
	}
	if c := p.closeAt(end); p.nextKnown && c < p.next {
		p.next = c
	}
	if err := p.evict(p.ctx.StreamTime()); err != nil {
		return err
	}
	if p.max > 0 && p.records > p.max {
		return &SuppressBufferFullError{Node: p.ctx.NodeName(), Store: p.buf.Name(), Records: p.records, MaxRecords: p.max}
	}
	return nil
}

// count counts the pending windows once per task (after a restart the
// buffer holds what its changelog restored).
func (p *suppressor[K, V]) count() error {
	if p.counted {
		return nil
	}
	it, err := p.buf.All()
	if err != nil {
		return err
	}
	var n int64
	for it.Next() {
		n++
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return err
	}
	p.records, p.counted = n, true
	return nil
}

type pending[K, V any] struct {
	k bufKey[K]
	e bufEntry[V]
}

// evict emits and deletes, in buffer order, every window whose close time
// is at or before streamTime.
func (p *suppressor[K, V]) evict(streamTime time.Time) error {
	if streamTime.IsZero() {
		return nil
	}
	st := streamTime.UnixMilli()
	if p.nextKnown && st < p.next {
		return nil
	}
	for {
		due, next, err := p.due(st)
		if err != nil {
			return err
		}
		for _, d := range due {
			// Forward first: if it fails, the window stays pending.
			if err := p.ctx.Forward(processor.Record[Windowed[K], Change[V]]{
				Key: d.k.key, Value: d.e.change, Timestamp: d.e.timestamp, Headers: d.e.headers,
			}); err != nil {
				return err
			}
			if err := p.buf.Delete(d.k); err != nil {
				return err
			}
			if p.counted {
				p.records--
			}
		}
		if len(due) < evictBatch {
			p.next, p.nextKnown = next, true
			return nil
		}
	}
}

// due reads up to evictBatch windows closed at st from the start of the
// buffer, and the close time of the first open one (MaxInt64 if none).
func (p *suppressor[K, V]) due(st int64) ([]pending[K, V], int64, error) {
	it, err := p.buf.All()
	if err != nil {
		return nil, 0, err
	}
	var out []pending[K, V]
	next := int64(math.MaxInt64)
	for len(out) < evictBatch && it.Next() {
		k := it.Key()
		if c := p.closeAt(k.end); c > st {
			next = c
			break
		}
		out = append(out, pending[K, V]{k: k, e: it.Value()})
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return nil, 0, err
	}
	return out, next, nil
}

func (p *suppressor[K, V]) Close() error { return nil }
