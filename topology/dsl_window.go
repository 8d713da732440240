package topology

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// This file is the time-window half of the DSL (docs/DSL.md, "Windowed
// aggregations"): window definitions, WindowedBy, the windowed
// aggregations Count, Reduce and WindowedAggregate, and the late-record
// side stream. Suppression (emit final) is in dsl_suppress.go.

// Headers that LateRecords (of TimeWindowedKStream and
// SessionWindowedKStream) puts on each late record.
const (
	// LateReasonHeader says why the record was set aside: "late".
	LateReasonHeader = "brook.late.reason"
	// LateWindowStartHeader and LateWindowEndHeader hold the bounds of the
	// window the record was too late for (for session windows: of the
	// session it would have made), in Unix milliseconds as decimal strings
	// (start inclusive, end exclusive).
	LateWindowStartHeader = "brook.late.window-start"
	LateWindowEndHeader   = "brook.late.window-end"
	// LateStreamTimeHeader holds the task's stream time when the record
	// arrived (for session windows: the session aggregation's), in Unix
	// milliseconds as a decimal string.
	LateStreamTimeHeader = "brook.late.stream-time"
	// LateGraceHeader holds the windows' grace period in milliseconds as
	// a decimal string.
	LateGraceHeader = "brook.late.grace-ms"
)

// Windows is a window definition for WindowedBy: TimeWindows (Tumbling,
// Hopping) or SlidingWindows (Sliding). Other packages cannot implement
// it.
type Windows interface {
	// GracePeriod is how long after a window's end records are still
	// accepted into it, in stream time.
	GracePeriod() time.Duration
	check() error
}

// TimeWindows are fixed-size windows aligned to the epoch, as Kafka
// Streams' TimeWindows: window starts are the multiples of the advance
// (0, advance, 2·advance, ... in Unix milliseconds), each window covers
// [start, start+size) — start inclusive, end exclusive — and a record
// belongs to every window that contains its timestamp, so a record
// exactly at a window's end belongs to the next window. Tumbling windows
// (advance = size) do not overlap; hopping windows overlap, a record
// falling into size/advance windows (rounded up). Create them with
// Tumbling or Hopping and set the grace period with Grace.
type TimeWindows struct {
	size, advance, grace time.Duration
}

// Tumbling returns tumbling windows of the given size: consecutive,
// non-overlapping windows [n·size, (n+1)·size). The grace period is zero
// until set with Grace (Kafka Streams' TimeWindows.ofSizeWithNoGrace).
func Tumbling(size time.Duration) TimeWindows { return TimeWindows{size: size, advance: size} }

// Hopping returns hopping windows of the given size that start every
// advance (0 < advance <= size): windows [n·advance, n·advance+size). The
// grace period is zero until set with Grace.
func Hopping(size, advance time.Duration) TimeWindows {
	return TimeWindows{size: size, advance: advance}
}

// Grace returns the windows with grace period d: a window accepts
// out-of-order records until the stream time reaches its end + d; a record
// for a window whose end + d is at or before the stream time is late.
func (w TimeWindows) Grace(d time.Duration) TimeWindows { w.grace = d; return w }

// Size is the length of each window.
func (w TimeWindows) Size() time.Duration { return w.size }

// Advance is the distance between the starts of consecutive windows
// (Size for tumbling windows).
func (w TimeWindows) Advance() time.Duration { return w.advance }

// GracePeriod is the grace period set with Grace (zero by default).
func (w TimeWindows) GracePeriod() time.Duration { return w.grace }

func (w TimeWindows) check() error {
	switch {
	case w.size < time.Millisecond || w.size%time.Millisecond != 0:
		return fmt.Errorf("window size %v must be a positive whole number of milliseconds", w.size)
	case w.advance < time.Millisecond || w.advance%time.Millisecond != 0 || w.advance > w.size:
		return fmt.Errorf("window advance %v must be a whole number of milliseconds in [1ms, size %v]", w.advance, w.size)
	case w.grace < 0 || w.grace%time.Millisecond != 0:
		return fmt.Errorf("grace period %v must be a non-negative whole number of milliseconds", w.grace)
	}
	return nil
}

