package topology

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// This file is the stream–stream half of the DSL's joins (docs/DSL.md,
// "Stream–stream joins"): JoinWindows and the windowed joins JoinStreams,
// LeftJoinStreams and OuterJoinStreams, after Kafka Streams'
// KStreamKStreamJoin with the outer-join store of KIP-633.
//
// Both inputs reach one processor node (through a pass-through node per
// side that tags each record with its side), which keeps each side's
// records in a window store and, for left and outer joins, the records
// still without a match in a key-value store ordered by time. Sharing the
// stores puts both inputs in one sub-topology, so their topics must be
// co-partitioned (checked at start-up); key-changed inputs are
// repartitioned first.

// JoinWindows says which records of two streams join: a left record at
// time t joins the right records of the same key whose timestamps are in
// [t − before, t + after], both ends included (so a right record at t'
// joins the left records in [t' − after, t' + before]); and how long
// after a record's window ends out-of-order records are still accepted
// (the grace period). It is Kafka Streams' JoinWindows: JoinWindow(d) is
// ofTimeDifferenceWithNoGrace(d), JoinWindow(d).Grace(g) is
// ofTimeDifferenceAndGrace(d, g), and Before and After change one bound.
// The zero JoinWindows joins records with equal timestamps only.
type JoinWindows struct {
	before, after, grace time.Duration
}

// JoinWindow returns join windows of d before and after each left
// record, with no grace period: records join when their timestamps are at
// most d apart.
func JoinWindow(d time.Duration) JoinWindows { return JoinWindows{before: d, after: d} }

// Before returns the windows with d before each left record: a left
// record at t joins right records from t − d on. The after bound is kept.
func (w JoinWindows) Before(d time.Duration) JoinWindows { w.before = d; return w }

// After returns the windows with d after each left record: a left record
// at t joins right records up to t + d. The before bound is kept.
func (w JoinWindows) After(d time.Duration) JoinWindows { w.after = d; return w }

// Grace returns the windows with grace period d: a record whose window
// (see JoinWindows) ended more than d of stream time ago is late and
// dropped.
func (w JoinWindows) Grace(d time.Duration) JoinWindows { w.grace = d; return w }

// Bounds returns the before and after bounds.
func (w JoinWindows) Bounds() (before, after time.Duration) { return w.before, w.after }

// GracePeriod returns the grace period (zero by default).
func (w JoinWindows) GracePeriod() time.Duration { return w.grace }

func (w JoinWindows) check() error {
	whole := func(d time.Duration) bool { return d >= 0 && d%time.Millisecond == 0 }
	switch {
	case !whole(w.before):
		return fmt.Errorf("join window before bound %v must be a non-negative whole number of milliseconds", w.before)
	case !whole(w.after):
		return fmt.Errorf("join window after bound %v must be a non-negative whole number of milliseconds", w.after)
	case !whole(w.grace):
		return fmt.Errorf("join window grace period %v must be a non-negative whole number of milliseconds", w.grace)
	case w.before+w.after+w.grace >= time.Duration(math.MaxInt64/2):
		return fmt.Errorf("join window %v before, %v after and %v grace is too long", w.before, w.after, w.grace)
	}
	return nil
}

// StreamJoinOption configures a stream–stream join.
type StreamJoinOption func(*streamJoinConfig)

type streamJoinConfig struct {
	keys, left, right any
	stores            []StoreOption
}

// StreamJoinSerdes gives the serdes of a stream–stream join's stores (and
// of the repartition topics of key-changed inputs): the key serde and each
// side's value serde. Streams from Stream, and operations that keep a
// type, carry their serdes, so this is needed only after an operation that
// changed a type. Build reports serdes of the wrong types.
func StreamJoinSerdes[K, V1, V2 any](keys serde.Serde[K], left serde.Serde[V1], right serde.Serde[V2]) StreamJoinOption {
	return func(c *streamJoinConfig) { c.keys, c.left, c.right = keys, left, right }
}

