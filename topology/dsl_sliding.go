package topology

import (
	"errors"
	"fmt"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/store"
)

// This file is sliding windows (Kafka Streams' SlidingWindows, KIP-450):
// the window definition and its aggregation processor.

// SlidingWindows are windows of a fixed time difference defined by the
// records themselves, as Kafka Streams' SlidingWindows: two records are
// in a common window when their timestamps differ by at most the time
// difference. Each window [start, start+diff] includes both ends; a
// record at t creates its left window [t−diff, t] and, when a later
// record falls within diff of it, its right window [t+1, t+1+diff], so
// every distinct set of records that fits in diff gets exactly one
// window. Create them with Sliding and set the grace period with Grace.
//
// Windowed keys of sliding windows have End = start+diff+1: brook's
// Windowed ends are exclusive for every kind of window, so the window
// [s, s+diff] of Kafka Streams reads "key@s-(s+diff+1)".
type SlidingWindows struct {
	diff, grace time.Duration
}

// Sliding returns sliding windows with the given time difference. The
// grace period is zero until set with Grace (Kafka Streams'
// SlidingWindows.ofTimeDifferenceWithNoGrace).
func Sliding(timeDifference time.Duration) SlidingWindows {
	return SlidingWindows{diff: timeDifference}
}

// Grace returns the windows with grace period d: a window [s, e] accepts
// records until the stream time passes e + d (it closes when stream time
// reaches e + 1ms + d, its exclusive end plus grace).
func (w SlidingWindows) Grace(d time.Duration) SlidingWindows { w.grace = d; return w }

// TimeDifference is the largest difference between the timestamps of two
// records of one window.
func (w SlidingWindows) TimeDifference() time.Duration { return w.diff }

// GracePeriod is the grace period set with Grace (zero by default).
func (w SlidingWindows) GracePeriod() time.Duration { return w.grace }

func (w SlidingWindows) check() error {
	switch {
	case w.diff < time.Millisecond || w.diff%time.Millisecond != 0:
		return fmt.Errorf("sliding window time difference %v must be a positive whole number of milliseconds", w.diff)
	case w.grace < 0 || w.grace%time.Millisecond != 0:
		return fmt.Errorf("grace period %v must be a non-negative whole number of milliseconds", w.grace)
	}
	return nil
}

// slidingLateWindow returns the window a record at ts is late for at
// stream time st, if any: its left window [ts−diff, ts] (for ts < diff
// the shared window [0, diff]), which every later window of the record
// outlasts. The end returned is exclusive.
func slidingLateWindow(ts, st, diff, grace int64) (start, end int64, late bool) {
	start, last := ts-diff, ts
	if ts < diff {
		start, last = 0, diff
	}
	return start, last + 1, last < st-grace
}

// slidingAgg is a sliding window's aggregate while it is being computed:
// ok is false for the empty aggregate of a reduction (no value yet).
type slidingAgg[A any] struct {
	v  A
	ok bool
	ts int64 // largest record timestamp
}

// slidingWindowAgg is the processor of a sliding-window aggregation. It
// follows the window creation rules of Kafka Streams'
// KStreamSlidingWindowAggregate (forward iteration), with stream time the
// task's.
type slidingWindowAgg[K, V, A any] struct {
	ref            WindowStoreRef[K, ValueAndTimestamp[A]]
	store          store.WindowStore[K, ValueAndTimestamp[A]]
	w              SlidingWindows
	init, add      aggFunc[K, V, A]
	dropNullValues bool
	drops          dropCounts

	// per record
	ctx      processor.Context[Windowed[K], Change[A]]
	rec      processor.Record[K, V]
	t, st    int64
	closeMin int64 // a window [s, e] is open while e >= closeMin
}

func (p *slidingWindowAgg[K, V, A]) Init(ctx processor.Context[Windowed[K], Change[A]]) (err error) {
	p.store, err = p.ref.From(ctx)
	return err
}

// empty is a new window's aggregate before the record is folded in.
func (p *slidingWindowAgg[K, V, A]) empty(ts int64) (slidingAgg[A], error) {
	if p.init == nil {
		return slidingAgg[A]{ts: ts}, nil
	}
	v, err := p.init(p.rec.Key, p.rec.Value, *new(A), true)
	return slidingAgg[A]{v: v, ok: true, ts: ts}, err
}

