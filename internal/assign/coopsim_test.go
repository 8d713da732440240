package assign

import (
	"fmt"
	"maps"
	"slices"
	"testing"
)

// coopEvent runs the rebalances sarama's cooperative protocol runs after
// one change (a join, a leave, a probing rebalance): one rebalance, then
// a follow-up as long as some member gave up tasks in the last one. It
// fails unless that ends within limit rebalances, a task a member gave
// up never comes back to it during the event (no ping-pong), and a task
// that is on the same member before and after the event stays there
// throughout (retained tasks are never revoked). The group simulation
// checks that no partition is ever held by two members at once. It
// returns the rebalances run and the tasks withheld in each.
func (w *world) coopEvent(limit int) (rounds int, withheld []int) {
	w.t.Helper()
	before := owners(w.last)
	var seen []map[TaskID]string
	gaveUp := map[TaskID][]string{}
	for {
		cur := w.rebalance()
		rounds++
		withheld = append(withheld, w.report.Withheld)
		now := owners(cur)
		seen = append(seen, now)
		for task, o := range now {
			if slices.Contains(gaveUp[task], o) {
				w.t.Fatalf("generation %d (round %d of the event): task %s is back on %s, which gave it up earlier in the event", w.gen, rounds, task, o)
			}
		}
		follow := false
		for id, ts := range w.revoked {
			for _, task := range ts {
				gaveUp[task] = append(gaveUp[task], id)
				follow = true
				// The member keeps a copy of what it gives up: its
				// OnAssignment accepted a standby or warm-up of a task it
				// still ran (the group simulation checks that Local has
				// the assignment).
				if slices.Contains(w.standby[id], task) || slices.Contains(w.warmup[id], task) {
					w.copiesOfRevoked++
				}
			}
		}
		if !follow {
			break
		}
		if rounds == limit {
			w.t.Fatalf("generation %d: members still give up tasks after %d rebalances: %v (withheld per round %v)", w.gen, rounds, w.revoked, withheld)
		}
	}
	final := seen[len(seen)-1]
	for task, o := range before {
		if final[task] != o {
			continue
		}
		for r, m := range seen {
			if m[task] != o {
				w.t.Fatalf("task %s stays on %s but was on %q in round %d of the event", task, o, m[task], r+1)
			}
		}
	}
	return rounds, withheld
}

// settleCoop runs probing events until nothing is held back, at most
// limit of them, each within two rebalances.
func (w *world) settleCoop(limit int) {
	w.t.Helper()
	for n := 0; w.report.HeldBack > 0; n++ {
		if n == limit {
			w.t.Fatalf("still %d tasks held back after %d probing rebalances", w.report.HeldBack, limit)
		}
		w.coopEvent(2)
	}
}

// checkQuiet runs one more rebalance without any change and fails if a
// task moves or a member gives one up.
func (w *world) checkQuiet() {
	w.t.Helper()
	before := owners(w.last)
	cur := owners(w.rebalance())
	if len(w.revoked) > 0 || w.report.Withheld > 0 || !maps.Equal(before, cur) {
		w.t.Fatalf("generation %d: a rebalance without change gives up %v, withholds %d, moves %d tasks", w.gen, w.revoked, w.report.Withheld, moved(invert(before), invert(cur)))
	}
}

func invert(o map[TaskID]string) map[string][]TaskID {
	out := map[string][]TaskID{}
	for t, id := range o {
		out[id] = append(out[id], t)
	}
	return out
}

