package assign

import (
	"cmp"
	"slices"
	"strings"
)

// candidate is one group member as the balancing algorithm sees it.
type candidate struct {
	id   string
	data MemberData
	// groups are the sub-topologies whose present source topics the member
	// subscribes to; it may run only their tasks.
	groups map[int32]bool
}

// warmth is how much state a member has restored for a task: the sum of
// its restored changelog offsets (0 when it has none).
func (c *candidate) warmth(t TaskID) int64 {
	if w := c.data.Warm[t]; w > 0 {
		return w
	}
	return 0
}

// balance assigns tasks to members. It is deterministic: the same inputs
// give the same result whatever the order of members.
//
// The rules, in priority order:
//
//  1. A task goes only to a member that subscribes to its sources.
//  2. Balance: with n tasks and m members every member gets n/m or n/m+1
//     tasks (when every member may run every task; otherwise as close as
//     the subscriptions allow).
//  3. Stickiness: a member keeps the tasks it owned in the previous
//     generation, and those withheld for it then (MemberData.Pending),
//     up to its share. When two members claim the same task, the claim
//     of the newer generation wins, then an owned one over a pending
//     one. A member over its share gives up first the tasks another
//     member was warming up, then those for which another member has
//     warmer state.
//  4. Warm-ups, then warm state: a task that has to move (or has no
//     owner) goes to the member that was warming it up (MemberData.Warmup),
//     if that member has room, else to the member with the most restored
//     state for it, if that member has room. (Without warm-ups, which
//     only a leader with Config.EndOffsets assigns, rules 3 and 4 are
//     those of the first assignor.)
//  5. Everything else goes to the member with room that has the fewest
//     tasks of the same sub-topology, then the fewest tasks, then the
//     smallest member id.
//
// It returns each member's tasks (ascending; every member has an entry)
// and the tasks no member may run.
func balance(tasks []TaskID, members []candidate) (map[string][]TaskID, []TaskID) {
	b := balanceDetail(tasks, members)
	return b.byMember, b.unassigned
}

// balanced is balance's result with what the planner's later steps need.
type balanced struct {
	// members are the candidates sorted by id; the indexes below are
	// into it.
	members    []candidate
	byMember   map[string][]TaskID
	unassigned []TaskID
	// owner is each task's previous owner (the winning claim).
	owner map[TaskID]int
	// warmest are the two warmest eligible members of each task that
	// some member is warm for.
	warmest map[TaskID]top2
	// warming is the member that was warming each task up.
	warming map[TaskID]int
}