func (p *slidingWindowAgg[K, V, A]) Process(ctx processor.Context[Windowed[K], Change[A]], r processor.Record[K, V]) error {
	if dropNull(ctx, r, p.dropNullValues, &p.drops) {
		return nil
	}
	t, err := recordTime(ctx, r)
	if err != nil {
		return err
	}
	diff, grace := p.w.diff.Milliseconds(), p.w.grace.Milliseconds()
	p.ctx, p.rec, p.t = ctx, r, t
	p.st = max(ctx.StreamTime().UnixMilli(), t)
	p.closeMin = p.st - grace
	defer func() { p.ctx, p.rec = nil, processor.Record[K, V]{} }()
	if err := p.store.AdvanceTime(time.UnixMilli(p.st)); err != nil {
		return err
	}
	// The latest window that can hold the record is [t, t+diff]; when it
	// has closed, so have all the others: the record is dropped whole.
	if t+diff < p.closeMin {
		logLate(ctx, &p.drops, r.Key, t, t, t+diff+1, p.st, grace)
		return nil
	}
	if t < diff {
		return p.processEarly(diff)
	}
	return p.processInOrder(diff)
}

// window is one stored window met while scanning a key's windows.
type slidingWindow[A any] struct {
	start int64
	agg   slidingAgg[A]
}

func (p *slidingWindowAgg[K, V, A]) scan(from, to int64) ([]slidingWindow[A], error) {
	it, err := p.store.FetchRange(p.rec.Key, time.UnixMilli(from), time.UnixMilli(to))
	if err != nil {
		return nil, err
	}
	var out []slidingWindow[A]
	for it.Next() {
		v := it.Value()
		out = append(out, slidingWindow[A]{start: it.Key().UnixMilli(), agg: slidingAgg[A]{v: v.Value, ok: true, ts: v.Timestamp.UnixMilli()}})
	}
	return out, errors.Join(it.Err(), it.Close())
}

// errUnexpectedWindow reports a stored window that the sliding-window
// rules cannot have created: the store does not hold what this
// aggregation wrote (another definition wrote it, or it is corrupt).
func (p *slidingWindowAgg[K, V, A]) errUnexpectedWindow(start int64) error {
	md, _ := p.ctx.RecordMetadata()
	return fmt.Errorf("sliding window aggregation %q: store %q holds a window starting at %d that the record at %d (%s[%d]@%d) cannot meet; was the window definition changed without a new store name?",
		p.ctx.NodeName(), p.store.Name(), start, p.t, md.Topic, md.Partition, md.Offset)
}

func (p *slidingWindowAgg[K, V, A]) processInOrder(diff int64) error {
	t := p.t
	windows, err := p.scan(max(0, t-2*diff), t+1)
	if err != nil {
		return err
	}
	starts := map[int64]bool{}
	var leftAgg, rightAgg *slidingAgg[A]
	leftExists, rightExists := false, false
	var prevTs *int64
	for i := range windows {
		w := &windows[i]
		starts[w.start] = true
		end := w.start + diff
		switch {
		case end < t:
			// A window wholly before the record: the latest one gives
			// the aggregate of the records just before it.
			leftAgg = &w.agg
			ts := w.agg.ts
			prevTs = &ts
		case end == t:
			leftExists = true
			if w.agg.ts < t {
				ts := w.agg.ts
				prevTs = &ts
			}
			if err := p.update(w.start, diff, w.agg); err != nil {
				return err
			}
		case end > t && w.start <= t:
			// The last such window (the latest start) is the previous
			// record's right window: without the record, its aggregate is
			// what the record's own right window [t+1, ...] must hold.
			rightAgg = &w.agg
			if err := p.update(w.start, diff, w.agg); err != nil {
				return err
			}
		case w.start == t+1:
			rightExists = true
		default:
			return p.errUnexpectedWindow(w.start)
		}
	}
	// The previous record's right window, if it holds this record.
	if prevTs != nil {
		s := *prevTs + 1
		if !starts[s] && s+diff >= t {
			e, err := p.empty(t)
			if err != nil {
				return err
			}
			if err := p.update(s, diff, e); err != nil {
				return err
			}
		}
	}
	// The record's left window.
	if !leftExists {
		var agg slidingAgg[A]
		if prevTs != nil && t-diff <= *prevTs {
			agg = slidingAgg[A]{v: leftAgg.v, ok: leftAgg.ok, ts: t}
		} else if agg, err = p.empty(t); err != nil {
			return err
		}
		if err := p.update(t-diff, diff, agg); err != nil {
			return err
		}
	}
	// The record's right window, when later records fall into it.
	if !rightExists && rightAgg != nil && rightAgg.ts > t {
		return p.putRight(t, diff, *rightAgg)
	}
	return nil
}

