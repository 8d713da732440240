package assign

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/IBM/sarama"
)

// copyShape has two stateful sub-topologies (20 tasks) and one stateless
// one (4 tasks).
var copyShape = []TaskGroup{
	{ID: 0, Topics: []string{"orders", "payments"}},
	{ID: 1, Topics: []string{"profiles"}},
	{ID: 2, Topics: []string{"clicks"}, Stateless: true},
}

var copyPartitions = map[string]int{"orders": 12, "payments": 12, "profiles": 8, "clicks": 4}

const (
	copyTasks         = 24
	copyStatefulTasks = 20
)

// world is a group whose members restore state the way the runtime does:
// after each rebalance, active and standby tasks are restored to the
// changelogs' end, warm-ups advance by step offsets per rebalance, and
// state of tasks a member no longer holds stays on its disk. The
// changelogs grow by grow offsets per rebalance.
type world struct {
	*group
	end        map[TaskID]int64
	disk       map[string]map[TaskID]int64
	step, grow int64
	// jitter adds up to that many offsets more per changelog and rebalance.
	jitter int64
	// endCalls counts EndOffsets calls; asked the tasks of the last;
	// endErr makes them fail.
	endCalls int
	asked    []TaskID
	endErr   error
	// restoreBetween lets the changelogs and the members' state move on
	// after a rebalance in which cooperative members gave up tasks, as
	// after any other. Without it they stay as they are: the follow-up
	// rebalance those members start comes at once, before anything more
	// has been restored.
	restoreBetween bool
	// copiesOfRevoked counts the tasks a cooperative member gave up while
	// its new assignment has a standby or warm-up of them (coopEvent).
	copiesOfRevoked int
}

func newWorld(t *testing.T, standbys int, warmups bool, adjust func(*Config)) *world {
	w := &world{group: newGroup(t, copyShape, copyPartitions), end: map[TaskID]int64{},
		disk: map[string]map[TaskID]int64{}, step: 40_000, grow: 1_000, jitter: 30_000}
	for g, n := range map[int32]int32{0: 12, 1: 8} {
		for p := range n {
			w.end[TaskID{g, p}] = 1_000_000 + int64(p)*1_000
		}
	}
	w.cfg = func(id string, c *Config) {
		c.Standbys = standbys
		if warmups {
			c.EndOffsets = w.endOffsets
		}
		if adjust != nil {
			adjust(c)
		}
	}
	return w
}

func (w *world) endOffsets(ctx context.Context, tasks []TaskID) (map[TaskID]int64, error) {
	if _, ok := ctx.Deadline(); !ok {
		w.t.Error("EndOffsets called without a deadline")
	}
	w.endCalls++
	w.asked = tasks
	if w.endErr != nil {
		return nil, w.endErr
	}
	out := map[TaskID]int64{}
	for _, t := range tasks {
		if e, ok := w.end[t]; ok {
			out[t] = e
		}
	}
	return out, nil
}

// rebalance runs a generation, checks the copies' invariants, and then
// lets the members restore.
func (w *world) rebalance() map[string][]TaskID {
	w.t.Helper()
	got := w.group.rebalance()
	w.checkCopies()
	if len(w.revoked) > 0 && !w.restoreBetween {
		return got
	}
	for t := range w.end {
		// Changelogs grow at different rates, so the order of a member's
		// tasks by warmth changes from one rebalance to the next.
		w.end[t] += w.grow + int64(((uint32(w.gen)*2654435761)^(uint32(t.Group*131+t.Partition)*40503))%uint32(w.jitter+1))
	}
	for id := range w.members {
		d := w.disk[id]
		if d == nil {
			d = map[TaskID]int64{}
			w.disk[id] = d
		}
		for _, t := range slices.Concat(got[id], w.standby[id]) {
			if e, ok := w.end[t]; ok {
				d[t] = e
			}
		}
		for _, t := range w.warmup[id] {
			d[t] = min(w.end[t], d[t]+w.step)
		}
		restored := map[TaskID]map[string]int64{}
		for t, off := range d {
			restored[t] = map[string]int64{"changelog": off}
		}
		w.state[id] = LocalState{Restored: restored}
	}
	return got
}