// starts returns the starts of the windows that contain ts (Unix ms), in
// ascending order. Windows start at 0 or later, as in Kafka Streams.
func (w TimeWindows) starts(ts int64) []int64 {
	size, adv := w.size.Milliseconds(), w.advance.Milliseconds()
	first := max(0, ts-size+adv)
	first -= first % adv
	out := make([]int64, 0, (size+adv-1)/adv)
	for s := first; s <= ts; s += adv {
		out = append(out, s)
	}
	return out
}

// TimeWindowedKStream is a grouped stream cut into windows: the input of
// the windowed aggregations Count, Reduce and WindowedAggregate, and of
// LateRecords. Get one from WindowedBy.
type TimeWindowedKStream[K, V any] struct {
	g KGroupedStream[K, V]
	w Windows
}

// WindowedBy cuts the grouped stream g into the windows w: TimeWindows
// from Tumbling or Hopping, or SlidingWindows from Sliding. It declares no
// node; the aggregation that follows does.
//
// It is a function, not a method of KGroupedStream, although it keeps the
// types: a method would let Go's generic method sets recurse through
// Windowed[Windowed[K]] (table to stream to grouped stream to windowed
// table), which Go rejects as an instantiation cycle.
func WindowedBy[K, V any](g KGroupedStream[K, V], w Windows) TimeWindowedKStream[K, V] {
	return TimeWindowedKStream[K, V]{g: g, w: w}
}

// Windows returns the window definition.
func (ws TimeWindowedKStream[K, V]) Windows() Windows { return ws.w }

// ValueAndTimestamp is a windowed aggregation's value as its window store
// keeps it: the aggregate and the window's largest record timestamp (the
// timestamp of the window's updates), as Kafka Streams' timestamped window
// stores.
type ValueAndTimestamp[V any] struct {
	Value     V
	Timestamp time.Time
}

// ValueAndTimestampSerde returns the serde of ValueAndTimestamp[V] over
// values: the timestamp as 8 bytes of big-endian Unix milliseconds, then
// the value's bytes (Kafka Streams' layout). A nil value payload stays
// nil (a deletion).
func ValueAndTimestampSerde[V any](values serde.Serde[V]) serde.Serde[ValueAndTimestamp[V]] {
	return vtSerde[V]{values}
}

type vtSerde[V any] struct{ values serde.Serde[V] }

func (s vtSerde[V]) Serialize(topic string, v ValueAndTimestamp[V]) ([]byte, error) {
	vb, err := s.values.Serialize(topic, v.Value)
	if err != nil || vb == nil {
		return nil, err
	}
	out := make([]byte, 0, 8+len(vb))
	out = binary.BigEndian.AppendUint64(out, uint64(v.Timestamp.UnixMilli()))
	return append(out, vb...), nil
}

func (s vtSerde[V]) Deserialize(topic string, data []byte) (ValueAndTimestamp[V], error) {
	if len(data) < 8 {
		return ValueAndTimestamp[V]{}, &serde.DecodeError{Format: "value-and-timestamp", Topic: topic, SchemaID: -1, Kind: serde.ErrTruncated,
			Err: fmt.Errorf("%d bytes, need at least 8", len(data))}
	}
	v, err := s.values.Deserialize(topic, data[8:])
	if err != nil {
		return ValueAndTimestamp[V]{}, err
	}
	return ValueAndTimestamp[V]{Value: v, Timestamp: time.UnixMilli(int64(binary.BigEndian.Uint64(data))).UTC()}, nil
}

// Preflight checks the value serde, if it checks anything.
func (s vtSerde[V]) Preflight(ctx context.Context, topic string) error {
	if p, ok := s.values.(serde.Preflighter); ok {
		return p.Preflight(ctx, topic)
	}
	return nil
}

// WindowedKTable is the result of a windowed aggregation: a table keyed by
// Windowed[K] (record key and window) whose changes are the updates of
// each window's aggregate. It is a KTable (ToStream, Filter... are
// KTable's) that also knows its windows' grace period, for Suppress, and
// its window store, for queries.
type WindowedKTable[K, V any] struct {
	KTable[Windowed[K], V]
	// closeAt returns the stream time (Unix ms) at which the window with
	// the given exclusive end (Unix ms) closes.
	closeAt   func(endMs int64) int64
	window    string // window store name
	aggregate string // aggregation node name
}

