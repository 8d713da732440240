package assign

import (
	"cmp"
	"slices"
)

// planParams are the leader's settings for one plan.
type planParams struct {
	// standbys is the number of standby copies wanted per stateful task.
	standbys int
	// stateless are the sub-topologies without state to restore: no
	// standbys, caught up on every member.
	stateless map[int32]bool
	// end holds the changelog end offsets summed per task (see
	// Config.EndOffsets); nil: no warm-ups, tasks go where balance puts
	// them.
	end map[TaskID]int64
	// acceptable is the largest lag at which a member counts as caught up.
	acceptable int64
	// maxWarmups bounds the warm-ups across the group.
	maxWarmups int
}

// planned is the leader's plan: per member (every member has an entry in
// each map) its active, standby and warm-up tasks, ascending.
type planned struct {
	active, standby, warmup map[string][]TaskID
	// unassigned are the tasks no member may run.
	unassigned []TaskID
	// warmups are the warm-ups placed, by task.
	warmups []Warmup
	// heldBack counts the tasks kept on a caught-up member instead of
	// going to their balanced target (each is a movement still to make).
	heldBack int
	// standbysPlaced counts standby copies placed; missingStandbys those
	// wanted but without an eligible member to hold them.
	standbysPlaced, missingStandbys int
}

// moving returns the stateful tasks whose balanced target is not their
// previous owner: the only ones whose lags matter for warm-ups.
func (b balanced) moving(stateless map[int32]bool) []TaskID {
	var out []TaskID
	for mi, c := range b.members {
		for _, t := range b.byMember[c.id] {
			if o, ok := b.owner[t]; (!ok || o != mi) && !stateless[t.Group] {
				out = append(out, t)
			}
		}
	}
	slices.SortFunc(out, TaskID.Compare)
	return out
}

// plan assigns the tasks: actives by balance, then the KIP-441
// adjustment (a task whose target is not caught up stays on a caught-up
// member while the target warms it up), then standbys. It is
// deterministic, like balance. b is balance's result for the same tasks
// and members.
//
// Warm-ups (when p.end is set). A member is caught up for a task when
// the task is stateless or has no end offset (nothing to restore), when
// it is the task's previous owner (its stores are the changelog's
// writer), or when the task's end offsets summed minus the member's
// restored sum is at most p.acceptable. When a task's target is not
// caught up and its previous owner, or else its warmest member, is, the
// task stays active there and the target gets a warm-up copy, up to
// p.maxWarmups across the group (warm-ups that continue from the previous
// generation first, then by task). When nobody is caught up, the target
// keeps the task.
//
// Standbys. Each stateful task with an active gets up to p.standbys
// copies on distinct members that may run it and hold no other copy
// (active or warm-up) of it. First previous standbys keep their tasks,
// then members with restored state for a task get it, warmest first,
// while their standby count is within the balanced share (total copies
// over members, the remainder spread one each); the rest go to the
// eligible members with the fewest standbys (then the fewest actives and
// warm-ups), so standby counts differ by at most one whenever the
// exclusions allow it.
func plan(tasks []TaskID, b balanced, p planParams) planned {
	ms := b.members
	out := planned{active: make(map[string][]TaskID, len(ms)), standby: make(map[string][]TaskID, len(ms)),
		warmup: make(map[string][]TaskID, len(ms)), unassigned: b.unassigned}
	for _, c := range ms {
		out.active[c.id], out.standby[c.id], out.warmup[c.id] = []TaskID{}, []TaskID{}, []TaskID{}
	}
	if len(ms) == 0 {
		return out
	}
	activeOf := make(map[TaskID]int, len(tasks))
	for mi, c := range ms {
		for _, t := range b.byMember[c.id] {
			activeOf[t] = mi
		}
	}
	// copies holds, per task, the members with a copy of it (active,
	// warm-up, standby): at most 2 + p.standbys each.
	copies := make(map[TaskID][]int, len(activeOf))
	warmupCount := make([]int, len(ms))

	if p.end != nil {
		caughtUp := func(mi int, t TaskID) bool {
			if p.stateless[t.Group] {
				return true
			}
			end, ok := p.end[t]
			if !ok {
				return true
			}
			if o, ok := b.owner[t]; ok && o == mi {
				return true
			}
			return end-ms[mi].warmth(t) <= p.acceptable
		}
		type held struct {
			t          TaskID
			target     int
			continuing bool
			lag        int64
			source     int
		}
		var hold []held
		for _, t := range b.moving(p.stateless) {
			target := activeOf[t]
			if caughtUp(target, t) {
				continue
			}
			// Caught-up is monotone in warmth, so if the warmest member
			// is not caught up, nobody but the previous owner is.
			source := -1
			if o, ok := b.owner[t]; ok && o != target {
				source = o // caught up by definition
			} else if w, ok := b.warmest[t]; ok && w.best != target && caughtUp(w.best, t) {
				source = w.best
			}
			if source < 0 {
				continue
			}
			w, warming := b.warming[t]
			hold = append(hold, held{t: t, target: target, continuing: warming && w == target,
				lag: max(p.end[t]-ms[target].warmth(t), 0), source: source})
		}
		slices.SortStableFunc(hold, func(a, b held) int {
			if a.continuing != b.continuing {
				if a.continuing {
					return -1
				}
				return 1
			}
			return a.t.Compare(b.t)
		})
		for i, h := range hold {
			activeOf[h.t] = h.source
			out.heldBack++
			if i < p.maxWarmups {
				copies[h.t] = append(copies[h.t], h.target)
				warmupCount[h.target]++
				out.warmup[ms[h.target].id] = append(out.warmup[ms[h.target].id], h.t)
				out.warmups = append(out.warmups, Warmup{Task: h.t, Member: ms[h.target].id,
					Active: ms[h.source].id, Lag: h.lag})
			}
		}
		slices.SortFunc(out.warmups, func(a, b Warmup) int { return a.Task.Compare(b.Task) })
	}
	activeCount := make([]int, len(ms))
	for _, t := range tasks {
		if mi, ok := activeOf[t]; ok {
			out.active[ms[mi].id] = append(out.active[ms[mi].id], t)
			copies[t] = append(copies[t], mi)
			activeCount[mi]++
		}
	}
	if p.standbys > 0 {
		placeStandbys(tasks, ms, p, activeOf, copies, activeCount, warmupCount, &out)
	}
	for _, c := range ms {
		slices.SortFunc(out.warmup[c.id], TaskID.Compare)
		slices.SortFunc(out.standby[c.id], TaskID.Compare)
	}
	return out
}

