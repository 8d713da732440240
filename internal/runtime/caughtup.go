// caughtup.go: the caught-up check. MarkEnds takes the end offsets of
// every input partition of the application at one moment; CaughtUp tells
// whether every task assigned to this instance has processed its
// partitions up to them; WaitCaughtUp waits until it has.

package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// EndMark holds the end offsets of every input partition of the
// application (the high watermark, or the last stable offset under
// exactly-once) as listed at one moment.
type EndMark struct {
	// At is when the offsets were listed.
	At   time.Time
	ends map[tpKey]int64
}

// ErrNotRunning is returned by MarkEnds when Run is not running (not
// started yet, or returned).
var ErrNotRunning = errors.New("brook: the application is not running")

// MarkEnds lists the end offsets of every partition of every source topic
// of the topology (repartition and table topics included).
func (r *Runtime) MarkEnds(ctx context.Context) (*EndMark, error) {
	client := r.liveClient()
	if client == nil {
		return nil, ErrNotRunning
	}
	var keys []tpKey
	seen := map[string]bool{}
	for _, sub := range r.cfg.Graph.SubTopologies {
		for _, t := range sub.SourceTopics {
			if seen[t] {
				continue
			}
			seen[t] = true
			parts, err := client.Partitions(t)
			if err != nil {
				return nil, fmt.Errorf("brook: caught-up check: partitions of %s: %w", t, err)
			}
			for _, p := range parts {
				keys = append(keys, tpKey{t, p})
			}
		}
	}
	at := time.Now()
	ends, err := r.listEnds(ctx, client, keys)
	if err != nil {
		return nil, fmt.Errorf("brook: caught-up check: %w", err)
	}
	return &EndMark{At: at, ends: ends}, nil
}

// PartitionProgress is where one input partition of a task assigned to
// this instance stands against an EndMark.
type PartitionProgress struct {
	// Task is the task id ("<sub-topology>_<partition>").
	Task      string `json:"task"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Target is the partition's end offset in the mark.
	Target int64 `json:"target"`
	// Position is the offset of the next record the task will process
	// (-1: unknown, the task is not open yet).
	Position int64 `json:"position"`
	// Committed is the last offset committed for the partition (-1:
	// unknown).
	Committed int64 `json:"committed"`
	// Remaining is how many offsets are left to process before Target (0
	// when caught up: the offsets left, if any, hold only transaction
	// markers or aborted records; -1: unknown).
	Remaining int64 `json:"remaining"`
}

// CaughtUpReport says whether this instance has caught up with an
// EndMark.
type CaughtUpReport struct {
	// CaughtUp reports that the App is running and every task assigned
	// to this instance has processed each of its input partitions up to
	// the partition's end offset in the mark.
	CaughtUp bool `json:"caught_up"`
	// State is the App's state.
	State State `json:"-"`
	// Reason says why not, when CaughtUp is false.
	Reason string `json:"reason,omitempty"`
	// MarkedAt is when the end offsets were listed.
	MarkedAt time.Time `json:"marked_at"`
	// Partitions are the input partitions of the tasks assigned to this
	// instance, by topic and partition.
	Partitions []PartitionProgress `json:"partitions"`
}

// CaughtUp reports how far the tasks assigned to this instance are from
// mark. It may read a partition whose position is below its end offset
// while nothing is buffered, to tell whether the offsets left hold only
// transaction markers (tailEmpty).
func (r *Runtime) CaughtUp(ctx context.Context, mark *EndMark) CaughtUpReport {
	rep := CaughtUpReport{State: r.State(), MarkedAt: mark.At}
	asg, ok := r.strategy.Local()
	if !ok {
		rep.Reason = "no assignment yet (state " + rep.State.String() + ")"
		return rep
	}
	client := r.liveClient()
	open := map[tpKey]inputState{}
	for _, st := range r.openInputs() {
		open[st.key] = st
	}
	var reasons []string
	for _, id := range asg.Tasks {
		if int(id.Group) >= len(r.cfg.Graph.SubTopologies) {
			continue
		}
		for _, topic := range r.cfg.Graph.SubTopologies[id.Group].SourceTopics {
			k := tpKey{topic, id.Partition}
			p := PartitionProgress{Task: id.String(), Topic: topic, Partition: id.Partition, Position: -1, Committed: -1, Remaining: -1}
			target, ok := mark.ends[k]
			if !ok {
				p.Target = -1
				reasons = append(reasons, fmt.Sprintf("%s[%d] was not in the mark (created since?)", topic, id.Partition))
				rep.Partitions = append(rep.Partitions, p)
				continue
			}
			p.Target = target
			st, ok := open[k]
			if !ok || st.task != id {
				reasons = append(reasons, fmt.Sprintf("task %s is not processing %s[%d] yet (restoring or starting)", id, topic, id.Partition))
				rep.Partitions = append(rep.Partitions, p)
				continue
			}
			p.Position, p.Committed = st.position, st.committed
			n, probe := st.remaining(target)
			if probe && client != nil {
				empty, err := r.tailEmpty(ctx, client, k, st.position, target)
				switch {
				case err != nil:
					reasons = append(reasons, fmt.Sprintf("%s[%d]: %v", topic, id.Partition, err))
				case empty:
					n = 0
				}
			}
			p.Remaining = n
			if n != 0 {
				reasons = append(reasons, fmt.Sprintf("%s[%d] (task %s) has %d offsets left before %d", topic, id.Partition, id, n, target))
			}
			rep.Partitions = append(rep.Partitions, p)
		}
	}
	slices.SortFunc(rep.Partitions, func(a, b PartitionProgress) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	if rep.State != Running {
		reasons = append([]string{"application is " + rep.State.String()}, reasons...)
	}
	if len(reasons) == 0 {
		rep.CaughtUp = true
		return rep
	}
	if len(reasons) > 3 {
		reasons = append(reasons[:3], fmt.Sprintf("and %d more", len(reasons)-3))
	}
	rep.Reason = strings.Join(reasons, "; ")
	return rep
}

// caughtUpPoll is how often WaitCaughtUp checks.
const caughtUpPoll = 100 * time.Millisecond

// WaitCaughtUp waits until the tasks assigned to this instance have
// caught up with mark (CaughtUp), and returns the report that said so. It
// returns the last report and an error when ctx ends first, or when the
// App stops (state Error or Stopped).
func (r *Runtime) WaitCaughtUp(ctx context.Context, mark *EndMark) (CaughtUpReport, error) {
	for {
		rep := r.CaughtUp(ctx, mark)
		if rep.CaughtUp {
			return rep, nil
		}
		if s := r.State(); s == Error || s == Stopped {
			return rep, fmt.Errorf("brook: not caught up: %w (%s)", ErrNotRunning, rep.Reason)
		}
		if !sleepCtx(ctx, caughtUpPoll) {
			return rep, fmt.Errorf("brook: not caught up: %w (%s)", ctx.Err(), rep.Reason)
		}
	}
}
