package assign

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
)

// owners maps each task to the member running it.
func owners(active map[string][]TaskID) map[TaskID]string {
	out := map[TaskID]string{}
	for id, ts := range active {
		for _, t := range ts {
			out[t] = id
		}
	}
	return out
}

// settle rebalances until no movement is pending, at most limit times,
// and returns how many rebalances that took.
func (w *world) settle(limit int) int {
	w.t.Helper()
	for n := 0; ; n++ {
		if w.report.HeldBack == 0 {
			return n
		}
		if n == limit {
			w.t.Fatalf("still %d tasks held back after %d rebalances: %+v", w.report.HeldBack, limit, w.report)
		}
		w.rebalance()
	}
}

// TestWarmupScaleOut: a new member first receives warm-up copies of tasks
// it should take over, while their caught-up owners keep running them; a
// task moves only once the newcomer's lag is within the acceptable bound;
// the group converges to the balanced assignment through probing
// rebalances; warm-ups never exceed the maximum; EndOffsets is asked only
// about tasks that would move.
func TestWarmupScaleOut(t *testing.T) {
	w := newWorld(t, 0, true, nil)
	w.join("a", "b")
	w.rebalance()
	w.rebalance()
	calls := w.endCalls
	w.rebalance()
	if w.endCalls != calls {
		t.Errorf("EndOffsets called %d times in a steady rebalance", w.endCalls-calls)
	}
	before := w.last

	w.join("c")
	endBefore := maps.Clone(w.end) // c has no state: its lags
	cur := w.rebalance()
	if len(w.asked) == 0 || len(w.asked) > copyTasks/3 {
		t.Errorf("EndOffsets asked about %d tasks, want only c's share: %v", len(w.asked), w.asked)
	}
	for _, task := range cur["c"] {
		if !copyShape[task.Group].Stateless {
			t.Errorf("stateful task %s moved to c at once, lag %d", task, w.end[task])
		}
	}
	if len(cur["c"]) == 0 {
		t.Error("c got no stateless task (those need no warm-up)")
	}
	prevOwner := owners(before)
	for task, o := range owners(cur) {
		if o != prevOwner[task] && !copyShape[task.Group].Stateless {
			t.Errorf("stateful task %s moved from %s to %s", task, prevOwner[task], o)
		}
	}
	warm := slices.Clone(w.warmup["c"])
	if len(warm) != DefaultMaxWarmups || w.report.HeldBack < DefaultMaxWarmups {
		t.Fatalf("c warms up %v; report %+v", warm, w.report)
	}
	if w.probing["c"] != DefaultProbingInterval || w.probing["a"] != 0 || w.report.ProbingRebalance != DefaultProbingInterval {
		t.Errorf("probing delays %v, report %v", w.probing, w.report.ProbingRebalance)
	}
	for _, wu := range w.report.Warmups {
		if wu.Member != "c" || wu.Active != prevOwner[wu.Task] || wu.Lag != endBefore[wu.Task] {
			t.Errorf("warm-up %+v (previous owner %s, end %d)", wu, prevOwner[wu.Task], endBefore[wu.Task])
		}
	}

	// The warm-ups continue on c until caught up, then the tasks move.
	for round := 0; len(warm) > 0; round++ {
		if round > 200 {
			t.Fatalf("warm-ups %v never finished", warm)
		}
		lags := map[TaskID]int64{}
		for _, task := range warm {
			lags[task] = w.lag("c", task)
		}
		cur = w.rebalance()
		var still []TaskID
		for _, task := range warm {
			active := slices.Contains(cur["c"], task)
			if caught := lags[task] <= DefaultAcceptableRecoveryLag; caught != active {
				t.Fatalf("task %s with c's lag %d: active on c = %v", task, lags[task], active)
			}
			if !active {
				still = append(still, task)
				if !slices.Contains(w.warmup["c"], task) {
					t.Fatalf("c's warm-up of %s was dropped before it caught up: %v", task, w.warmup["c"])
				}
			}
		}
		warm = still
	}
	n := w.settle(200)
	checkBalanced(t, w.last, copyTasks)
	for id, d := range w.probing {
		if d != 0 {
			t.Errorf("%s still has a probing delay %v after convergence", id, d)
		}
	}
	t.Logf("converged %d rebalances after the first warm-ups finished", n)
}