// Store returns the aggregation's window store: per key and window start,
// the aggregate and the window's largest record timestamp. ok is false
// for the zero WindowedKTable.
func (t WindowedKTable[K, V]) Store() (ref WindowStoreRef[K, ValueAndTimestamp[V]], ok bool) {
	return WindowStoreRef[K, ValueAndTimestamp[V]]{name: t.window}, t.window != ""
}

// Count declares a windowed count named name: a processor node name and
// a window store name (see WindowedAggregate) holding, per key and
// window, the number of records. The result's updates carry the new count
// of the window each record fell into.
func (ws TimeWindowedKStream[K, V]) Count(name string, opts ...StoreOption) WindowedKTable[K, int64] {
	return windowedAggregate(ws, name, func(K, V, int64, bool) (int64, error) { return 0, nil }, serde.Int64(), opts,
		func(_ K, _ V, agg int64, _ bool) (int64, error) { return agg + 1, nil }, false)
}

// Reduce declares a windowed reduction named name: a processor node name
// and a window store name (see WindowedAggregate). A window's first record
// value is its aggregate; each later value v makes it fn(aggregate, v).
// The stream's value serde (see WithSerdes) stores the aggregates. A
// record with a null value (a nil pointer, slice, map or interface) is
// dropped and logged, as Kafka Streams' reduce does. An error from fn goes
// to the processing error handler.
func (ws TimeWindowedKStream[K, V]) Reduce(name string, fn func(agg, value V) (V, error), opts ...StoreOption) WindowedKTable[K, V] {
	if nilFunc(ws.g.b, name, "reduce", fn == nil) {
		return WindowedKTable[K, V]{}
	}
	values := ws.g.values
	if ws.g.b != nil && !checkSerde(ws.g.b, name, "value", values) {
		return WindowedKTable[K, V]{}
	}
	return windowedAggregate(ws, name, nil, values, opts, func(_ K, v V, agg V, first bool) (V, error) {
		if first {
			return v, nil
		}
		return fn(agg, v)
	}, true)
}

// WindowedAggregate declares a windowed aggregation named name: a
// processor node name that folds each record into the aggregate of every
// window it falls into (a window's aggregate starts as init(), and add
// returns the new one), and a window store name that keeps, per key and
// window start, the aggregate and the window's largest record timestamp
// (aggSerde serializes aggregates).
//
// Semantics, as Kafka Streams' windowed aggregations (docs/DSL.md):
//
//   - Time windows: a record falls into every window that contains its
//     timestamp. Sliding windows: windows are created and updated by the
//     rules of Kafka Streams' KStreamSlidingWindowAggregate (see
//     SlidingWindows and docs/DSL.md).
//   - Stream time is the task's (the largest record timestamp it has
//     seen, the current record's included). A window closes when stream
//     time reaches its end + grace: a record for a closed window is late
//     and dropped for that window only (a hopping window's record still
//     counts in its open windows). Late records are logged at debug level
//     with a running count per task, or sent to LateRecords' stream.
//   - Each update is forwarded as a Change with the window's largest
//     record timestamp as its timestamp and the record's headers.
//   - A record with a null key (a nil pointer, slice, map or interface
//     key) is dropped and logged at warn level with a running count, as
//     Kafka Streams drops null keys; a null value reaches add. A record
//     with a negative timestamp (or none) is an error for the processing
//     error handler.
//
// The store is a window store (LevelDB unless opts has InMemory) with a
// retention of size + grace (sliding windows: 2 × time difference +
// grace, as Kafka Streams),
// whose expired segments are dropped as stream time advances; it is logged
// to "<application-id>-<name>-changelog" unless WithoutLogging is given,
// and its names derive from name only. The table's keys are serialized by
// WindowedSerde over the grouped stream's key serde.
func WindowedAggregate[K, V, A any](ws TimeWindowedKStream[K, V], name string, init func() A, add func(key K, value V, agg A) (A, error), aggSerde serde.Serde[A], opts ...StoreOption) WindowedKTable[K, A] {
	if nilFunc(ws.g.b, name, "initializer", init == nil) || nilFunc(ws.g.b, name, "aggregator", add == nil) {
		return WindowedKTable[K, A]{}
	}
	if ws.g.b != nil && !checkSerde(ws.g.b, name, "aggregate", aggSerde) {
		return WindowedKTable[K, A]{}
	}
	return windowedAggregate(ws, name, func(K, V, A, bool) (A, error) { return init(), nil }, aggSerde, opts,
		func(k K, v V, agg A, _ bool) (A, error) { return add(k, v, agg) }, false)
}