// placeStandbys places the standby copies (see plan).
func placeStandbys(tasks []TaskID, ms []candidate, p planParams, activeOf map[TaskID]int,
	copies map[TaskID][]int, activeCount, warmupCount []int, out *planned) {
	m := len(ms)
	eligibleCount := make(map[int32]int)
	for _, t := range tasks {
		if _, done := eligibleCount[t.Group]; done || p.stateless[t.Group] {
			continue
		}
		for mi := range ms {
			if ms[mi].groups[t.Group] {
				eligibleCount[t.Group]++
			}
		}
	}
	// need is how many more copies a task may still get.
	need := make(map[TaskID]int)
	total, wanted := 0, 0
	for _, t := range tasks {
		if _, ok := activeOf[t]; !ok || p.stateless[t.Group] {
			continue
		}
		wanted += p.standbys
		n := min(p.standbys, eligibleCount[t.Group]-len(copies[t]))
		if n > 0 {
			need[t] = n
			total += n
		}
	}
	holds := func(mi int, t TaskID) bool { return slices.Contains(copies[t], mi) }
	count := make([]int, m)
	place := func(mi int, t TaskID) {
		count[mi]++
		need[t]--
		copies[t] = append(copies[t], mi)
		out.standby[ms[mi].id] = append(out.standby[ms[mi].id], t)
		out.standbysPlaced++
	}

	// Previous standbys, then warm state, within the balanced share.
	hosts := 0
	for mi := range ms {
		for g := range eligibleCount {
			if ms[mi].groups[g] {
				hosts++
				break
			}
		}
	}
	base, extra := 0, 0
	if hosts > 0 {
		base, extra = total/hosts, total%hosts
	}
	hasRoom := func(mi int) bool { return count[mi] < base || (count[mi] == base && extra > 0) }
	type pair struct {
		t    TaskID
		mi   int
		prev bool
		w    int64
	}
	var pairs []pair
	for mi := range ms {
		d := ms[mi].data
		for _, t := range d.Standby {
			if need[t] > 0 && ms[mi].groups[t.Group] {
				pairs = append(pairs, pair{t, mi, true, ms[mi].warmth(t)})
			}
		}
		for t, w := range d.Warm {
			if _, prev := slices.BinarySearchFunc(d.Standby, t, TaskID.Compare); w > 0 && !prev && need[t] > 0 && ms[mi].groups[t.Group] {
				pairs = append(pairs, pair{t, mi, false, w})
			}
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if a.prev != b.prev {
			if a.prev {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.w, a.w); c != 0 {
			return c
		}
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.mi, b.mi)
	})
	for _, pr := range pairs {
		if need[pr.t] > 0 && hasRoom(pr.mi) && !holds(pr.mi, pr.t) {
			if count[pr.mi] == base {
				extra--
			}
			place(pr.mi, pr.t)
		}
	}

	// The rest: per sub-topology, a heap of its eligible members by
	// (standbys, actives and warm-ups, index). Members holding a copy of
	// the task at hand are set aside and pushed back after it: at most
	// 1 + p.standbys + 1 per task. Within a sub-topology the tasks come
	// by active member, so that one member's tasks get their standbys on
	// successive least-loaded members, not all on the same one: when it
	// fails, its tasks spread over many standbys.
	rest := slices.Clone(tasks)
	slices.SortFunc(rest, func(a, b TaskID) int {
		if c := cmp.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		if c := cmp.Compare(activeOf[a], activeOf[b]); c != 0 {
			return c
		}
		return cmp.Compare(a.Partition, b.Partition)
	})
	var h *loadHeap
	group := int32(-1)
	var aside []load
	for _, t := range rest {
		if need[t] <= 0 {
			continue
		}
		if h == nil || t.Group != group {
			group = t.Group
			h = &loadHeap{}
			for mi := range ms {
				if ms[mi].groups[group] {
					h.push(load{count[mi], activeCount[mi] + warmupCount[mi], mi})
				}
			}
		}
		for need[t] > 0 {
			aside = aside[:0]
			for h.len() > 0 && holds(h.min().mi, t) {
				aside = append(aside, h.pop())
			}
			if h.len() == 0 {
				for _, a := range aside {
					h.push(a)
				}
				break
			}
			mi := h.pop().mi
			place(mi, t)
			h.push(load{count[mi], activeCount[mi] + warmupCount[mi], mi})
			for _, a := range aside {
				h.push(a)
			}
		}
	}
	evenStandbys(ms, count, copies, out)
	out.missingStandbys = wanted - out.standbysPlaced
}