// StreamJoinStores applies opts to every store of a stream–stream join:
// InMemory keeps them in memory (restored from their changelogs after a
// restart). WithoutLogging is refused: a join whose buffers are not logged
// loses records when its task moves. WithRetention is ignored: the join
// keeps records exactly as long as they can still join.
func StreamJoinStores(opts ...StoreOption) StreamJoinOption {
	return func(c *streamJoinConfig) { c.stores = append(c.stores, opts...) }
}

// JoinStreams declares an inner windowed join named name of left and
// right: for every pair of records with equal keys whose timestamps fit
// the join windows w (a left record at t and a right record in
// [t − before, t + after]), one record joiner(key, leftValue, rightValue)
// with the larger of the two timestamps and the headers of the record
// that arrived second. Records late beyond the grace period are dropped
// and logged.
//
// Declared: a pass-through node "<name>-left" and "<name>-right" per side,
// the join node name, the window stores "<name>-this-join-store" (left
// records) and "<name>-other-join-store" (right records), each logged to
// "<application-id>-<store>-changelog", and for a key-changed input the
// repartition step "<name>-left" or "<name>-right" (topic
// "<application-id>-<name>-left-repartition"...). The inputs must be
// co-partitioned; the App checks it at start-up. docs/DSL.md
// ("Stream–stream joins") has the semantics, compared with Kafka Streams.
// An error from joiner goes to the processing error handler.
func JoinStreams[K, V1, V2, VR any](left KStream[K, V1], right KStream[K, V2], name string, w JoinWindows,
	joiner func(key K, left V1, right V2) (VR, error), opts ...StreamJoinOption) KStream[K, VR] {
	b := builderOf(left.b, right.b)
	if nilFunc(b, name, "joiner", joiner == nil) {
		return KStream[K, VR]{}
	}
	return streamJoin(left, right, name, w, false, false, func(k K, l V1, _ bool, r V2, _ bool) (VR, error) {
		return joiner(k, l, r)
	}, opts)
}

// LeftJoinStreams declares a left windowed join named name: as
// JoinStreams, and a left record that joins no right record is forwarded
// once as joiner(key, leftValue, zero, false), with its own timestamp and
// headers, when its window has closed and no right record can still
// match it: when stream time passes t + before + after + grace. The
// records waiting for that live in a third store,
// "<name>-outer-shared-join-store", ordered by time; a left record that
// finds a match before then is never forwarded unmatched.
func LeftJoinStreams[K, V1, V2, VR any](left KStream[K, V1], right KStream[K, V2], name string, w JoinWindows,
	joiner func(key K, left V1, right V2, rightFound bool) (VR, error), opts ...StreamJoinOption) KStream[K, VR] {
	b := builderOf(left.b, right.b)
	if nilFunc(b, name, "joiner", joiner == nil) {
		return KStream[K, VR]{}
	}
	return streamJoin(left, right, name, w, true, false, func(k K, l V1, _ bool, r V2, rok bool) (VR, error) {
		return joiner(k, l, r, rok)
	}, opts)
}

// OuterJoinStreams declares an outer windowed join named name: as
// LeftJoinStreams, and a right record without a match is forwarded as
// joiner(key, zero, false, rightValue, true) on the same terms as an
// unmatched left record (leftFound false). Matched pairs reach joiner with
// both flags true.
func OuterJoinStreams[K, V1, V2, VR any](left KStream[K, V1], right KStream[K, V2], name string, w JoinWindows,
	joiner func(key K, left V1, leftFound bool, right V2, rightFound bool) (VR, error), opts ...StreamJoinOption) KStream[K, VR] {
	b := builderOf(left.b, right.b)
	if nilFunc(b, name, "joiner", joiner == nil) {
		return KStream[K, VR]{}
	}
	return streamJoin(left, right, name, w, true, true, joiner, opts)
}

// builderOf returns the Builder of the first handle that has one.
func builderOf(bs ...*Builder) *Builder {
	for _, b := range bs {
		if b != nil {
			return b
		}
	}
	return nil
}

// fullJoiner is the joiner of all join kinds: a missing side comes with
// its zero value and a false flag.
type fullJoiner[K, V1, V2, VR any] func(key K, left V1, leftFound bool, right V2, rightFound bool) (VR, error)