// TestWarmupMaxWarmups: the bound on warm-ups holds across the group,
// whatever the number of newcomers.
func TestWarmupMaxWarmups(t *testing.T) {
	for _, maxW := range []int{1, 3, 50} {
		t.Run(fmt.Sprint(maxW), func(t *testing.T) {
			w := newWorld(t, 1, true, func(c *Config) { c.MaxWarmups = maxW })
			w.join("a", "b")
			w.rebalance()
			w.join("c", "d", "e")
			w.rebalance() // checkCopies checks the bound
			got := 0
			for _, ts := range w.warmup {
				got += len(ts)
			}
			if want := min(maxW, w.report.HeldBack); got != want {
				t.Errorf("%d warm-ups, want %d (%d held back)", got, want, w.report.HeldBack)
			}
			w.settle(300)
			checkBalanced(t, w.last, copyTasks)
		})
	}
}

// TestWarmupNotNeeded: when nobody is caught up (a cold group, or an
// owner that left without standbys and nobody else has state) tasks go
// where balance puts them; a member whose lag is within the bound takes
// its tasks at once; stateless tasks never wait.
func TestWarmupNotNeeded(t *testing.T) {
	w := newWorld(t, 0, true, nil)
	w.join("a", "b", "c")
	checkBalanced(t, w.rebalance(), copyTasks)
	if w.report.HeldBack != 0 || len(w.report.Warmups) != 0 {
		t.Errorf("a cold group holds tasks back: %+v", w.report)
	}
	w.leave("b")
	checkBalanced(t, w.rebalance(), copyTasks)
	if w.report.HeldBack != 0 {
		t.Errorf("tasks of a member that left without standbys were held back: %+v", w.report)
	}

	// Small changelogs: a newcomer is within the bound at once.
	w2 := newWorld(t, 0, true, func(c *Config) { c.AcceptableRecoveryLag = 2_000_000 })
	w2.join("a", "b")
	w2.rebalance()
	w2.join("c")
	checkBalanced(t, w2.rebalance(), copyTasks)
	if w2.report.HeldBack != 0 {
		t.Errorf("a newcomer within the acceptable lag waits: %+v", w2.report)
	}
}

// TestWarmupEndOffsetsFails: when the end offsets cannot be read, the
// leader plans as without warm-ups, reports the error and the rebalance
// goes on.
func TestWarmupEndOffsetsFails(t *testing.T) {
	w := newWorld(t, 1, true, nil)
	w.join("a", "b")
	w.rebalance()
	outage := errors.New("broker unreachable")
	w.endErr = outage
	w.join("c")
	checkBalanced(t, w.rebalance(), copyTasks)
	var e *EndOffsetsError
	if !errors.As(w.report.EndOffsetsErr, &e) || !errors.Is(w.report.EndOffsetsErr, outage) || e.Tasks == 0 {
		t.Fatalf("report error %v", w.report.EndOffsetsErr)
	}
	if w.report.HeldBack != 0 || len(w.warmup["c"]) != 0 {
		t.Errorf("warm-ups without end offsets: %+v", w.report)
	}
	w.endErr = nil
	w.rebalance()
	if w.report.EndOffsetsErr != nil {
		t.Errorf("a steady rebalance reports %v", w.report.EndOffsetsErr)
	}
}

// TestWarmupRandomized walks random joins and leaves with warm-ups and a
// standby, and after each change rebalances until nothing is held back:
// the group always converges to a balanced assignment, and while it does
// no stateful task ever runs on a member that is not caught up if a
// caught-up member was available.
func TestWarmupRandomized(t *testing.T) {
	w := newWorld(t, 1, true, nil)
	w.step = 500_000 // restores outpace the changelogs' growth
	pool := ids(7)
	w.join(pool[:3]...)
	w.rebalance()
	x := uint32(31337)
	next := func(n int) int { x = x*1103515245 + 12345; return int(x>>16) % n }
	for step := range 40 {
		id := pool[next(len(pool))]
		if _, in := w.members[id]; in && len(w.members) > 1 {
			w.leave(id)
		} else if !in {
			w.join(id)
		}
		for round := 0; ; round++ {
			// Lags before this rebalance, as the leader sees them.
			prev := owners(w.last)
			lag := func(m string, t TaskID) int64 {
				if prev[t] == m {
					return 0
				}
				return w.end[t] - w.disk[m][t]
			}
			cur := w.rebalance()
			for task, o := range owners(cur) {
				if copyShape[task.Group].Stateless || lag(o, task) <= DefaultAcceptableRecoveryLag {
					continue
				}
				for m := range w.members {
					if lag(m, task) <= DefaultAcceptableRecoveryLag {
						t.Fatalf("step %d round %d: task %s runs on %s (lag %d) though %s is caught up (lag %d)",
							step, round, task, o, lag(o, task), m, lag(m, task))
					}
				}
			}
			if w.report.HeldBack == 0 {
				break
			}
			if round > 300 {
				t.Fatalf("step %d: no convergence: %+v", step, w.report)
			}
		}
		checkBalanced(t, w.last, copyTasks)
	}
}