// TestCooperativeConvergence drives cooperative members through joins
// and leaves, with 0 to 3 standbys, with and without warm-ups: each
// change settles within two rebalances (the rebalance and the follow-up
// that members giving up tasks start), a task is never held by two
// members at once, never returns to the member that gave it up, retained
// tasks are never revoked, and a rebalance without change then changes
// nothing. With warm-ups, probing rebalances move the warmed-up tasks
// under the same rules until nothing is held back.
func TestCooperativeConvergence(t *testing.T) {
	for _, warmups := range []bool{false, true} {
		for standbys := range 4 {
			for _, scenario := range []string{"join", "leave", "joins", "leave-join"} {
				name := fmt.Sprintf("warmups=%v/standbys=%d/%s", warmups, standbys, scenario)
				t.Run(name, func(t *testing.T) {
					w := newWorld(t, standbys, warmups, nil)
					w.step = 300_000
					start := []string{"a", "b", "c"}
					for _, id := range append(start, "d", "e", "f") {
						w.coop[id] = true
					}
					w.join(start...)
					w.coopEvent(2)
					w.coopEvent(2)
					w.checkQuiet()
					withheld := 0
					switch scenario {
					case "join":
						w.join("d")
					case "leave":
						w.leave("b")
					case "joins":
						w.join("d", "e", "f")
					case "leave-join":
						w.leave("b")
						w.join("d")
					}
					_, per := w.coopEvent(2)
					withheld += per[0]
					if w.report.HeldBack == 0 {
						w.checkQuiet()
					}
					w.settleCoop(100)
					w.checkQuiet()
					checkBalanced(t, w.last, copyTasks)

					t.Logf("withheld in the change's first rebalance: %d", withheld)
				})
			}
		}
	}
}

// TestCooperativeRandomized walks random joins and leaves with 0 to 3
// standbys, with and without warm-ups, running the probing rebalances
// after each change until nothing is held back, and checks every event
// (a change, a probing rebalance) with coopEvent's rules: no partition
// held twice, no task back on a member that gave it up in the event,
// retained tasks never revoked, and the group ends balanced. With
// standbys, members keep standbys of tasks they give up (accepted while
// they still run the task).
//
//   - full: members report warm state for all their tasks, and nothing
//     is restored between the rebalances of an event (the follow-up
//     comes at once). The follow-up then learns nothing new, and every
//     event settles within two rebalances.
//   - bounded: members report warm state as brook does (their own
//     tasks, copies and pending tasks, and 8 others). A member that
//     restarted with state on disk reports more of it once it holds
//     copies, so a follow-up may learn that it is caught up for a task
//     that waited and move that one too: at most three rebalances.
//   - restoring: as bounded, and the members restore (and the changelogs
//     grow) between the rebalances of an event as between any others:
//     a warm-up restores half a million offsets, so the follow-ups find
//     warm-ups caught up and move those tasks at once, as probing
//     rebalances would. The event then lasts as long as warm-ups keep
//     catching up (bounded here at 20 rebalances); the other rules hold.
//   - mixed: as bounded, with half the members on the eager protocol.
func TestCooperativeRandomized(t *testing.T) {
	for _, mode := range []string{"full", "bounded", "restoring", "mixed"} {
		for _, warmups := range []bool{false, true} {
			for standbys := range 4 {
				t.Run(fmt.Sprintf("%s/warmups=%v/standbys=%d", mode, warmups, standbys), func(t *testing.T) {
					limit := map[string]int{"full": 2, "bounded": 3, "restoring": 20, "mixed": 3}[mode]
					w := newWorld(t, standbys, warmups, nil)
					w.step = 500_000 // restores outpace the changelogs' growth
					w.fullWarm = mode == "full"
					w.restoreBetween = mode == "restoring"
					pool := ids(8)
					for i, id := range pool {
						w.coop[id] = mode != "mixed" || i%2 == 0
					}
					w.join(pool[:3]...)
					w.coopEvent(limit)
					x := uint32(7919 + standbys)
					next := func(n int) int { x = x*1103515245 + 12345; return int(x>>16) % n }
					rounds := map[int]int{}
					withheld := 0
					event := func() {
						r, per := w.coopEvent(limit)
						rounds[r]++
						for _, n := range per {
							withheld += n
						}
					}
					for range 60 {
						id := pool[next(len(pool))]
						if _, in := w.members[id]; in && len(w.members) > 1 {
							w.leave(id)
						} else if !in {
							w.join(id)
						}
						event()
						for n := 0; w.report.HeldBack > 0; n++ {
							if n > 100 {
								t.Fatalf("still %d tasks held back", w.report.HeldBack)
							}
							event()
						}
						checkBalanced(t, w.last, copyTasks)
					}
					if standbys > 0 && w.copiesOfRevoked == 0 {
						t.Error("no member kept a standby of a task it gave up")
					}
					t.Logf("events by rebalances they took: %v; %d tasks withheld; %d tasks given up with a copy kept", rounds, withheld, w.copiesOfRevoked)
				})
			}
		}
	}
}