// joinInput is a record of either side, as the join node receives it.
type joinInput[V1, V2 any] struct {
	right bool
	l     V1
	r     V2
}

func streamJoin[K, V1, V2, VR any](left KStream[K, V1], right KStream[K, V2], name string, w JoinWindows,
	leftOuter, rightOuter bool, joiner fullJoiner[K, V1, V2, VR], opts []StreamJoinOption) KStream[K, VR] {
	b := builderOf(left.b, right.b)
	if b == nil {
		return KStream[K, VR]{}
	}
	if name == "" {
		b.dslProblem("", "a stream-stream join has an empty name")
		return KStream[K, VR]{}
	}
	if left.b == nil || right.b == nil || left.b != right.b {
		b.dslProblem(name, "both inputs of a join must be streams of the same Builder")
		return KStream[K, VR]{}
	}
	if err := w.check(); err != nil {
		b.dslProblem(name, "%v", err)
		return KStream[K, VR]{}
	}
	var c streamJoinConfig
	for _, o := range opts {
		o(&c)
	}
	keys := left.keys
	if keys == nil {
		keys = right.keys
	}
	lv, rv := left.values, right.values
	if c.keys != nil {
		k, ok1 := c.keys.(serde.Serde[K])
		l, ok2 := c.left.(serde.Serde[V1])
		r, ok3 := c.right.(serde.Serde[V2])
		if !ok1 || !ok2 || !ok3 {
			b.dslProblem(name, "StreamJoinSerdes gives %T, %T and %T, but the join's keys are %s and its values %s and %s",
				c.keys, c.left, c.right, typeName[K](), typeName[V1](), typeName[V2]())
			return KStream[K, VR]{}
		}
		keys, lv, rv = k, l, r
	}
	if !checkSerde(b, name, "key", keys) || !checkSerde(b, name, "left value", lv) || !checkSerde(b, name, "right value", rv) {
		return KStream[K, VR]{}
	}
	var sc storeConfig
	for _, o := range c.stores {
		o(&sc)
	}
	if sc.unlogged {
		b.dslProblem(name, "stream-stream join %q cannot be WithoutLogging: its buffered records would be lost when the task moves or restarts", name)
		return KStream[K, VR]{}
	}
	var storeOpts []StoreOption
	if sc.inMemory {
		storeOpts = append(storeOpts, InMemory())
	}
	// Co-partitioning: a key-changed input is repartitioned by its new
	// key first (Kafka Streams' "<name>-left-repartition").
	if left.keyChanged {
		left = repartition(left, name+"-left", 0, keys, lv)
	}
	if right.keyChanged {
		right = repartition(right, name+"-right", 0, keys, rv)
	}
	if left.b == nil || right.b == nil {
		return KStream[K, VR]{}
	}
	before, after, grace := w.before.Milliseconds(), w.after.Milliseconds(), w.grace.Milliseconds()
	// A record is kept while a record of the other side that joins it
	// can still arrive on time: until stream time passes its time +
	// before + after + grace.
	wo := store.WindowOptions{Retention: w.before + w.after + w.grace + time.Millisecond}
	thisName, otherName, sharedName := name+"-this-join-store", name+"-other-join-store", name+"-outer-shared-join-store"
	thisRef := WindowStore(b, thisName, keys, joinValuesSerde[V1]{lv}, wo, storeOpts...)
	otherRef := WindowStore(b, otherName, keys, joinValuesSerde[V2]{rv}, wo, storeOpts...)
	describeStore(b, thisName, typeName[K](), typeName[V1]())
	describeStore(b, otherName, typeName[K](), typeName[V2]())
	stores := []string{thisName, otherName}
	var sharedRef KeyValueStoreRef[joinPendingKey[K], joinPending[V1, V2]]
	if leftOuter || rightOuter {
		sharedRef = KeyValueStore(b, sharedName, joinPendingKeySerde[K]{keys}, joinPendingSerde[V1, V2]{lv, rv}, storeOpts...)
		describeStore(b, sharedName, typeName[K](), typeName[V1]()+" or "+typeName[V2]())
		stores = append(stores, sharedName)
	}
	l := stage(left, name+"-left", false, func(ctx processor.Context[K, joinInput[V1, V2]], r processor.Record[K, V1]) error {
		return ctx.Forward(processor.Record[K, joinInput[V1, V2]]{Key: r.Key, Value: joinInput[V1, V2]{l: r.Value}, Timestamp: r.Timestamp, Headers: r.Headers})
	})
	r := stage(right, name+"-right", false, func(ctx processor.Context[K, joinInput[V1, V2]], r processor.Record[K, V2]) error {
		return ctx.Forward(processor.Record[K, joinInput[V1, V2]]{Key: r.Key, Value: joinInput[V1, V2]{right: true, r: r.Value}, Timestamp: r.Timestamp, Headers: r.Headers})
	})
	if l.b == nil || r.b == nil {
		return KStream[K, VR]{}
	}
	n := process(b, name, []Node[K, joinInput[V1, V2]]{l.Node(), r.Node()}, func() processor.Processor[K, joinInput[V1, V2], K, VR] {
		return &streamJoiner[K, V1, V2, VR]{
			before: before, after: after, grace: grace, leftOuter: leftOuter, rightOuter: rightOuter, joiner: joiner,
			thisRef: thisRef, otherRef: otherRef, sharedRef: sharedRef,
		}
	}, []ProcessOption{WithStores(stores...)})
	return KStream[K, VR]{b: b, name: n.name, keys: keys}
}

