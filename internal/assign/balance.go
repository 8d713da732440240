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
	var sum int64
	for _, off := range c.data.Restored[t] {
		if off > 0 {
			sum += off
		}
	}
	return sum
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
//     generation, up to its share. When two members claim the same task,
//     the claim of the newer generation wins. A member over its share
//     gives up first the tasks for which another member has warmer state.
//  4. Warm state: a task that has to move (or has no owner) goes to the
//     member with the most restored state for it, if that member has room.
//  5. Everything else goes to the member with room that has the fewest
//     tasks of the same sub-topology, then the fewest tasks, then the
//     smallest member id.
//
// It returns each member's tasks (ascending; every member has an entry)
// and the tasks no member may run.
func balance(tasks []TaskID, members []candidate) (map[string][]TaskID, []TaskID) {
	members = slices.Clone(members)
	slices.SortFunc(members, func(a, b candidate) int { return strings.Compare(a.id, b.id) })
	out := make(map[string][]TaskID, len(members))
	for _, c := range members {
		out[c.id] = []TaskID{}
	}
	tasks = slices.Clone(tasks)
	slices.SortFunc(tasks, TaskID.Compare)
	if len(members) == 0 {
		return out, tasks
	}

	exists := make(map[TaskID]bool, len(tasks))
	for _, t := range tasks {
		exists[t] = true
	}
	eligible := func(mi int, t TaskID) bool { return members[mi].groups[t.Group] }

	// Previous owners, newest generation first, then warmest, then the
	// member that sorts first.
	owner := make(map[TaskID]int)
	for mi := range members {
		for _, t := range members[mi].data.Owned {
			if !exists[t] || !eligible(mi, t) {
				continue
			}
			cur, claimed := owner[t]
			if !claimed {
				owner[t] = mi
				continue
			}
			gNew, gCur := members[mi].data.Generation, members[cur].data.Generation
			if gNew > gCur || (gNew == gCur && members[mi].warmth(t) > members[cur].warmth(t)) {
				owner[t] = mi
			}
		}
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
	take := func(mi int, t TaskID) {
		if count[mi] == base && extra > 0 {
			extra-- // this member now holds one of the n%m larger shares
		}
		count[mi]++
		groupCount[mi][t.Group]++
		placed[t] = true
		out[members[mi].id] = append(out[members[mi].id], t)
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
		otherWarmer := func(t TaskID) bool {
			w := members[mi].warmth(t)
			for mj := range members {
				if mj != mi && eligible(mj, t) && members[mj].warmth(t) > w {
					return true
				}
			}
			return false
		}
		slices.SortStableFunc(owned[mi], func(a, b TaskID) int {
			if wa, wb := otherWarmer(a), otherWarmer(b); wa != wb {
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
		if extra > 0 && len(owned[mi]) > count[mi] && count[mi] == base {
			take(mi, owned[mi][count[mi]])
		}
	}

	// Warm state: the warmest (task, member) pairs first.
	type pair struct {
		t  TaskID
		mi int
		w  int64
	}
	var pairs []pair
	for _, t := range tasks {
		if placed[t] {
			continue
		}
		for mi := range members {
			if w := members[mi].warmth(t); w > 0 && eligible(mi, t) {
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
		for mi := range members {
			if eligible(mi, t) {
				eligibleCount[t.Group]++
			}
		}
	}
	rest := slices.Clone(tasks)
	slices.SortStableFunc(rest, func(a, b TaskID) int { return cmp.Compare(eligibleCount[a.Group], eligibleCount[b.Group]) })
	var unassigned []TaskID
	for _, t := range rest {
		if placed[t] {
			continue
		}
		best, bestOver := -1, -1
		for mi := range members {
			if !eligible(mi, t) {
				continue
			}
			if hasRoom(mi) {
				if best < 0 || groupCount[mi][t.Group] < groupCount[best][t.Group] ||
					(groupCount[mi][t.Group] == groupCount[best][t.Group] && count[mi] < count[best]) {
					best = mi
				}
			} else if bestOver < 0 || count[mi] < count[bestOver] {
				bestOver = mi
			}
		}
		switch {
		case best >= 0:
			take(best, t)
		case bestOver >= 0:
			// Subscriptions differ so much that the shares cannot hold:
			// overload the least loaded member that may run the task.
			count[bestOver]++
			groupCount[bestOver][t.Group]++
			placed[t] = true
			out[members[bestOver].id] = append(out[members[bestOver].id], t)
		default:
			unassigned = append(unassigned, t)
		}
	}

	for id := range out {
		slices.SortFunc(out[id], TaskID.Compare)
	}
	slices.SortFunc(unassigned, TaskID.Compare)
	return out, unassigned
}
