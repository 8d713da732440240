package task

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/brookstream/brook/processor"
)

type schedule struct {
	node      string
	typ       processor.PunctuationType
	interval  time.Duration
	fn        processor.Punctuator
	next      time.Time
	pending   bool // stream time unknown at scheduling: due at the first record
	cancelled bool
	seq       uint64
}

// Cancel implements processor.Cancellable.
func (s *schedule) Cancel() { s.cancelled = true }

func (t *Task) schedule(node string, interval time.Duration, typ processor.PunctuationType, fn processor.Punctuator) (processor.Cancellable, error) {
	if interval <= 0 {
		return nil, fmt.Errorf("task: node %q: punctuation interval must be positive, got %v", node, interval)
	}
	if fn == nil {
		return nil, fmt.Errorf("task: node %q: nil punctuator", node)
	}
	s := &schedule{node: node, typ: typ, interval: interval, fn: fn, seq: t.seq}
	t.seq++
	switch typ {
	case processor.StreamTime:
		if t.streamTimeKnown {
			s.next = t.streamTime.Add(interval)
		} else {
			s.pending = true
		}
	case processor.WallClockTime:
		s.next = t.wallTime.Add(interval)
	default:
		return nil, fmt.Errorf("task: node %q: unknown punctuation type %d", node, typ)
	}
	t.schedules = append(t.schedules, s)
	return s, nil
}

// fire calls every punctuator of type typ due at now, in due-time order
// (ties in scheduling order), each at most once.
func (t *Task) fire(typ processor.PunctuationType, now time.Time) (int, error) {
	if typ == processor.StreamTime && !t.streamTimeKnown {
		return 0, nil
	}
	var due []*schedule
	live := t.schedules[:0]
	for _, s := range t.schedules {
		if s.cancelled {
			continue
		}
		live = append(live, s)
		if s.typ != typ {
			continue
		}
		if s.pending {
			s.pending, s.next = false, now
		}
		if !s.next.After(now) {
			due = append(due, s)
		}
	}
	clear(t.schedules[len(live):])
	t.schedules = live
	slices.SortStableFunc(due, func(a, b *schedule) int {
		return cmp.Or(a.next.Compare(b.next), cmp.Compare(a.seq, b.seq))
	})
	fired := 0
	for _, s := range due {
		if s.cancelled || t.closed {
			continue
		}
		// Move past now, skipping missed intervals.
		missed := now.Sub(s.next) / s.interval
		s.next = s.next.Add((missed + 1) * s.interval)
		fired++
		t.punctuating = true
		err := s.fn(now)
		t.punctuating = false
		if err != nil {
			if err := t.processingFailed(s.node, err, true); err != nil {
				return fired, err
			}
		}
	}
	return fired, nil
}

// NextWallClockPunctuation returns when the earliest live wall-clock
// punctuator is due, so that a runtime can sleep until then; ok is false
// when none is scheduled.
func (t *Task) NextWallClockPunctuation() (due time.Time, ok bool) {
	for _, s := range t.schedules {
		if s.cancelled || s.typ != processor.WallClockTime {
			continue
		}
		if !ok || s.next.Before(due) {
			due, ok = s.next, true
		}
	}
	return due, ok
}