// describeStore sets the types Describe shows for an internal store.
func describeStore(b *Builder, name, keyType, valueType string) {
	if d, ok := b.storeByName[name]; ok {
		d.spec.KeyType, d.spec.ValueType = keyType, valueType
	}
}

// streamJoiner is the processor of a stream–stream join.
type streamJoiner[K, V1, V2, VR any] struct {
	before, after, grace  int64 // ms
	leftOuter, rightOuter bool
	joiner                fullJoiner[K, V1, V2, VR]
	thisRef               WindowStoreRef[K, []V1]
	otherRef              WindowStoreRef[K, []V2]
	sharedRef             KeyValueStoreRef[joinPendingKey[K], joinPending[V1, V2]]

	ctx    processor.Context[K, VR]
	this   store.WindowStore[K, []V1]
	other  store.WindowStore[K, []V2]
	shared store.KeyValueStore[joinPendingKey[K], joinPending[V1, V2]] // nil for inner joins

	// next is the earliest time at which a pending record is due
	// (MaxInt64 when none), valid when nextKnown: it spares a store read
	// per record.
	next      int64
	nextKnown bool
	drops     struct{ nullKeys, nullValues, late int64 }
}

func (p *streamJoiner[K, V1, V2, VR]) Init(ctx processor.Context[K, VR]) (err error) {
	p.ctx = ctx
	if p.this, err = p.thisRef.From(ctx); err != nil {
		return err
	}
	if p.other, err = p.otherRef.From(ctx); err != nil {
		return err
	}
	if p.sharedRef.name == "" {
		return nil
	}
	if p.shared, err = p.sharedRef.From(ctx); err != nil {
		return err
	}
	// A record that advances stream time without reaching the join
	// (another source of the sub-topology) still closes windows.
	_, err = ctx.Schedule(time.Millisecond, processor.StreamTime, func(now time.Time) error { return p.emitDue(now.UnixMilli()) })
	return err
}

// dueAt is the stream time at which a pending record at ts is forwarded
// unmatched: the first at which no record of the other side that would
// join it can arrive on time (its window ends at most before + after
// after ts, and it is accepted for grace after that).
func (p *streamJoiner[K, V1, V2, VR]) dueAt(ts int64) int64 {
	return ts + p.before + p.after + p.grace + 1
}