// balanceDetail is balance, returning more.
func balanceDetail(tasks []TaskID, members []candidate) balanced {
	members = slices.Clone(members)
	slices.SortFunc(members, func(a, b candidate) int { return strings.Compare(a.id, b.id) })
	out := make(map[string][]TaskID, len(members))
	for _, c := range members {
		out[c.id] = []TaskID{}
	}
	tasks = slices.Clone(tasks)
	slices.SortFunc(tasks, TaskID.Compare)
	if len(members) == 0 {
		return balanced{members: members, byMember: out, unassigned: tasks}
	}

	exists := make(map[TaskID]bool, len(tasks))
	for _, t := range tasks {
		exists[t] = true
	}
	eligible := func(mi int, t TaskID) bool { return members[mi].groups[t.Group] }

	// Previous owners, newest generation first, then owned before
	// pending, then warmest, then the member that sorts first. A pending
	// task was planned on the member in its generation but withheld,
	// because another member still owned it (cooperative protocol); that
	// member has given it up since and rejoined, which started this
	// rebalance. Counting the pending claim as ownership gives the task
	// to its target now, as the withholding plan meant, instead of
	// planning it afresh: the member that gave it up is still the
	// warmest for it, and with a free slot it would take the task back
	// (the warm-state pass below, or plan's warm-up step, which keeps a
	// task on a caught-up member), making the move ping-pong. In its
	// generation the task was assigned to nobody, so no owned claim of
	// that generation competes; an older claim loses to it, as any older
	// claim does, and a member still holding the task wins the tie.
	//
	// With the pending claims, the follow-up's claims are the first
	// plan's active tasks again, and balance keeps a balanced set of
	// claims as it is (exactly n%m members claim one task more than the
	// base share, and each of them gets one of the n%m larger shares):
	// the follow-up completes the moves and changes nothing else, unless
	// the members report something new (another join, a warm-up that has
	// caught up meanwhile).
	owner := make(map[TaskID]int)
	ownerPending := make(map[TaskID]bool)
	claim := func(mi int, t TaskID, pending bool) {
		if !exists[t] || !eligible(mi, t) {
			return
		}
		cur, claimed := owner[t]
		if !claimed {
			owner[t], ownerPending[t] = mi, pending
			return
		}
		gNew, gCur := members[mi].data.Generation, members[cur].data.Generation
		if gNew > gCur || (gNew == gCur && ownerPending[t] && !pending) ||
			(gNew == gCur && ownerPending[t] == pending && members[mi].warmth(t) > members[cur].warmth(t)) {
			owner[t], ownerPending[t] = mi, pending
		}
	}
	for mi := range members {
		for _, t := range members[mi].data.Owned {
			claim(mi, t, false)
		}
	}
	for mi := range members {
		for _, t := range members[mi].data.Pending {
			claim(mi, t, true)
		}
	}

	// The two warmest eligible members of every task that anyone is warm
	// for, so that "is another member warmer" costs one look-up instead
	// of a pass over the group.
	warmest := make(map[TaskID]top2)
	for mi := range members {
		for t, w := range members[mi].data.Warm {
			if w <= 0 || !exists[t] || !eligible(mi, t) {
				continue
			}
			top, ok := warmest[t]
			if !ok {
				top = top2{best: -1}
			}
			warmest[t] = top.add(mi, w)
		}
	}
	otherWarmer := func(mi int, t TaskID) bool {
		top, ok := warmest[t]
		if !ok {
			return false
		}
		w := members[mi].warmth(t)
		if top.best == mi {
			return top.second > w
		}
		return top.first > w
	}

	// The member that was warming each task up (the first in member
	// order, should two claim it), if it may run the task.
	warming := make(map[TaskID]int)
	for mi := range members {
		for _, t := range members[mi].data.Warmup {
			if _, dup := warming[t]; !dup && exists[t] && eligible(mi, t) {
				warming[t] = mi
			}
		}
	}
	warmingElsewhere := func(mi int, t TaskID) bool {
		w, ok := warming[t]
		return ok && w != mi
	}

	n, m := len(tasks), len(members)
	base, extra := n/m, n%m
	count := make([]int, m)
	groupCount := make([]map[int32]int, m)
	for mi := range groupCount {
		groupCount[mi] = make(map[int32]int)
	}
	placed := make(map[TaskID]bool, n)
	hasRoom := func(mi int) bool { return count[mi] < base || (count[mi] == base && extra > 0) }
	give := func(mi int, t TaskID) {
		count[mi]++
		groupCount[mi][t.Group]++
		placed[t] = true
		out[members[mi].id] = append(out[members[mi].id], t)
	}
	take := func(mi int, t TaskID) {
		if count[mi] == base && extra > 0 {
			extra-- // this member now holds one of the n%m larger shares
		}
		give(mi, t)
	}

	// Stickiness: every member keeps up to its base share, then the
	// members with more previous tasks take the larger shares.
	owned := make([][]TaskID, m)
	for _, t := range tasks {
		if mi, ok := owner[t]; ok {
			owned[mi] = append(owned[mi], t)
		}
	}
	for mi := range members {
		slices.SortStableFunc(owned[mi], func(a, b TaskID) int {
			if wa, wb := warmingElsewhere(mi, a), warmingElsewhere(mi, b); wa != wb {
				if wa {
					return 1
				}
				return -1
			}
			if wa, wb := otherWarmer(mi, a), otherWarmer(mi, b); wa != wb {
				if wa {
					return 1
				}
				return -1
			}
			return cmp.Compare(members[mi].warmth(b), members[mi].warmth(a))
		})
	}
	for mi := range members {
		for _, t := range owned[mi] {
			if count[mi] >= base {
				break
			}
			take(mi, t)
		}
	}
	for mi := range members {
		if extra > 0 && len(owned[mi]) > count[mi] && count[mi] == base && !warmingElsewhere(mi, owned[mi][count[mi]]) {
			take(mi, owned[mi][count[mi]])
		}
	}

	// Warm-ups: a task goes back to the member that was warming it up,
	// so that a warm-up ends where it started.
	for _, t := range tasks {
		if mi, ok := warming[t]; ok && !placed[t] && hasRoom(mi) {
			take(mi, t)
		}
	}

	// Warm state: the warmest (task, member) pairs first. Only the
	// members' warm entries are visited, not every task against every
	// member.
	type pair struct {
		t  TaskID
		mi int
		w  int64
	}
	var pairs []pair
	for mi := range members {
		for t, w := range members[mi].data.Warm {
			if w > 0 && exists[t] && !placed[t] && eligible(mi, t) {
				pairs = append(pairs, pair{t, mi, w})
			}
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.w, a.w); c != 0 {
			return c
		}
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.mi, b.mi)
	})
	for _, p := range pairs {
		if !placed[p.t] && hasRoom(p.mi) {
			take(p.mi, p.t)
		}
	}

	// The rest: spread sub-topologies, then totals. Tasks that fewer
	// members may run go first, so that members with narrower
	// subscriptions are not left without work.
	eligibleCount := make(map[int32]int)
	for _, t := range tasks {
		if _, done := eligibleCount[t.Group]; done {
			continue
		}
		eligibleCount[t.Group] = 0
		for mi := range members {
			if eligible(mi, t) {
				eligibleCount[t.Group]++
			}
		}
	}
	rest := slices.Clone(tasks)
	slices.SortStableFunc(rest, func(a, b TaskID) int { return cmp.Compare(eligibleCount[a.Group], eligibleCount[b.Group]) })
	// The rest arrive sub-topology by sub-topology. For each, a heap of
	// the eligible members with room, least loaded first by (tasks of
	// the sub-topology, tasks, index): the member a pass over the group
	// would pick. Room only ever shrinks during a plan, so a member
	// popped without room is dropped; the member that takes a task goes
	// back with its new load. When nobody eligible has room (the
	// subscriptions differ too much for the shares to hold), a second
	// heap by (tasks, index) finds the least loaded eligible member to
	// overload.
	var unassigned []TaskID
	var room, over *loadHeap
	group := int32(-1)
	for _, t := range rest {
		if placed[t] {
			continue
		}
		if room == nil || t.Group != group {
			group = t.Group
			room = &loadHeap{}
			over = nil
			for mi := range members {
				if eligible(mi, t) && hasRoom(mi) {
					room.push(load{groupCount[mi][group], count[mi], mi})
				}
			}
		}
		for room.len() > 0 && !hasRoom(room.min().mi) {
			room.pop()
		}
		if room.len() > 0 {
			mi := room.pop().mi
			take(mi, t)
			if hasRoom(mi) {
				room.push(load{groupCount[mi][group], count[mi], mi})
			}
			continue
		}
		if over == nil {
			over = &loadHeap{}
			for mi := range members {
				if eligible(mi, t) {
					over.push(load{0, count[mi], mi})
				}
			}
		}
		if over.len() == 0 {
			unassigned = append(unassigned, t)
			continue
		}
		mi := over.pop().mi
		give(mi, t)
		over.push(load{0, count[mi], mi})
	}

	for id := range out {
		slices.SortFunc(out[id], TaskID.Compare)
	}
	slices.SortFunc(unassigned, TaskID.Compare)
	return balanced{members: members, byMember: out, unassigned: unassigned, owner: owner, warmest: warmest, warming: warming}
}

