package assign

import (
	"cmp"
	"slices"
	"strings"
	"testing"
)

func cand(id string, gen int32, owned []TaskID, warm map[TaskID]int64, groups ...int32) candidate {
	c := candidate{id: id, data: MemberData{Generation: gen, Owned: owned, Warm: warm}, groups: map[int32]bool{}}
	for _, g := range groups {
		c.groups[g] = true
	}
	return c
}

func TestBalanceConflictingClaims(t *testing.T) {
	x, y := TaskID{0, 0}, TaskID{0, 1}
	cases := []struct {
		name    string
		members []candidate
		wantX   string
	}{
		{"newer generation wins", []candidate{
			cand("a", 5, []TaskID{x}, nil, 0),
			cand("b", 7, []TaskID{x}, nil, 0),
		}, "b"},
		{"newer generation wins over warmth", []candidate{
			cand("a", 5, []TaskID{x}, map[TaskID]int64{x: 1000}, 0),
			cand("b", 7, []TaskID{x}, nil, 0),
		}, "b"},
		{"same generation: warmer wins", []candidate{
			cand("a", 7, []TaskID{x}, map[TaskID]int64{x: 10}, 0),
			cand("b", 7, []TaskID{x}, map[TaskID]int64{x: 20}, 0),
		}, "b"},
		{"claim of a task the member may not run is ignored", []candidate{
			cand("a", 7, []TaskID{x}, nil, 1),
			cand("b", 3, []TaskID{x}, nil, 0),
		}, "b"},
	}
	for _, c := range cases {
		for _, order := range [][]candidate{c.members, {c.members[1], c.members[0]}} {
			got, unassigned := balance([]TaskID{x, y}, order)
			if !slices.Contains(got[c.wantX], x) {
				t.Errorf("%s: task %s went to %v, want %s", c.name, x, got, c.wantX)
			}
			if len(unassigned) != 0 && c.name != "claim of a task the member may not run is ignored" {
				t.Errorf("%s: unassigned %v", c.name, unassigned)
			}
		}
	}
}

func TestBalanceNoMembers(t *testing.T) {
	tasks := []TaskID{{0, 1}, {0, 0}}
	got, unassigned := balance(tasks, nil)
	if len(got) != 0 || !slices.Equal(unassigned, []TaskID{{0, 0}, {0, 1}}) {
		t.Errorf("got %v, unassigned %v", got, unassigned)
	}
}

func TestBalanceNoEligibleMember(t *testing.T) {
	got, unassigned := balance([]TaskID{{0, 0}, {1, 0}}, []candidate{cand("a", -1, nil, nil, 0)})
	if !slices.Equal(got["a"], []TaskID{{0, 0}}) || !slices.Equal(unassigned, []TaskID{{1, 0}}) {
		t.Errorf("got %v, unassigned %v", got, unassigned)
	}
}

func TestBalanceIgnoresUnknownAndNegativeState(t *testing.T) {
	unknown := TaskID{9, 9}
	a := cand("a", 4, []TaskID{unknown}, map[TaskID]int64{{0, 0}: -5}, 0)
	b := cand("b", -1, nil, nil, 0)
	got, _ := balance([]TaskID{{0, 0}, {0, 1}}, []candidate{a, b})
	if len(got["a"]) != 1 || len(got["b"]) != 1 {
		t.Errorf("got %v", got)
	}
	if a.warmth(TaskID{0, 0}) != 0 {
		t.Errorf("negative offsets count as warmth")
	}
}

func TestBalanceDeterministic(t *testing.T) {
	var tasks []TaskID
	for p := range int32(7) {
		tasks = append(tasks, TaskID{0, p}, TaskID{1, p})
	}
	members := []candidate{
		cand("c", 3, []TaskID{{0, 1}, {1, 1}}, map[TaskID]int64{{0, 5}: 3}, 0, 1),
		cand("a", 3, []TaskID{{0, 2}}, nil, 0, 1),
		cand("b", -1, nil, map[TaskID]int64{{1, 6}: 9}, 0, 1),
		cand("d", -1, nil, nil, 0),
	}
	want, _ := balance(tasks, members)
	for range 20 {
		slices.Reverse(members)
		members[0], members[len(members)/2] = members[len(members)/2], members[0]
		got, _ := balance(tasks, members)
		for id := range want {
			if !slices.Equal(got[id], want[id]) {
				t.Fatalf("order changed the result: %v vs %v", got, want)
			}
		}
	}
}

// TestBalanceMatchesReference: the near-linear balance gives exactly the
// result of the straightforward one it replaced (referenceBalance, which
// compares every member with every other inside its sort), on random
// groups with previous owners from several generations, conflicting
// claims, warm state for owned and other tasks, and members that
// subscribe to only some sub-topologies.
func TestBalanceMatchesReference(t *testing.T) {
	x := uint32(99)
	next := func(n int) int { x = x*1103515245 + 12345; return int(x>>16) % n }
	for iter := range 400 {
		groups := 1 + next(3)
		var tasks []TaskID
		for g := range groups {
			for p := range 1 + next(12) {
				tasks = append(tasks, TaskID{int32(g), int32(p)})
			}
		}
		var members []candidate
		for mi := range 1 + next(9) {
			c := candidate{id: string(rune('a' + mi)), groups: map[int32]bool{},
				data: MemberData{Generation: int32(next(4)) - 1, Warm: map[TaskID]int64{}}}
			for g := range groups {
				c.groups[int32(g)] = next(5) > 0
			}
			for _, task := range tasks {
				switch next(8) {
				case 0:
					c.data.Owned = append(c.data.Owned, task)
					c.data.Warm[task] = int64(next(4) * 100)
				case 1:
					c.data.Warm[task] = int64(next(3) * 100)
				}
			}
			if next(10) == 0 {
				c.data.Owned = append(c.data.Owned, TaskID{7, 7}) // a task that no longer exists
			}
			members = append(members, c)
		}
		want, wantUn := referenceBalance(tasks, members)
		got, gotUn := balance(tasks, members)
		if !slices.Equal(gotUn, wantUn) {
			t.Fatalf("iteration %d: unassigned %v, reference %v", iter, gotUn, wantUn)
		}
		for id, w := range want {
			if !slices.Equal(got[id], w) {
				t.Fatalf("iteration %d: member %s gets %v, reference %v\nmembers %+v", iter, id, got[id], w, members)
			}
		}
	}
}

// referenceBalance is the balance of the first assignor, kept as the
// specification of the rules the faster one must follow: it is quadratic
// in the group's size.
func referenceBalance(tasks []TaskID, members []candidate) (map[string][]TaskID, []TaskID) {
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