func (p *streamJoiner[K, V1, V2, VR]) Process(ctx processor.Context[K, VR], r processor.Record[K, joinInput[V1, V2]]) error {
	in := r.Value
	outer, side := p.leftOuter, "left"
	if in.right {
		outer, side = p.rightOuter, "right"
	}
	md, _ := ctx.RecordMetadata()
	valueNil := (!in.right && isNil(in.l)) || (in.right && isNil(in.r))
	if valueNil {
		// Kafka Streams skips records with a null value: null stands for
		// a missing side in its joiners.
		p.drops.nullValues++
		countDrop(ctx, metrics.DropNullValue)
		ctx.Logger().Warn("brook: join dropped a record with a null value (as Kafka Streams)", "action", "none if such records are expected; otherwise fix the producer that writes null values", "side", side,
			"topic", md.Topic, "partition", md.Partition, "offset", md.Offset, "dropped_null_values_total", p.drops.nullValues)
		return nil
	}
	if md.NullKey || isNil(r.Key) {
		if outer {
			// Kafka Streams 3.7+ (KIP-962): a record with a null key
			// cannot join, and an outer side forwards it unmatched at once.
			return p.forwardUnmatched(r.Key, in, r.Timestamp, r.Headers)
		}
		p.drops.nullKeys++
		countDrop(ctx, metrics.DropNullKey)
		ctx.Logger().Warn("brook: join dropped a record with a null key (as Kafka Streams)", "action", "none if such records are expected; otherwise fix the producer that writes null keys", "side", side,
			"topic", md.Topic, "partition", md.Partition, "offset", md.Offset, "dropped_null_keys_total", p.drops.nullKeys)
		return nil
	}
	if r.Timestamp.IsZero() || r.Timestamp.UnixMilli() < 0 {
		return fmt.Errorf("stream-stream join %q: record at %s[%d]@%d has no valid timestamp (%v); joins need a timestamp at or after the Unix epoch",
			ctx.NodeName(), md.Topic, md.Partition, md.Offset, r.Timestamp)
	}
	ts := r.Timestamp.UnixMilli()
	st := max(ctx.StreamTime().UnixMilli(), ts)
	stT := time.UnixMilli(st)
	if err := errors.Join(p.this.AdvanceTime(stT), p.other.AdvanceTime(stT)); err != nil {
		return err
	}
	if err := p.emitDue(st); err != nil {
		return err
	}
	// The record's window ends at ts + after (left) or ts + before
	// (right); past that plus grace it is late.
	from, to := ts-p.before, ts+p.after
	if in.right {
		from, to = ts-p.after, ts+p.before
	}
	if st > to+p.grace {
		p.drops.late++
		countDrop(ctx, metrics.DropLate)
		ctx.Logger().Warn("brook: join dropped a late record: its join window closed", "action", "if such records must still join, raise the join window's Grace (records later than window + grace behind stream time are dropped)", "side", side,
			"timestamp_ms", ts, "window_end_ms", to, "stream_time_ms", st, "grace_ms", p.grace,
			"topic", md.Topic, "partition", md.Partition, "offset", md.Offset, "dropped_late_total", p.drops.late)
		return nil
	}
	var matched bool
	var err error
	if !in.right {
		matched, err = joinProbe(p, p.this, p.other, r.Key, in.l, ts, from, to, true, func(v2 V2, t2 int64) error {
			return p.forward(r.Key, in.l, true, v2, true, max(ts, t2), r.Headers)
		})
	} else {
		matched, err = joinProbe(p, p.other, p.this, r.Key, in.r, ts, from, to, false, func(v1 V1, t1 int64) error {
			return p.forward(r.Key, v1, true, in.r, true, max(ts, t1), r.Headers)
		})
	}
	if err != nil || matched || !outer {
		return err
	}
	return p.addPending(r.Key, in, ts, r.Headers)
}