// top2 holds the largest warmth of a task among eligible members, the
// member with it (the first in member order on ties), and the largest
// warmth among the other members.
type top2 struct {
	best          int
	first, second int64
}

// add records member mi's warmth w; members come in ascending order.
func (t top2) add(mi int, w int64) top2 {
	switch {
	case t.best < 0 || w > t.first:
		if t.best >= 0 {
			t.second = t.first
		}
		t.best, t.first = mi, w
	case w > t.second:
		t.second = w
	}
	return t
}

// load is a member's place in a loadHeap.
type load struct {
	group, total, mi int
}

func (a load) less(b load) bool {
	if a.group != b.group {
		return a.group < b.group
	}
	if a.total != b.total {
		return a.total < b.total
	}
	return a.mi < b.mi
}

// loadHeap is a binary min-heap of loads.
type loadHeap struct{ items []load }

func (h *loadHeap) len() int  { return len(h.items) }
func (h *loadHeap) min() load { return h.items[0] }

func (h *loadHeap) push(x load) {
	h.items = append(h.items, x)
	i := len(h.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.items[i].less(h.items[p]) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *loadHeap) pop() load {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	i := 0
	for {
		l, r, small := 2*i+1, 2*i+2, i
		if l < last && h.items[l].less(h.items[small]) {
			small = l
		}
		if r < last && h.items[r].less(h.items[small]) {
			small = r
		}
		if small == i {
			break
		}
		h.items[i], h.items[small] = h.items[small], h.items[i]
		i = small
	}
	return top
}