// lag is member id's lag for task t before the next rebalance.
func (w *world) lag(id string, t TaskID) int64 { return w.end[t] - w.disk[id][t] }

// checkCopies checks what must hold of standbys and warm-ups in every
// generation: copies only of stateful tasks, on distinct members (never
// the active's: the group simulation checks that), every stateful task
// with as many standbys as the group allows, and the warm-up bound.
func (w *world) checkCopies() {
	w.t.Helper()
	want := min(w.wantStandbys(), len(w.members)-1)
	holders := map[TaskID][]string{}
	warm := 0
	for id := range w.members {
		for _, t := range slices.Concat(w.standby[id], w.warmup[id]) {
			if copyShape[t.Group].Stateless {
				w.t.Fatalf("generation %d: member %s has a copy of stateless task %s", w.gen, id, t)
			}
			if slices.Contains(holders[t], id) {
				w.t.Fatalf("generation %d: member %s holds two copies of %s", w.gen, id, t)
			}
			holders[t] = append(holders[t], id)
		}
		warm += len(w.warmup[id])
		if len(w.warmup[id]) > 0 && w.probing[id] <= 0 {
			w.t.Fatalf("generation %d: member %s has warm-ups %v but no probing delay", w.gen, id, w.warmup[id])
		}
		if len(w.warmup[id]) == 0 && w.probing[id] != 0 {
			w.t.Fatalf("generation %d: member %s has a probing delay without warm-ups", w.gen, id)
		}
	}
	missing := 0
	for t := range w.end {
		n, warming := 0, 0
		for _, id := range holders[t] {
			if slices.Contains(w.standby[id], t) {
				n++
			} else {
				warming++
			}
		}
		// A member warming the task up holds its copy already.
		if want := min(want, len(w.members)-1-warming); n != want {
			w.t.Fatalf("generation %d: task %s has %d standbys, want %d (%v)", w.gen, t, n, want, holders[t])
		}
		missing += w.wantStandbys() - n
	}
	if maxW := w.maxWarmups(); warm > maxW {
		w.t.Fatalf("generation %d: %d warm-ups, at most %d allowed", w.gen, warm, maxW)
	}
	if len(w.report.Warmups) != warm || w.report.MissingStandbys != missing {
		w.t.Fatalf("generation %d: report %+v, %d warm-ups", w.gen, w.report, warm)
	}
}

func (w *world) config() Config {
	var c Config
	w.cfg("", &c)
	return c
}

func (w *world) wantStandbys() int { return w.config().Standbys }

func (w *world) maxWarmups() int {
	if w.config().EndOffsets == nil {
		return 0
	}
	return cmp0(w.config().MaxWarmups, DefaultMaxWarmups)
}