// aggFunc folds a record into a window's aggregate; first is true for the
// window's first record, when agg is the zero A.
type aggFunc[K, V, A any] func(key K, value V, agg A, first bool) (A, error)

// windowedAggregate declares the node and store of a windowed aggregation.
// init, if not nil, gives the first aggregate before add; dropNullValues
// drops records with a null value (reduce).
func windowedAggregate[K, V, A any](ws TimeWindowedKStream[K, V], name string, init aggFunc[K, V, A], aggs serde.Serde[A], opts []StoreOption, add aggFunc[K, V, A], dropNullValues bool) WindowedKTable[K, A] {
	b := ws.g.b
	if b == nil {
		return WindowedKTable[K, A]{}
	}
	if name == "" {
		b.dslProblem("", "a windowed aggregation has an empty name")
		return WindowedKTable[K, A]{}
	}
	if ws.w == nil {
		b.dslProblem(name, "no windows: give WindowedBy a Tumbling, Hopping or Sliding definition")
		return WindowedKTable[K, A]{}
	}
	if err := ws.w.check(); err != nil {
		b.dslProblem(name, "%v", err)
		return WindowedKTable[K, A]{}
	}
	if !checkSerde(b, name, "key", ws.g.keys) {
		return WindowedKTable[K, A]{}
	}
	var retention, size time.Duration
	var closeAt func(int64) int64
	grace := ws.w.GracePeriod().Milliseconds()
	switch w := ws.w.(type) {
	default:
		b.dslProblem(name, "unsupported window definition %T: give WindowedBy the value Tumbling, Hopping or Sliding returns", ws.w)
		return WindowedKTable[K, A]{}
	case TimeWindows:
		retention, size = w.size+w.grace, w.size
		closeAt = func(end int64) int64 { return end + grace }
	case SlidingWindows:
		// Kafka Streams keeps sliding windows for 2·diff + grace: a new
		// record reads windows back to t − 2·diff.
		retention, size = 2*w.diff+w.grace, w.diff+time.Millisecond
		// [s, s+diff] is open while s+diff >= stream time − grace, so it
		// closes at its exclusive end s+diff+1 plus grace.
		closeAt = func(end int64) int64 { return end + grace }
	}
	var sc storeConfig
	for _, o := range opts {
		o(&sc)
	}
	retention = max(retention, sc.retention)
	vts := ValueAndTimestampSerde(aggs)
	// Size lets queries give each window's end.
	ref := WindowStore(b, name, ws.g.keys, vts, store.WindowOptions{Retention: retention, Size: size}, opts...)
	var n Node[Windowed[K], Change[A]]
	switch w := ws.w.(type) {
	case TimeWindows:
		n = process(b, name, []Node[K, V]{ws.g.stream().Node()}, func() processor.Processor[K, V, Windowed[K], Change[A]] {
			return &timeWindowAgg[K, V, A]{ref: ref, w: w, init: init, add: add, dropNullValues: dropNullValues}
		}, []ProcessOption{WithStores(name)})
	case SlidingWindows:
		n = process(b, name, []Node[K, V]{ws.g.stream().Node()}, func() processor.Processor[K, V, Windowed[K], Change[A]] {
			return &slidingWindowAgg[K, V, A]{ref: ref, w: w, init: init, add: add, dropNullValues: dropNullValues}
		}, []ProcessOption{WithStores(name)})
	}
	t := WindowedKTable[K, A]{
		KTable:  KTable[Windowed[K], A]{b: b, name: n.name, keys: WindowedSerde(ws.g.keys), values: aggs},
		closeAt: closeAt, window: name, aggregate: name,
	}
	return t
}

// isNil reports whether v is a nil pointer, slice, map, interface,
// channel or function: the values a serde decodes a Kafka null to for such
// types. Other types have no null.
func isNil[T any](v T) bool {
	rv := reflect.ValueOf(any(v))
	if !rv.IsValid() {
		return true
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface, reflect.Chan, reflect.Func:
		return rv.IsNil()
	}
	return false
}