// joinProbe stores v (at ts, under key) in this side's store, then calls
// emit for each record of the other side under key with a timestamp in
// [from, to], in time order, and removes the matched ones from the
// pending records (all records of one key and time match together).
func joinProbe[K, V1, V2, VR, VT, VO any](p *streamJoiner[K, V1, V2, VR], this store.WindowStore[K, []VT], other store.WindowStore[K, []VO],
	key K, v VT, ts, from, to int64, otherIsRight bool, emit func(VO, int64) error) (bool, error) {
	at := time.UnixMilli(ts)
	list, _, err := this.Fetch(key, at)
	if err != nil {
		return false, err
	}
	if err := this.Put(key, at, append(list, v)); err != nil {
		return false, err
	}
	type match struct {
		ts     int64
		values []VO
	}
	var matches []match
	it, err := other.FetchRange(key, time.UnixMilli(max(from, 0)), time.UnixMilli(to))
	if err != nil {
		return false, err
	}
	for it.Next() {
		matches = append(matches, match{ts: it.Key().UnixMilli(), values: it.Value()})
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return false, err
	}
	otherOuter := p.leftOuter
	if otherIsRight {
		otherOuter = p.rightOuter
	}
	for _, m := range matches {
		if otherOuter {
			if err := p.removePending(joinPendingKey[K]{ts: m.ts, right: otherIsRight, key: key}); err != nil {
				return false, err
			}
		}
		for _, vo := range m.values {
			if err := emit(vo, m.ts); err != nil {
				return false, err
			}
		}
	}
	return len(matches) > 0, nil
}

func (p *streamJoiner[K, V1, V2, VR]) forward(key K, l V1, lok bool, r V2, rok bool, ts int64, h processor.Headers) error {
	v, err := p.joiner(key, l, lok, r, rok)
	if err != nil {
		return err
	}
	return p.ctx.Forward(processor.Record[K, VR]{Key: key, Value: v, Timestamp: time.UnixMilli(ts).UTC(), Headers: h})
}

// forwardUnmatched forwards in without the other side.
func (p *streamJoiner[K, V1, V2, VR]) forwardUnmatched(key K, in joinInput[V1, V2], at time.Time, h processor.Headers) error {
	var zl V1
	var zr V2
	if in.right {
		return p.forward(key, zl, false, in.r, true, at.UnixMilli(), h)
	}
	return p.forward(key, in.l, true, zr, false, at.UnixMilli(), h)
}

func (p *streamJoiner[K, V1, V2, VR]) addPending(key K, in joinInput[V1, V2], ts int64, h processor.Headers) error {
	k := joinPendingKey[K]{ts: ts, right: in.right, key: key}
	cur, _, err := p.shared.Get(k)
	if err != nil {
		return err
	}
	cur.right = in.right
	cur.entries = append(cur.entries, joinPendingEntry[V1, V2]{l: in.l, r: in.r, headers: h})
	if err := p.shared.Put(k, cur); err != nil {
		return err
	}
	if due := p.dueAt(ts); p.nextKnown && due < p.next {
		p.next = due
	}
	return nil
}

func (p *streamJoiner[K, V1, V2, VR]) removePending(k joinPendingKey[K]) error {
	if _, found, err := p.shared.Get(k); err != nil || !found {
		return err
	}
	return p.shared.Delete(k)
}

// emitDue forwards and deletes, in time order, every pending record due
// at stream time st.
func (p *streamJoiner[K, V1, V2, VR]) emitDue(st int64) error {
	if p.shared == nil || (p.nextKnown && st < p.next) {
		return nil
	}
	for {
		due, next, err := p.due(st)
		if err != nil {
			return err
		}
		for _, d := range due {
			for _, e := range d.v.entries {
				in := joinInput[V1, V2]{right: d.k.right, l: e.l, r: e.r}
				if err := p.forwardUnmatched(d.k.key, in, time.UnixMilli(d.k.ts), e.headers); err != nil {
					return err
				}
			}
			if err := p.shared.Delete(d.k); err != nil {
				return err
			}
		}
		if len(due) < evictBatch {
			p.next, p.nextKnown = next, true
			return nil
		}
	}
}

type joinDue[K, V1, V2 any] struct {
	k joinPendingKey[K]
	v joinPending[V1, V2]
}