func cmp0(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// spread is the largest minus the smallest count of per-member tasks.
func spread(m map[string][]TaskID) int {
	lo, hi := -1, 0
	for _, ts := range m {
		if lo < 0 || len(ts) < lo {
			lo = len(ts)
		}
		hi = max(hi, len(ts))
	}
	return hi - max(lo, 0)
}

// standbyHolders maps each task to its standby holders.
func standbyHolders(standby map[string][]TaskID) map[TaskID][]string {
	out := map[TaskID][]string{}
	for id, ts := range standby {
		for _, t := range ts {
			out[t] = append(out[t], id)
		}
	}
	return out
}

// TestStandbyPlacementRandomized walks random joins and leaves with one
// and two standbys (no warm-ups) and checks after every rebalance: each
// stateful task has min(standbys, members-1) standbys on distinct members,
// never the active's (checkCopies), standby counts per member differ by
// at most one (when there are more than standbys+1 members), actives stay
// balanced; a rebalance that changes nothing moves no standby; a leave or
// a join moves standbys in proportion to the leaver's or the newcomer's
// share only (a standby that became active does not count as moved).
func TestStandbyPlacementRandomized(t *testing.T) {
	for _, standbys := range []int{1, 2} {
		t.Run(fmt.Sprintf("standbys=%d", standbys), func(t *testing.T) {
			w := newWorld(t, standbys, false, nil)
			pool := ids(9)
			w.join(pool[:4]...)
			w.rebalance()
			x := uint32(777 + standbys)
			next := func(n int) int { x = x*1103515245 + 12345; return int(x>>16) % n }
			for step := range 150 {
				prevActive, prevStandby := w.last, w.standby
				id := pool[next(len(pool))]
				_, in := w.members[id]
				switch {
				case in && len(w.members) > 1:
					w.leave(id)
				case !in:
					w.join(id)
				}
				cur := w.rebalance()
				checkBalanced(t, cur, copyTasks)
				// With only standbys+1 members every member holds every
				// stateful task it does not run: nothing to balance.
				if s := spread(w.standby); s > 1 && len(w.members) > standbys+1 {
					t.Fatalf("step %d: standby counts differ by %d: %v", step, s, w.standby)
				}
				movedStandbys := 0
				for m, ts := range prevStandby {
					if _, stays := w.members[m]; !stays {
						continue
					}
					for _, task := range ts {
						if !slices.Contains(w.standby[m], task) && !slices.Contains(cur[m], task) {
							movedStandbys++
						}
					}
				}
				if in {
					// The leaver's standbys need new holders, and so do
					// its failed tasks, now active where their standby
					// was; evening the counts out may move as many again.
					if limit := 2 * (len(prevActive[id]) + len(prevStandby[id])); movedStandbys > limit {
						t.Fatalf("step %d: %s left: %d standbys moved, want at most %d", step, id, movedStandbys, limit)
					}
				} else {
					if limit := len(w.standby[id]) + moved(prevActive, cur); movedStandbys > limit {
						t.Fatalf("step %d: %s joined: %d standbys moved, want at most %d", step, id, movedStandbys, limit)
					}
				}
				// Nothing changes: nothing moves.
				before := maps.Clone(w.standby)
				again := w.rebalance()
				if moved(cur, again) != 0 {
					t.Fatalf("step %d: actives moved in a rebalance that changed nothing", step)
				}
				for m := range w.members {
					if !slices.Equal(before[m], w.standby[m]) {
						t.Fatalf("step %d: %s's standbys went from %v to %v in a rebalance that changed nothing", step, m, before[m], w.standby[m])
					}
				}
			}
		})
	}
}

// TestStandbyFewerMembersThanCopies: with fewer members than standbys+1
// the leader places as many as it can, without an error, and reports the
// rest as missing.
func TestStandbyFewerMembersThanCopies(t *testing.T) {
	w := newWorld(t, 3, false, nil)
	w.join("a")
	w.rebalance() // checkCopies: no standbys, 60 missing
	w.join("b", "c")
	w.rebalance() // two each
	if w.report.Standbys != 2*copyStatefulTasks || w.report.MissingStandbys != copyStatefulTasks {
		t.Errorf("report %+v", w.report)
	}
}

// TestFailoverGoesToStandby: when a member leaves, each of its tasks
// becomes active on a member that kept a standby of it, which has to
// restore only the tail: with warm-ups on, whatever the balance, and
// without them when the standby's holder has room.
func TestFailoverGoesToStandby(t *testing.T) {
	for _, warmups := range []bool{true, false} {
		t.Run(fmt.Sprintf("warmups=%v", warmups), func(t *testing.T) {
			w := newWorld(t, 1, warmups, nil)
			// The changelogs grow faster than the acceptable lag, so only
			// standbys are caught up for a failed active.
			w.grow, w.step = 50_000, 1_000_000
			pool := ids(6)
			w.join(pool...)
			w.rebalance()
			w.rebalance()
			x := uint32(4242)
			next := func(n int) int { x = x*1103515245 + 12345; return int(x>>16) % n }
			failovers := 0
			for step := range 60 {
				w.settle(300) // no movement pending
				ms := slices.Sorted(maps.Keys(w.members))
				gone := ms[next(len(ms))]
				prevActive, holders := w.last, standbyHolders(w.standby)
				w.leave(gone)
				cur := w.rebalance()
				for _, task := range prevActive[gone] {
					if copyShape[task.Group].Stateless {
						continue
					}
					owner := ""
					for m, ts := range cur {
						if slices.Contains(ts, task) {
							owner = m
						}
					}
					if slices.Contains(holders[task], owner) {
						failovers++
						continue
					}
					if warmups {
						t.Fatalf("step %d: %s left; its task %s went to %s, not to its standby %v", step, gone, task, owner, holders[task])
					}
					// Without warm-ups only a standby holder without
					// room may be passed over.
					share := (copyTasks + len(cur) - 1) / len(cur)
					for _, h := range holders[task] {
						if len(cur[h]) < share-1 {
							t.Fatalf("step %d: task %s went to %s though its standby %s had room (%v)", step, task, owner, h, cur)
						}
					}
				}
				w.join(gone)
				w.rebalance()
			}
			if failovers == 0 {
				t.Fatal("no task failed over to a standby")
			}
			t.Logf("%d failovers to a standby", failovers)
		})
	}
}

// TestCopySettingsValidated: negative standby and warm-up settings are
// rejected; zero means the documented defaults.
func TestCopySettingsValidated(t *testing.T) {
	for name, c := range map[string]Config{
		"standbys":    {Standbys: -1},
		"lag":         {AcceptableRecoveryLag: -1},
		"warm-ups":    {MaxWarmups: -1},
		"probing":     {ProbingInterval: -1},
		"end timeout": {EndOffsetsTimeout: -1},
	} {
		c.Groups = copyShape
		if _, err := NewStrategy(c); err == nil {
			t.Errorf("negative %s accepted", name)
		}
	}
	s, err := NewStrategy(Config{Groups: copyShape})
	if err != nil {
		t.Fatal(err)
	}
	if s.acceptable != DefaultAcceptableRecoveryLag || s.maxWarmups != DefaultMaxWarmups || s.probing != DefaultProbingInterval || s.endTimeout != DefaultEndOffsetsTimeout {
		t.Errorf("defaults %d %d %v %v", s.acceptable, s.maxWarmups, s.probing, s.endTimeout)
	}
}

// TestOnAssignmentRejectsBadCopies: an assignment whose standby or
// warm-up tasks are active on the member, or no tasks of the topology,
// cannot be read.
func TestOnAssignmentRejectsBadCopies(t *testing.T) {
	s, err := NewStrategy(Config{Groups: copyShape})
	if err != nil {
		t.Fatal(err)
	}
	parts := map[int32]int32{0: 12, 1: 8, 2: 4}
	for name, a := range map[string]MemberAssignment{
		"standby also active": {Generation: 3, Partitions: parts, Standby: []TaskID{{1, 0}}},
		"warm-up also active": {Generation: 3, Partitions: parts, Warmup: []TaskID{{1, 0}}},
		"unknown group":       {Generation: 3, Partitions: parts, Standby: []TaskID{{7, 0}}},
		"beyond partitions":   {Generation: 3, Partitions: parts, Standby: []TaskID{{1, 8}}},
	} {
		data, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		s.OnAssignment(&sarama.ConsumerGroupMemberAssignment{Topics: map[string][]int32{"profiles": {0}}, UserData: data}, 3)
		if _, ok := s.Local(); ok {
			t.Errorf("%s: assignment accepted", name)
		}
	}
	good, _ := MemberAssignment{Generation: 3, Partitions: parts, Standby: []TaskID{{0, 1}}, Warmup: []TaskID{{1, 1}}}.MarshalBinary()
	s.OnAssignment(&sarama.ConsumerGroupMemberAssignment{Topics: map[string][]int32{"profiles": {0}}, UserData: good}, 3)
	if l, ok := s.Local(); !ok || !slices.Equal(l.Standby, []TaskID{{0, 1}}) || !slices.Equal(l.Warmup, []TaskID{{1, 1}}) || !slices.Equal(l.Tasks, []TaskID{{1, 0}}) {
		t.Errorf("Local() = %+v, %v", l, ok)
	}
}