// dropCounts counts the records a windowed node dropped, per task, for its
// log lines.
type dropCounts struct{ nullKeys, nullValues, late int64 }

// dropNull drops and logs records with a null key (and, with values, a
// null value); it reports whether r was dropped.
func dropNull[K, V, KO, VO any](ctx processor.Context[KO, VO], r processor.Record[K, V], values bool, c *dropCounts) bool {
	what := ""
	md, _ := ctx.RecordMetadata()
	switch {
	case isNil(r.Key) || md.NullKey: // a null key on the wire, whatever the serde made of it
		c.nullKeys++
		what = "key"
		countDrop(ctx, metrics.DropNullKey)
	case values && isNil(r.Value):
		c.nullValues++
		what = "value"
		countDrop(ctx, metrics.DropNullValue)
	default:
		return false
	}
	ctx.Logger().Warn("brook: dropped a record with a null "+what+" (aggregations skip them, as Kafka Streams)", "action", "none if such records are expected; otherwise fix the producer that writes them",
		"topic", md.Topic, "partition", md.Partition, "offset", md.Offset,
		"dropped_null_keys_total", c.nullKeys, "dropped_null_values_total", c.nullValues)
	return true
}

// recordTime returns r's timestamp in Unix ms, or an error naming the
// record when it has none or a negative one (no window holds it).
func recordTime[K, V, KO, VO any](ctx processor.Context[KO, VO], r processor.Record[K, V]) (int64, error) {
	if r.Timestamp.IsZero() || r.Timestamp.UnixMilli() < 0 {
		md, _ := ctx.RecordMetadata()
		return 0, fmt.Errorf("windowed aggregation %q: record at %s[%d]@%d has no valid timestamp (%v); windows need a timestamp at or after the Unix epoch",
			ctx.NodeName(), md.Topic, md.Partition, md.Offset, r.Timestamp)
	}
	return r.Timestamp.UnixMilli(), nil
}

func logLate[KO, VO any](ctx processor.Context[KO, VO], c *dropCounts, key any, ts, start, end, streamTime, grace int64) {
	c.late++
	countDrop(ctx, metrics.DropLate) // per window, as Kafka Streams' dropped-records
	md, _ := ctx.RecordMetadata()
	ctx.Logger().Debug("brook: dropped a late record for a closed window",
		"key", key, "timestamp_ms", ts, "window_start_ms", start, "window_end_ms", end,
		"stream_time_ms", streamTime, "grace_ms", grace,
		"topic", md.Topic, "partition", md.Partition, "offset", md.Offset, "dropped_late_total", c.late)
}

// timeWindowAgg is the processor of a time-windowed aggregation.
type timeWindowAgg[K, V, A any] struct {
	ref            WindowStoreRef[K, ValueAndTimestamp[A]]
	store          store.WindowStore[K, ValueAndTimestamp[A]]
	w              TimeWindows
	init, add      aggFunc[K, V, A]
	dropNullValues bool
	drops          dropCounts
}

func (p *timeWindowAgg[K, V, A]) Init(ctx processor.Context[Windowed[K], Change[A]]) (err error) {
	p.store, err = p.ref.From(ctx)
	return err
}

func (p *timeWindowAgg[K, V, A]) Process(ctx processor.Context[Windowed[K], Change[A]], r processor.Record[K, V]) error {
	if dropNull(ctx, r, p.dropNullValues, &p.drops) {
		return nil
	}
	ts, err := recordTime(ctx, r)
	if err != nil {
		return err
	}
	st := max(ctx.StreamTime().UnixMilli(), ts)
	if err := p.store.AdvanceTime(time.UnixMilli(st)); err != nil {
		return err
	}
	size, grace := p.w.size.Milliseconds(), p.w.grace.Milliseconds()
	for _, start := range p.w.starts(ts) {
		end := start + size
		if st >= end+grace {
			logLate(ctx, &p.drops, r.Key, ts, start, end, st, grace)
			continue
		}
		if err := aggregateInto(ctx, p.store, r, start, end, ts, p.init, p.add); err != nil {
			return err
		}
	}
	return nil
}

