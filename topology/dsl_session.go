package topology

import (
	"errors"
	"strconv"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// This file holds the session-window aggregations of the DSL
// (docs/DSL.md): SessionWindows, KGroupedStream.SessionWindowedBy, and
// CountSessions, ReduceSessions and AggregateSessions, backed by a session
// store (store.SessionStore), and the late-record side stream LateRecords.

// SessionWindowSpec describes session windows: a key's records whose
// times are at most the inactivity gap apart belong to one session. Make
// one with SessionWindows.
type SessionWindowSpec struct {
	gap, grace time.Duration
}

// SessionWindows returns session windows with the inactivity gap gap (at
// least 1ms) and no grace period: two records of a key at most gap apart
// (inclusive, as Kafka Streams) are in one session. Set a grace period
// with Grace.
func SessionWindows(gap time.Duration) SessionWindowSpec { return SessionWindowSpec{gap: gap} }

// Grace returns w with grace period d: a record still joins (or opens) a
// session while the stream time is less than the session's end plus d,
// where the end is the session's last record time plus 1ms (see Windowed).
// At or after that the record is late: dropped with a warning, and sent
// to the stream of LateRecords if there is one.
func (w SessionWindowSpec) Grace(d time.Duration) SessionWindowSpec {
	w.grace = d
	return w
}

// Gap returns the inactivity gap.
func (w SessionWindowSpec) Gap() time.Duration { return w.gap }

// GracePeriod returns the grace period.
func (w SessionWindowSpec) GracePeriod() time.Duration { return w.grace }

// SessionWindowedKStream is a grouped stream cut into session windows:
// the input of CountSessions, ReduceSessions, AggregateSessions and
// LateRecords.
type SessionWindowedKStream[K, V any] struct {
	g KGroupedStream[K, V]
	w SessionWindowSpec
}

// SessionWindowedBy cuts the grouped stream into session windows w.
func (g KGroupedStream[K, V]) SessionWindowedBy(w SessionWindowSpec) SessionWindowedKStream[K, V] {
	return SessionWindowedKStream[K, V]{g: g, w: w}
}

// CountSessions declares a processor node named name that counts the
// records of each session of each key, and the session store name that
// holds the counts (opts apply to it). It returns the table of sessions
// (see AggregateSessions for the updates it emits).
func CountSessions[K, V any](sw SessionWindowedKStream[K, V], name string, opts ...StoreOption) KTable[Windowed[K], int64] {
	merge := func(_ K, a, b int64, _ bool) (int64, error) { return a + b, nil }
	return aggregateSessions(sw, name, countFuncs[K, V](), merge, serde.Int64(), opts)
}

// ReduceSessions declares a processor node named name that combines the
// values of each session with fn (fn(aggregate, value); a session's first
// value is its first aggregate), and the session store name (g's value
// serde; opts apply to it). Sessions that a record bridges are combined
// with fn too, in time order, and the record's value last: fn should be
// associative (and, for out-of-order records, commutative), as in Kafka
// Streams, which uses the reducer as the merger.
func ReduceSessions[K, V any](sw SessionWindowedKStream[K, V], name string, fn func(agg, value V) (V, error), opts ...StoreOption) KTable[Windowed[K], V] {
	if nilFunc(sw.g.b, name, "reduce", fn == nil) {
		return KTable[Windowed[K], V]{}
	}
	merge := func(_ K, a, b V, have bool) (V, error) {
		if !have {
			return b, nil
		}
		return fn(a, b)
	}
	return aggregateSessions(sw, name, reduceFuncs[K](fn), merge, sw.g.values, opts)
}

// AggregateSessions declares a processor node named name that folds the
// values of each session of each key into an aggregate of type A, and the
// session store name that holds them, serialized by aggSerde (opts apply
// to it; its retention is the gap plus the grace period). It returns the
// table of sessions, keyed by Windowed[K] (Start: the first record's
// time; End: the last record's time plus 1ms).
//
// For each record, as Kafka Streams' KStreamSessionWindowAggregate: the
// sessions of its key whose records are within gap of its time are
// found; the aggregate starts from init(), each found session's
// aggregate is merged into it with merge(key, aggregate, session
// aggregate) in time order, and the record is added with add(key, value,
// aggregate). The merged session spans them all. The found sessions that
// the merged one replaces are removed and forwarded as deletions (a
// record that bridges two sessions deletes both and emits their union),
// then the merged session is forwarded as an update. Each output
// record's timestamp is its session's last record time. A record whose
// merged session would end (End) at or before the stream time minus the
// grace period is late: dropped with a warning that counts it (and sent
// to LateRecords' stream, if declared). Whether a record is late depends
// on the store and the record's key and time only, so merge is not
// called for a late record.
//
// Errors from add and merge, and an aggregate that aggSerde cannot
// serialize, go to the processing error handler and leave the sessions
// unchanged (the merged session is stored before the ones it replaces are
// removed).
func AggregateSessions[K, V, A any](sw SessionWindowedKStream[K, V], name string, init func() A, add func(key K, value V, agg A) (A, error), merge func(key K, agg1, agg2 A) (A, error), aggSerde serde.Serde[A], opts ...StoreOption) KTable[Windowed[K], A] {
	b := sw.g.b
	if nilFunc(b, name, "initializer", init == nil) || nilFunc(b, name, "aggregator", add == nil) || nilFunc(b, name, "merger", merge == nil) {
		return KTable[Windowed[K], A]{}
	}
	m := func(k K, a, s A, _ bool) (A, error) { return merge(k, a, s) }
	return aggregateSessions(sw, name, aggregateFuncs(init, add), m, aggSerde, opts)
}

func aggregateSessions[K, V, A any](sw SessionWindowedKStream[K, V], name string, fns aggFuncs[K, V, A], merge func(K, A, A, bool) (A, error), aggSerde serde.Serde[A], opts []StoreOption) KTable[Windowed[K], A] {
	g := sw.g
	if g.b == nil {
		return KTable[Windowed[K], A]{}
	}
	if sw.w.gap < time.Millisecond {
		g.b.dslProblem(name, "session inactivity gap %v must be at least 1ms", sw.w.gap)
		return KTable[Windowed[K], A]{}
	}
	if sw.w.grace < 0 {
		g.b.dslProblem(name, "session grace period %v is negative", sw.w.grace)
		return KTable[Windowed[K], A]{}
	}
	if !checkSerde(g.b, name, "key", g.keys) || !checkSerde(g.b, name, "aggregate", aggSerde) {
		return KTable[Windowed[K], A]{}
	}
	ref := SessionStore(g.b, name, g.keys, aggSerde, store.SessionOptions{Retention: sw.w.gap + sw.w.grace}, opts...)
	gap, grace := sw.w.gap.Milliseconds(), sw.w.grace.Milliseconds()
	n := process(g.b, name, []Node[K, V]{g.stream().Node()}, func() processor.Processor[K, V, Windowed[K], Change[A]] {
		return &sessionAggregator[K, V, A]{ref: ref, gap: gap, grace: grace, fns: fns, merge: merge, drops: newDropper[K, V]()}
	}, []ProcessOption{WithStores(name)})
	id := sw.id()
	if _, ok := g.b.sessionAggs[id]; !ok {
		if g.b.sessionAggs == nil {
			g.b.sessionAggs = map[sessionWindowsID]sessionAggDecl{}
		}
		g.b.sessionAggs[id] = sessionAggDecl{node: name, store: name,
			bounds: func(ctx processor.StoreProvider) (sessionBoundsFunc[K], error) {
				ss, err := ref.From(ctx)
				if err != nil {
					return nil, err
				}
				return func(key K, ts int64) (start, end, streamTime int64, err error) {
					_, start, end, streamTime, err = joinSessions(ss, key, ts, gap)
					return start, end, streamTime, err
				}, nil
			}}
	}
	return KTable[Windowed[K], A]{b: g.b, name: n.name, keys: WindowedSerde(g.keys), values: aggSerde}
}

type sessionAggregator[K, V, A any] struct {
	ref        SessionStoreRef[K, A]
	gap, grace int64 // ms
	fns        aggFuncs[K, V, A]
	merge      func(K, A, A, bool) (A, error)
	ss         store.SessionStore[K, A]
	drops      *dropper[K, V]
}

func (p *sessionAggregator[K, V, A]) Init(ctx processor.Context[Windowed[K], Change[A]]) (err error) {
	p.ss, err = p.ref.From(ctx)
	return err
}

func (p *sessionAggregator[K, V, A]) Process(ctx processor.Context[Windowed[K], Change[A]], r processor.Record[K, V]) error {
	if p.drops.nullKeyOrValue(ctx, r) {
		return nil
	}
	ts := r.Timestamp.UnixMilli()
	if err := p.ss.AdvanceTime(r.Timestamp); err != nil {
		return err
	}
	found, start, end, streamTime, err := joinSessions(p.ss, r.Key, ts, p.gap)
	if err != nil {
		return err
	}
	// Lateness depends on the store and the record only, not on the
	// user's functions: sessionLateRecords relies on it.
	if end+p.grace <= streamTime {
		p.drops.drop(ctx, "late", r.Timestamp, "session_start_ms", start, "session_end_ms", end,
			"stream_time_ms", streamTime, "grace_ms", p.grace)
		return nil
	}
	agg, have := p.fns.init()
	for _, f := range found {
		if agg, err = p.merge(r.Key, agg, f.agg, have); err != nil {
			return err
		}
		have = true
	}
	if agg, err = p.fns.add(r.Key, r.Value, agg, have); err != nil {
		return err
	}
	// The merged session is stored before the sessions it replaces are
	// removed: if it cannot be stored (its aggregate does not serialize),
	// the error leaves every session in place.
	st, en := time.UnixMilli(start).UTC(), time.UnixMilli(end).UTC()
	if err := p.ss.Put(r.Key, st, en, agg); err != nil {
		return err
	}
	for _, f := range found {
		s := f.session
		if s.Start.UnixMilli() == start && s.End.UnixMilli() == end {
			continue // the merged session overwrote it
		}
		if err := p.ss.Remove(r.Key, s.Start, s.End); err != nil {
			return err
		}
		if err := ctx.Forward(processor.Record[Windowed[K], Change[A]]{
			Key:   Windowed[K]{Key: r.Key, Start: s.Start.UTC(), End: s.End.UTC()},
			Value: Deletion[A](), Timestamp: s.End.Add(-time.Millisecond), Headers: r.Headers,
		}); err != nil {
			return err
		}
	}
	return ctx.Forward(processor.Record[Windowed[K], Change[A]]{
		Key: Windowed[K]{Key: r.Key, Start: st, End: en}, Value: Update(agg), Timestamp: en.Add(-time.Millisecond), Headers: r.Headers,
	})
}

// foundSession is a stored session that a record joins, with its
// aggregate.
type foundSession[K, A any] struct {
	session store.Session[K]
	agg     A
}

// joinSessions returns the sessions of key that a record at ts (Unix ms)
// joins, in end order, the bounds [start, end) of the session the record
// would make with them, and the store's stream time (its observed time,
// or ts if later). It reads the store and changes nothing.
func joinSessions[K, A any](ss store.SessionStore[K, A], key K, ts, gap int64) (found []foundSession[K, A], start, end, streamTime int64, err error) {
	it, err := ss.FindSessions(key, time.UnixMilli(ts-gap), time.UnixMilli(ts+gap))
	if err != nil {
		return nil, 0, 0, 0, err
	}
	start, end = ts, ts+1
	for it.Next() {
		s := it.Key()
		found = append(found, foundSession[K, A]{session: s, agg: it.Value()})
		start, end = min(start, s.Start.UnixMilli()), max(end, s.End.UnixMilli())
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return nil, 0, 0, 0, err
	}
	streamTime = ts
	if o := ss.ObservedTime(); !o.IsZero() {
		streamTime = max(streamTime, o.UnixMilli())
	}
	return found, start, end, streamTime, nil
}

func (p *sessionAggregator[K, V, A]) Close() error { return nil }

// sessionWindowsID identifies a SessionWindowedKStream: its grouped
// stream's node and its session windows. Two SessionWindowedBy calls with
// the same windows on the same grouped stream give the same stream.
type sessionWindowsID struct {
	group      string
	gap, grace time.Duration
}

func (sw SessionWindowedKStream[K, V]) id() sessionWindowsID {
	return sessionWindowsID{group: sw.g.name, gap: sw.w.gap, grace: sw.w.grace}
}

// sessionAggDecl is a session aggregation as LateRecords needs it: its
// node and store, and bounds, which opens a task's lateness test over the
// store (a func(processor.StoreProvider) (sessionBoundsFunc[K], error)).
type sessionAggDecl struct {
	node, store string
	bounds      any
}

// sessionBoundsFunc returns the bounds [start, end) (Unix ms) of the
// session a record of key at ts would make, and the stream time its
// aggregation sees, from the aggregation's store (see joinSessions).
type sessionBoundsFunc[K any] func(key K, ts int64) (start, end, streamTime int64, err error)

// LateRecords declares a processor node named name that receives the
// records the session aggregation over sw drops as late, unchanged but
// for the added headers LateReasonHeader = "late", LateWindowStartHeader
// and LateWindowEndHeader (the bounds of the session the record would
// have made: Start and End as in Windowed, the end exclusive),
// LateStreamTimeHeader (the aggregation's stream time) and
// LateGraceHeader. Send them to a side topic with To. The aggregation
// still logs and counts each late record it drops.
//
// Declare it after a session aggregation (CountSessions, ReduceSessions
// or AggregateSessions) over the same grouped stream and session
// windows; Build refuses it otherwise. It reports the lateness of the
// first such aggregation declared, reading its session store: each
// record reaches the node just after that aggregation has processed it
// (siblings run in declaration order), and the node applies the
// aggregation's test to the store. That gives the aggregation's answer:
// a record it dropped as late left the store as the aggregation read it,
// so the test finds the same sessions and stream time; a record it took
// is in a stored session that is still open. A record the aggregation
// skips (a null key or value) is skipped here too. Several aggregations
// over the same session windows drop the same records, since sessions
// depend on record keys and times only; a record one of them fails on
// (with a processing error handler that continues) is judged by the
// first one's store.
func (sw SessionWindowedKStream[K, V]) LateRecords(name string) KStream[K, V] {
	g := sw.g
	if g.b == nil {
		return KStream[K, V]{}
	}
	if sw.w.gap < time.Millisecond {
		g.b.dslProblem(name, "session inactivity gap %v must be at least 1ms", sw.w.gap)
		return KStream[K, V]{}
	}
	if sw.w.grace < 0 {
		g.b.dslProblem(name, "session grace period %v is negative", sw.w.grace)
		return KStream[K, V]{}
	}
	agg, ok := g.b.sessionAggs[sw.id()]
	if !ok {
		g.b.dslProblem(name, "late session records need a session aggregation (CountSessions, ReduceSessions or AggregateSessions) "+
			"over the same grouped stream %q and session windows (gap %v, grace %v), declared before LateRecords", g.name, sw.w.gap, sw.w.grace)
		return KStream[K, V]{}
	}
	bounds, ok := agg.bounds.(func(processor.StoreProvider) (sessionBoundsFunc[K], error))
	if !ok {
		g.b.dslProblem(name, "the session aggregation %q over %q has keys of another type than %s", agg.node, g.name, typeName[K]())
		return KStream[K, V]{}
	}
	grace := sw.w.grace.Milliseconds()
	n := process(g.b, name, []Node[K, V]{g.stream().Node()}, func() processor.Processor[K, V, K, V] {
		return &sessionLateRecords[K, V]{open: bounds, grace: grace, nulls: newDropper[K, V]()}
	}, []ProcessOption{WithStores(agg.store)})
	return KStream[K, V]{b: g.b, name: n.name, keys: g.keys, values: g.values}
}

// sessionLateRecords is the processor of LateRecords.
type sessionLateRecords[K, V any] struct {
	open   func(processor.StoreProvider) (sessionBoundsFunc[K], error)
	bounds sessionBoundsFunc[K]
	grace  int64 // ms
	nulls  *dropper[K, V]
}

func (p *sessionLateRecords[K, V]) Init(ctx processor.Context[K, V]) (err error) {
	p.bounds, err = p.open(ctx)
	return err
}

func (p *sessionLateRecords[K, V]) Process(ctx processor.Context[K, V], r processor.Record[K, V]) error {
	if p.nulls.nullReason(ctx, r) != "" {
		return nil // the aggregation drops it for its null key or value
	}
	start, end, streamTime, err := p.bounds(r.Key, r.Timestamp.UnixMilli())
	if err != nil {
		return err
	}
	if end+p.grace > streamTime {
		return nil // the aggregation took it
	}
	r.Headers = r.Headers.Clone().With(LateReasonHeader, []byte("late")).
		With(LateWindowStartHeader, []byte(strconv.FormatInt(start, 10))).
		With(LateWindowEndHeader, []byte(strconv.FormatInt(end, 10))).
		With(LateStreamTimeHeader, []byte(strconv.FormatInt(streamTime, 10))).
		With(LateGraceHeader, []byte(strconv.FormatInt(p.grace, 10)))
	return ctx.Forward(r)
}

func (p *sessionLateRecords[K, V]) Close() error { return nil }