// evenStandbys moves standbys from the member with the most to members
// with at least two fewer that may hold them, until counts differ by at
// most one or no such move exists. Stickiness can leave the counts
// uneven: when the tasks still needing a standby are all active on the
// members with the fewest, those members cannot take them. Each move
// scans the group once, and the moves are few: the earlier steps keep
// every member within one of its share except for such exclusions.
func evenStandbys(ms []candidate, count []int, copies map[TaskID][]int, out *planned) {
	hosts := make([]int, 0, len(ms))
	for mi := range ms {
		if len(ms[mi].groups) > 0 {
			hosts = append(hosts, mi)
		}
	}
	stuck := make(map[int]bool)
	for {
		hi, lo := -1, -1
		for _, mi := range hosts {
			if !stuck[mi] && (hi < 0 || count[mi] > count[hi]) {
				hi = mi
			}
			if lo < 0 || count[mi] < count[lo] {
				lo = mi
			}
		}
		if hi < 0 || count[hi]-count[lo] <= 1 {
			return
		}
		// The least-loaded member that can take one of hi's standbys,
		// trying the latest placed (least sticky) first.
		from := out.standby[ms[hi].id]
		best, bestAt := -1, -1
		for _, mi := range hosts {
			if count[mi] > count[hi]-2 || (best >= 0 && count[mi] >= count[best]) {
				continue
			}
			for i := len(from) - 1; i >= 0; i-- {
				t := from[i]
				if ms[mi].groups[t.Group] && !slices.Contains(copies[t], mi) {
					best, bestAt = mi, i
					break
				}
			}
		}
		if best < 0 {
			stuck[hi] = true
			continue
		}
		t := from[bestAt]
		out.standby[ms[hi].id] = slices.Delete(from, bestAt, bestAt+1)
		out.standby[ms[best].id] = append(out.standby[ms[best].id], t)
		copies[t][slices.Index(copies[t], hi)] = best
		count[hi]--
		count[best]++
	}
}
