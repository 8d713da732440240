package assign

import (
	"slices"
	"testing"
)

func cand(id string, gen int32, owned []TaskID, restored map[TaskID]map[string]int64, groups ...int32) candidate {
	c := candidate{id: id, data: MemberData{Generation: gen, Owned: owned, Restored: restored}, groups: map[int32]bool{}}
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
			cand("a", 5, []TaskID{x}, map[TaskID]map[string]int64{x: {"c": 1000}}, 0),
			cand("b", 7, []TaskID{x}, nil, 0),
		}, "b"},
		{"same generation: warmer wins", []candidate{
			cand("a", 7, []TaskID{x}, map[TaskID]map[string]int64{x: {"c": 10}}, 0),
			cand("b", 7, []TaskID{x}, map[TaskID]map[string]int64{x: {"c": 20}}, 0),
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
	a := cand("a", 4, []TaskID{unknown}, map[TaskID]map[string]int64{{0, 0}: {"c": -5}}, 0)
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
		cand("c", 3, []TaskID{{0, 1}, {1, 1}}, map[TaskID]map[string]int64{{0, 5}: {"x": 3}}, 0, 1),
		cand("a", 3, []TaskID{{0, 2}}, nil, 0, 1),
		cand("b", -1, nil, map[TaskID]map[string]int64{{1, 6}: {"x": 9}}, 0, 1),
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