// due reads up to evictBatch pending entries due at st from the start of
// the store, and the due time of the first one that is not (MaxInt64 if
// none).
func (p *streamJoiner[K, V1, V2, VR]) due(st int64) ([]joinDue[K, V1, V2], int64, error) {
	it, err := p.shared.All()
	if err != nil {
		return nil, 0, err
	}
	var out []joinDue[K, V1, V2]
	next := int64(math.MaxInt64)
	for len(out) < evictBatch && it.Next() {
		k := it.Key()
		if d := p.dueAt(k.ts); d > st {
			next = d
			break
		}
		out = append(out, joinDue[K, V1, V2]{k: k, v: it.Value()})
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return nil, 0, err
	}
	return out, next, nil
}

func (p *streamJoiner[K, V1, V2, VR]) Close() error { return nil }

// joinValuesSerde stores the values one side received for one key at one
// timestamp (a window store keeps one value per key and time; Kafka
// Streams keeps duplicates with a sequence number in the key instead):
//
//	uvarint count | per value: varint length (-1: nil), bytes
type joinValuesSerde[V any] struct{ values serde.Serde[V] }

func (s joinValuesSerde[V]) Serialize(topic string, vs []V) ([]byte, error) {
	if vs == nil {
		return nil, nil
	}
	out := binary.AppendUvarint(nil, uint64(len(vs)))
	for _, v := range vs {
		vb, err := s.values.Serialize(topic, v)
		if err != nil {
			return nil, err
		}
		out = appendBytes(out, vb)
	}
	return out, nil
}

func (s joinValuesSerde[V]) Deserialize(topic string, data []byte) ([]V, error) {
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)) {
		return nil, badJoinEntry(topic, "join-window-values", "value count")
	}
	rest := data[k:]
	out := make([]V, 0, n)
	for range n {
		var vb []byte
		var ok bool
		if vb, rest, ok = readBytes(rest); !ok {
			return nil, badJoinEntry(topic, "join-window-values", "value")
		}
		v, err := s.values.Deserialize(topic, vb)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Preflight checks the value serde, if it checks anything.
func (s joinValuesSerde[V]) Preflight(ctx context.Context, topic string) error {
	if p, ok := s.values.(serde.Preflighter); ok {
		return p.Preflight(ctx, topic)
	}
	return nil
}

func appendBytes(out, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(out, -1)
	}
	out = binary.AppendVarint(out, int64(len(b)))
	return append(out, b...)
}

func readBytes(data []byte) (b, rest []byte, ok bool) {
	n, k := binary.Varint(data)
	if k <= 0 || n < -1 || n > int64(len(data)-k) {
		return nil, nil, false
	}
	if n < 0 {
		return nil, data[k:], true
	}
	return append([]byte{}, data[k:k+int(n)]...), data[k+int(n):], true
}

var errBadJoinEntry = errors.New("malformed stream-stream join store entry")

func badJoinEntry(topic, format, what string) error {
	return &serde.DecodeError{Format: format, Topic: topic, SchemaID: -1, Kind: serde.ErrTruncated,
		Err: fmt.Errorf("%w: %s", errBadJoinEntry, what)}
}

// joinPendingKey is a key of the outer-join store: the record's time,
// then its side, then its key, so that iteration is in time order.
type joinPendingKey[K any] struct {
	ts    int64
	right bool
	key   K
}

// joinPendingKeySerde writes ts (8 bytes big-endian, sign bit flipped),
// a side byte (0 left, 1 right), then the key's bytes.
type joinPendingKeySerde[K any] struct{ keys serde.Serde[K] }

func (s joinPendingKeySerde[K]) Serialize(topic string, k joinPendingKey[K]) ([]byte, error) {
	kb, err := s.keys.Serialize(topic, k.key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 9+len(kb))
	out = binary.BigEndian.AppendUint64(out, uint64(k.ts)^(1<<63))
	side := byte(0)
	if k.right {
		side = 1
	}
	out = append(out, side)
	return append(out, kb...), nil
}

func (s joinPendingKeySerde[K]) Deserialize(topic string, data []byte) (joinPendingKey[K], error) {
	if len(data) < 9 || data[8] > 1 {
		return joinPendingKey[K]{}, badJoinEntry(topic, "join-pending-key", fmt.Sprintf("key of %d bytes", len(data)))
	}
	k, err := s.keys.Deserialize(topic, data[9:])
	return joinPendingKey[K]{ts: int64(binary.BigEndian.Uint64(data) ^ (1 << 63)), right: data[8] == 1, key: k}, err
}