// aggregateInto folds r into key r.Key's window [start, end), stores the
// new aggregate with the window's largest record timestamp and forwards
// the update.
func aggregateInto[K, V, A any](ctx processor.Context[Windowed[K], Change[A]], st store.WindowStore[K, ValueAndTimestamp[A]], r processor.Record[K, V], start, end, ts int64, init, add aggFunc[K, V, A]) error {
	startT := time.UnixMilli(start).UTC()
	old, found, err := st.Fetch(r.Key, startT)
	if err != nil {
		return err
	}
	agg, newTs := old.Value, ts
	if found {
		newTs = max(ts, old.Timestamp.UnixMilli())
	} else if init != nil {
		if agg, err = init(r.Key, r.Value, agg, true); err != nil {
			return err
		}
	}
	agg, err = add(r.Key, r.Value, agg, !found && init == nil)
	if err != nil {
		return err
	}
	tsT := time.UnixMilli(newTs).UTC()
	if err := st.Put(r.Key, startT, ValueAndTimestamp[A]{Value: agg, Timestamp: tsT}); err != nil {
		return err
	}
	return ctx.Forward(processor.Record[Windowed[K], Change[A]]{
		Key:   Windowed[K]{Key: r.Key, Start: startT, End: time.UnixMilli(end).UTC()},
		Value: Update(agg), Timestamp: tsT, Headers: r.Headers,
	})
}

func (p *timeWindowAgg[K, V, A]) Close() error { return nil }

// LateRecords declares a processor node named name that receives the
// records the windowed aggregations of ws drop as late: one record per
// window a record was too late for (a record late for two hopping windows
// appears twice), unchanged but for the added headers
// LateReasonHeader = "late", LateWindowStartHeader, LateWindowEndHeader,
// LateStreamTimeHeader and LateGraceHeader. Send them to a side topic
// with To. The node applies the aggregations' rule (stream time at or
// past the window's end + grace) to the records that reach the grouped
// stream, so it sees the same records as late.
//
// For sliding windows, whose windows depend on the records stored, a
// record goes to the late stream once, when its left window [t−diff, t]
// (for t < diff the shared window [0, diff]) has closed; the headers give
// that window with an exclusive end. Like a hopping-window record, it may
// still count in its later windows if they are open.
func (ws TimeWindowedKStream[K, V]) LateRecords(name string) KStream[K, V] {
	b := ws.g.b
	if b == nil {
		return KStream[K, V]{}
	}
	if ws.w == nil {
		b.dslProblem(name, "no windows: give WindowedBy a Tumbling, Hopping or Sliding definition")
		return KStream[K, V]{}
	}
	if err := ws.w.check(); err != nil {
		b.dslProblem(name, "%v", err)
		return KStream[K, V]{}
	}
	switch ws.w.(type) {
	case TimeWindows, SlidingWindows:
	default:
		b.dslProblem(name, "unsupported window definition %T: give WindowedBy the value Tumbling, Hopping or Sliding returns", ws.w)
		return KStream[K, V]{}
	}
	w := ws.w
	return stage(ws.g.stream(), name, false, func(ctx processor.Context[K, V], r processor.Record[K, V]) error {
		if md, _ := ctx.RecordMetadata(); md.NullKey || isNil(r.Key) || r.Timestamp.IsZero() || r.Timestamp.UnixMilli() < 0 {
			return nil // not late: the aggregation drops or refuses it
		}
		ts := r.Timestamp.UnixMilli()
		st := max(ctx.StreamTime().UnixMilli(), ts)
		grace := w.GracePeriod().Milliseconds()
		send := func(start, end int64) error {
			h := r.Headers.Clone().With(LateReasonHeader, []byte("late")).
				With(LateWindowStartHeader, []byte(strconv.FormatInt(start, 10))).
				With(LateWindowEndHeader, []byte(strconv.FormatInt(end, 10))).
				With(LateStreamTimeHeader, []byte(strconv.FormatInt(st, 10))).
				With(LateGraceHeader, []byte(strconv.FormatInt(grace, 10)))
			out := r
			out.Headers = h
			return ctx.Forward(out)
		}
		switch w := w.(type) {
		case TimeWindows:
			size := w.size.Milliseconds()
			for _, start := range w.starts(ts) {
				if st >= start+size+grace {
					if err := send(start, start+size); err != nil {
						return err
					}
				}
			}
		case SlidingWindows:
			if start, end, late := slidingLateWindow(ts, st, w.diff.Milliseconds(), grace); late {
				return send(start, end)
			}
		}
		return nil
	})
}