// processEarly handles a record at t < diff, whose left window would
// start before 0: as Kafka Streams, records before diff share the window
// [0, diff].
func (p *slidingWindowAgg[K, V, A]) processEarly(diff int64) error {
	t := p.t
	windows, err := p.scan(0, t+1)
	if err != nil {
		return err
	}
	starts := map[int64]bool{}
	var combined, rightAgg *slidingAgg[A]
	rightExists := false
	var prevTs *int64
	for i := range windows {
		w := &windows[i]
		starts[w.start] = true
		switch {
		case w.start == 0:
			combined = &w.agg
			if w.agg.ts < t {
				ts := w.agg.ts
				prevTs = &ts
			}
		case w.start <= t:
			rightAgg = &w.agg
			if err := p.update(w.start, diff, w.agg); err != nil {
				return err
			}
		case w.start == t+1:
			rightExists = true
		default:
			return p.errUnexpectedWindow(w.start)
		}
	}
	// Without a right window found, the combined window holds exactly the
	// records after t when its latest record is after t.
	if rightAgg == nil && combined != nil && combined.ts > t {
		rightAgg = combined
	}
	if !rightExists && rightAgg != nil && rightAgg.ts > t {
		if err := p.putRight(t, diff, *rightAgg); err != nil {
			return err
		}
	}
	if prevTs != nil && !starts[*prevTs+1] {
		e, err := p.empty(t)
		if err != nil {
			return err
		}
		if err := p.update(*prevTs+1, diff, e); err != nil {
			return err
		}
	}
	if combined == nil {
		e, err := p.empty(t)
		if err != nil {
			return err
		}
		return p.update(0, diff, e)
	}
	return p.update(0, diff, *combined)
}

// update folds the record into the window [start, start+diff] whose
// aggregate is agg, stores and forwards it; a closed window drops the
// record (logged).
func (p *slidingWindowAgg[K, V, A]) update(start, diff int64, agg slidingAgg[A]) error {
	end := start + diff
	if end < p.closeMin {
		logLate(p.ctx, &p.drops, p.rec.Key, p.t, start, end+1, p.st, p.w.grace.Milliseconds())
		return nil
	}
	v, err := p.add(p.rec.Key, p.rec.Value, agg.v, !agg.ok)
	if err != nil {
		return err
	}
	return p.put(start, diff, v, max(p.t, agg.ts))
}

// putRight creates the record's right window [t+1, t+1+diff] holding the
// records after t: agg, without the record itself.
func (p *slidingWindowAgg[K, V, A]) putRight(t, diff int64, agg slidingAgg[A]) error {
	return p.put(t+1, diff, agg.v, agg.ts)
}

func (p *slidingWindowAgg[K, V, A]) put(start, diff int64, v A, ts int64) error {
	startT, tsT := time.UnixMilli(start).UTC(), time.UnixMilli(ts).UTC()
	if err := p.store.Put(p.rec.Key, startT, ValueAndTimestamp[A]{Value: v, Timestamp: tsT}); err != nil {
		return err
	}
	return p.ctx.Forward(processor.Record[Windowed[K], Change[A]]{
		Key:   Windowed[K]{Key: p.rec.Key, Start: startT, End: time.UnixMilli(start + diff + 1).UTC()},
		Value: Update(v), Timestamp: tsT, Headers: p.rec.Headers,
	})
}

func (p *slidingWindowAgg[K, V, A]) Close() error { return nil }