// Preflight checks the key serde, if it checks anything.
func (s joinPendingKeySerde[K]) Preflight(ctx context.Context, topic string) error {
	if p, ok := s.keys.(serde.Preflighter); ok {
		return p.Preflight(ctx, topic)
	}
	return nil
}

// joinPending holds the records of one side, key and time that have no
// match yet, with their headers.
type joinPending[V1, V2 any] struct {
	right   bool
	entries []joinPendingEntry[V1, V2]
}

type joinPendingEntry[V1, V2 any] struct {
	l       V1
	r       V2
	headers processor.Headers
}

// joinPendingSerde writes
//
//	side byte (0 left, 1 right) | uvarint count | per record: uvarint
//	header count, per header: key, value (varint length (-1: nil), bytes);
//	then the value (varint length, bytes)
type joinPendingSerde[V1, V2 any] struct {
	left  serde.Serde[V1]
	right serde.Serde[V2]
}

func (s joinPendingSerde[V1, V2]) Serialize(topic string, p joinPending[V1, V2]) ([]byte, error) {
	side := byte(0)
	if p.right {
		side = 1
	}
	out := binary.AppendUvarint([]byte{side}, uint64(len(p.entries)))
	for _, e := range p.entries {
		out = binary.AppendUvarint(out, uint64(len(e.headers)))
		for _, h := range e.headers {
			out = appendBytes(out, []byte(h.Key))
			out = appendBytes(out, h.Value)
		}
		var vb []byte
		var err error
		if p.right {
			vb, err = s.right.Serialize(topic, e.r)
		} else {
			vb, err = s.left.Serialize(topic, e.l)
		}
		if err != nil {
			return nil, err
		}
		out = appendBytes(out, vb)
	}
	return out, nil
}

func (s joinPendingSerde[V1, V2]) Deserialize(topic string, data []byte) (joinPending[V1, V2], error) {
	const format = "join-pending-records"
	if len(data) < 1 || data[0] > 1 {
		return joinPending[V1, V2]{}, badJoinEntry(topic, format, "side")
	}
	p := joinPending[V1, V2]{right: data[0] == 1}
	n, k := binary.Uvarint(data[1:])
	if k <= 0 || n > uint64(len(data)) {
		return joinPending[V1, V2]{}, badJoinEntry(topic, format, "record count")
	}
	rest := data[1+k:]
	for range n {
		hn, k := binary.Uvarint(rest)
		if k <= 0 || hn > uint64(len(rest)) {
			return joinPending[V1, V2]{}, badJoinEntry(topic, format, "header count")
		}
		rest = rest[k:]
		var e joinPendingEntry[V1, V2]
		for range hn {
			var hk, hv []byte
			var ok1, ok2 bool
			hk, rest, ok1 = readBytes(rest)
			if ok1 {
				hv, rest, ok2 = readBytes(rest)
			}
			if !ok1 || !ok2 {
				return joinPending[V1, V2]{}, badJoinEntry(topic, format, "header")
			}
			e.headers = append(e.headers, processor.Header{Key: string(hk), Value: hv})
		}
		vb, r, ok := readBytes(rest)
		if !ok {
			return joinPending[V1, V2]{}, badJoinEntry(topic, format, "value")
		}
		rest = r
		var err error
		if p.right {
			e.r, err = s.right.Deserialize(topic, vb)
		} else {
			e.l, err = s.left.Deserialize(topic, vb)
		}
		if err != nil {
			return joinPending[V1, V2]{}, err
		}
		p.entries = append(p.entries, e)
	}
	return p, nil
}

// Preflight checks both value serdes, if they check anything.
func (s joinPendingSerde[V1, V2]) Preflight(ctx context.Context, topic string) error {
	for _, v := range []any{s.left, s.right} {
		if p, ok := v.(serde.Preflighter); ok {
			if err := p.Preflight(ctx, topic); err != nil {
				return err
			}
		}
	}
	return nil
}
