package assign

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/IBM/sarama"
)

var shape = []TaskGroup{
	{ID: 0, Topics: []string{"orders", "payments"}},
	{ID: 1, Topics: []string{"profiles"}},
}

var shapePartitions = map[string]int{"orders": 6, "payments": 6, "profiles": 4}

const shapeTasks = 10

func TestBalanceAcrossGroupSizes(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7, 10, 13} {
		g := newGroup(t, shape, shapePartitions)
		g.join(ids(n)...)
		got := g.rebalance()
		checkBalanced(t, got, shapeTasks)
		if len(got) != n {
			t.Fatalf("%d members, %d in the result", n, len(got))
		}
	}
}

func TestBalanceSpreadsSubTopologies(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	g.join(ids(2)...)
	got := g.rebalance()
	// 6 tasks of group 0 and 4 of group 1 over 2 members: 3+2 each.
	for id, tasks := range got {
		per := map[int32]int{}
		for _, task := range tasks {
			per[task.Group]++
		}
		if per[0] != 3 || per[1] != 2 {
			t.Errorf("member %s has %v per sub-topology, want 3 and 2", id, per)
		}
	}
}

func TestCoPartitionedPartitionsGoTogether(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	g.join(ids(4)...)
	g.rebalance()
	s := g.members["m00"]
	meta := map[string]sarama.ConsumerGroupMemberMetadata{}
	for _, id := range ids(4) {
		ud, _ := g.members[id].SubscriptionUserData(nil)
		meta[id] = sarama.ConsumerGroupMemberMetadata{Topics: s.Topics(), UserData: ud}
	}
	plan, err := s.Plan(meta, g.topics)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for id, topics := range plan {
		orders, payments := slices.Sorted(slices.Values(topics["orders"])), slices.Sorted(slices.Values(topics["payments"]))
		if !slices.Equal(orders, payments) {
			t.Errorf("member %s: orders %v but payments %v", id, orders, payments)
		}
		total += len(orders) + len(topics["profiles"])
	}
	if total != 10 {
		t.Errorf("plan covers %d task partitions, want 10", total)
	}
}

func TestStableWhenNothingChanges(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	g.join(ids(3)...)
	first := g.rebalance()
	for range 3 {
		if again := g.rebalance(); moved(first, again) != 0 {
			t.Fatalf("tasks moved without a membership change: %v -> %v", first, again)
		}
	}
}

func TestStickyWhenMemberLeaves(t *testing.T) {
	for _, n := range []int{3, 4, 5} {
		g := newGroup(t, shape, shapePartitions)
		g.join(ids(n)...)
		before := g.rebalance()
		leaver := ids(n)[1]
		g.leave(leaver)
		after := g.rebalance()
		checkBalanced(t, after, shapeTasks)
		// Only the leaver's tasks move; everybody else keeps theirs.
		for id, tasks := range before {
			if id == leaver {
				continue
			}
			for _, task := range tasks {
				if !slices.Contains(after[id], task) {
					t.Errorf("n=%d: %s lost task %s although only %s left", n, id, task, leaver)
				}
			}
		}
		if m := moved(before, after); m != len(before[leaver]) {
			t.Errorf("n=%d: %d tasks moved, want %d (the leaver's)", n, m, len(before[leaver]))
		}
	}
}

func TestStickyWhenMemberJoins(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4} {
		g := newGroup(t, shape, shapePartitions)
		g.join(ids(n)...)
		before := g.rebalance()
		g.join("zz-new")
		after := g.rebalance()
		checkBalanced(t, after, shapeTasks)
		// The minimum: the newcomer gets its share, taken from the others;
		// nothing else moves.
		want := shapeTasks / (n + 1)
		if got := len(after["zz-new"]); got != want {
			t.Errorf("n=%d: newcomer got %d tasks, want %d", n, got, want)
		}
		if m := moved(before, after); m != len(after["zz-new"]) {
			t.Errorf("n=%d: %d tasks moved, want only the %d the newcomer took", n, m, len(after["zz-new"]))
		}
	}
}

func TestRejoinAfterRestartGetsWarmTasksBack(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	g.join("a", "b", "c")
	before := g.rebalance()
	bTasks := before["b"]

	// b crashes; its tasks spread over a and c.
	g.leave("b")
	g.rebalance()

	// b restarts with its state on disk but no memory of ownership.
	restored := map[TaskID]map[string]int64{}
	for _, task := range bTasks {
		restored[task] = map[string]int64{"app-store-changelog": 500}
	}
	g.state["b"] = LocalState{Restored: restored}
	g.join("b")
	after := g.rebalance()
	checkBalanced(t, after, shapeTasks)
	// a and c are over their share and give up exactly the tasks b is
	// warm for, so b gets its old tasks back.
	if !slices.Equal(after["b"], bTasks) {
		t.Errorf("restarted b got %v, want its warm tasks %v", after["b"], bTasks)
	}
}

func TestMovedTaskGoesToWarmMember(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	g.join("a", "b", "c", "d", "e")
	before := g.rebalance()
	gone := before["a"]
	if len(gone) != 2 {
		t.Fatalf("a has %v", gone)
	}
	// e keeps a warm copy of a's first task (say, from an earlier
	// generation); b a colder one; c and d none.
	g.state["e"] = LocalState{Restored: map[TaskID]map[string]int64{gone[0]: {"s1-changelog": 90, "s2-changelog": 10}}}
	g.state["b"] = LocalState{Restored: map[TaskID]map[string]int64{gone[0]: {"s1-changelog": 50}}}
	g.leave("a")
	after := g.rebalance()
	checkBalanced(t, after, shapeTasks)
	if !slices.Contains(after["e"], gone[0]) {
		t.Errorf("task %s went elsewhere than the warmest member e: %v", gone[0], after)
	}
	if moved(before, after) != 2 {
		t.Errorf("%d tasks moved, want 2", moved(before, after))
	}
}

func TestWarmPreferenceRespectsBalance(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	// A new member that is warm for every task must not get them all.
	all := map[TaskID]map[string]int64{}
	for p := range int32(6) {
		all[TaskID{0, p}] = map[string]int64{"c": 100}
	}
	for p := range int32(4) {
		all[TaskID{1, p}] = map[string]int64{"c": 100}
	}
	g.state["a"] = LocalState{Restored: all}
	g.join("a", "b")
	got := g.rebalance()
	checkBalanced(t, got, shapeTasks)
}

func TestConflictingClaimsNewestGenerationWins(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	g.join("a", "b")
	g.rebalance()
	// a is kicked out (say, a long GC pause); b runs everything in a
	// newer generation while a still remembers its old tasks.
	stale := g.members["a"]
	g.leave("a")
	g.rebalance()
	bAll, _ := g.members["b"].Local()
	if len(bAll.Tasks) != shapeTasks {
		t.Fatalf("b has %v", bAll.Tasks)
	}
	g.members["a"] = stale
	after := g.rebalance()
	checkBalanced(t, after, shapeTasks)
	// b's claim (newer) wins for everything; a only gets what b gives up.
	if m := moved(map[string][]TaskID{"b": bAll.Tasks}, after); m != len(after["a"]) {
		t.Errorf("%d of b's tasks moved, want %d", m, len(after["a"]))
	}
}

func TestMembersWithFewerSubscriptions(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	g.join("a", "b", "c")
	// c runs an older build without the profiles sub-topology.
	g.subscribed["c"] = []string{"orders", "payments"}
	got := g.rebalance()
	for _, task := range got["c"] {
		if task.Group != 0 {
			t.Errorf("c got task %s of a sub-topology it does not subscribe to", task)
		}
	}
	checkBalanced(t, got, shapeTasks)
}

func TestNoMemberSubscribesToAGroup(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	g.join("a", "b")
	g.subscribed["a"] = []string{"orders", "payments"}
	g.subscribed["b"] = []string{"orders", "payments"}
	got := g.rebalance()
	checkBalanced(t, got, 6)
	a, _ := g.members["a"].Local()
	if _, ok := a.Partitions[1]; ok {
		t.Errorf("sub-topology 1 is in the assignment although nobody subscribes: %v", a.Partitions)
	}
}

func TestMoreMembersThanTasksAllReadTheAssignment(t *testing.T) {
	g := newGroup(t, []TaskGroup{{ID: 3, Topics: []string{"x"}}}, map[string]int{"x": 2})
	g.join(ids(5)...)
	got := g.rebalance() // checks that every member reads the same map
	checkBalanced(t, got, 2)
	idle, err := g.members["m04"].Routing(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(idle.Local()) != 0 || len(idle.Hosts) != 5 {
		t.Fatalf("idle member reads %+v", idle)
	}
	if h, ok := idle.Owner(TaskID{3, 1}); !ok || h.Endpoint == "" {
		t.Errorf("idle member cannot find the owner of 3_1: %+v %v", h, ok)
	}
	if idle.Partitions[3] != 2 {
		t.Errorf("partitions %v", idle.Partitions)
	}
}

func TestPartitionCountMismatch(t *testing.T) {
	g := newGroup(t, shape, map[string]int{"orders": 6, "payments": 8, "profiles": 4})
	g.join("a")
	s := g.members["a"]
	ud, _ := s.SubscriptionUserData(nil)
	_, err := s.Plan(map[string]sarama.ConsumerGroupMemberMetadata{"a": {Topics: s.Topics(), UserData: ud}}, g.topics)
	var pce *PartitionCountError
	if !errors.As(err, &pce) {
		t.Fatalf("err = %v, want *PartitionCountError", err)
	}
	if pce.Group != 0 || !maps.Equal(pce.Partitions, map[string]int{"orders": 6, "payments": 8}) {
		t.Errorf("error fields %+v", pce)
	}
	for _, want := range []string{"orders has 6", "payments has 8", "sub-topology 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %q", err, want)
		}
	}
}

func TestMissingCoPartitionedTopic(t *testing.T) {
	s, err := NewStrategy(Config{Groups: shape})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Plan(map[string]sarama.ConsumerGroupMemberMetadata{"a": {Topics: []string{"orders"}}},
		map[string][]int32{"orders": {0, 1}})
	var mte *MissingTopicsError
	if !errors.As(err, &mte) || mte.Group != 0 || !slices.Equal(mte.Missing, []string{"payments"}) {
		t.Fatalf("err = %v, want payments missing from sub-topology 0", err)
	}
}

func TestUndecodableMemberDataMeansNewMember(t *testing.T) {
	logged := &logRecorder{}
	s, err := NewStrategy(Config{Groups: shape, Logger: slog.New(logged)})
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]sarama.ConsumerGroupMemberMetadata{
		"a": {Topics: s.Topics(), UserData: []byte("not brook data")},
		"b": {Topics: s.Topics()},
	}
	topics := map[string][]int32{"orders": {0, 1}, "payments": {0, 1}, "profiles": {0}}
	plan, err := s.Plan(meta, topics)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 2 {
		t.Fatalf("plan %v", plan)
	}
	data, err := s.AssignmentData("a", plan["a"], 7)
	if err != nil {
		t.Fatal(err)
	}
	a, err := DecodeMemberAssignment(data)
	if err != nil {
		t.Fatal(err)
	}
	if a.Generation != 7 || !maps.Equal(a.Partitions, map[int32]int32{0: 2, 1: 1}) {
		t.Errorf("assignment %+v", a)
	}
	// The leader said so, with what to do about it.
	warned := false
	for _, r := range logged.records() {
		if r.Level == slog.LevelWarn && strings.Contains(r.Message, "treating the member as new") && r.attrs["member"] == "a" && r.attrs["action"] != "" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning with an action about member a: %v", logged.records())
	}
	if _, err := s.AssignmentData("stranger", nil, 7); err == nil {
		t.Error("AssignmentData for a member outside the plan did not fail")
	}
}

func TestAssignmentDataBeforePlan(t *testing.T) {
	s, err := NewStrategy(Config{Groups: shape})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AssignmentData("a", nil, 1); !errors.Is(err, ErrNoPlan) {
		t.Errorf("err = %v", err)
	}
	if _, ok := s.Local(); ok {
		t.Error("assignment before any rebalance")
	}
	if _, err := s.Routing(context.Background()); !errors.Is(err, ErrNoAssignment) {
		t.Errorf("Routing before any rebalance: %v", err)
	}
}

func TestOnAssignmentWithGarbageClearsAssignment(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	g.join("a")
	g.rebalance()
	s := g.members["a"]
	s.OnAssignment(&sarama.ConsumerGroupMemberAssignment{UserData: []byte{1, 2, 3}}, 9)
	if _, ok := s.Local(); ok {
		t.Error("a stale assignment survived an unreadable one")
	}
	if _, err := s.Routing(context.Background()); !errors.Is(err, ErrNoAssignment) {
		t.Errorf("Routing after an unreadable assignment: %v", err)
	}
	s.OnAssignment(nil, 10) // must not panic
}

func TestNewStrategyValidation(t *testing.T) {
	cases := map[string][]TaskGroup{
		"none":          nil,
		"no topics":     {{ID: 0}},
		"negative id":   {{ID: -1, Topics: []string{"a"}}},
		"duplicate id":  {{ID: 0, Topics: []string{"a"}}, {ID: 0, Topics: []string{"b"}}},
		"shared topic":  {{ID: 0, Topics: []string{"a"}}, {ID: 1, Topics: []string{"a"}}},
		"topic twice":   {{ID: 0, Topics: []string{"a", "a"}}},
		"empty topic":   {{ID: 0, Topics: []string{" "}}},
		"empty topic 2": {{ID: 0, Topics: []string{"a", ""}}},
	}
	for name, groups := range cases {
		if _, err := NewStrategy(Config{Groups: groups}); !errors.Is(err, ErrInvalidGroups) {
			t.Errorf("%s: err = %v, want ErrInvalidGroups", name, err)
		}
	}
}

func TestTasksFromClaims(t *testing.T) {
	s, err := NewStrategy(Config{Groups: shape})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Tasks(map[string][]int32{"orders": {2, 0}, "payments": {0, 2}, "profiles": {3}})
	if err != nil {
		t.Fatal(err)
	}
	want := []TaskID{{0, 0}, {0, 2}, {1, 3}}
	if !slices.Equal(got, want) {
		t.Errorf("Tasks = %v, want %v", got, want)
	}
	_, err = s.Tasks(map[string][]int32{"orders": {1}})
	var ite *IncompleteTaskError
	if !errors.As(err, &ite) || ite.Task != (TaskID{0, 1}) || !slices.Equal(ite.Missing, []string{"payments"}) {
		t.Errorf("err = %v", err)
	}
	if _, err := s.Tasks(map[string][]int32{"other": {0}}); err == nil {
		t.Error("a topic of no sub-topology was accepted")
	}
	if task, ok := s.TaskOf("payments", 5); !ok || task != (TaskID{0, 5}) || task.String() != "0_5" {
		t.Errorf("TaskOf = %v %v", task, ok)
	}
}

// TestBalanceRandomized drives many generations of random joins, leaves
// and restarts and checks the invariants after each: every task assigned
// once, counts within one, co-partitioned claims, every member reading the
// same assignment (checked inside rebalance), and stickiness: a member
// that stays never loses a task unless it was above the new share.
func TestBalanceRandomized(t *testing.T) {
	g := newGroup(t, shape, shapePartitions)
	pool := ids(8)
	g.join(pool[:3]...)
	prev := g.rebalance()
	// A fixed pseudo-random walk (no math/rand: the sequence is part of
	// the test).
	x := uint32(12345)
	next := func(n int) int { x = x*1103515245 + 12345; return int(x>>16) % n }
	for step := range 200 {
		id := pool[next(len(pool))]
		if _, in := g.members[id]; in && len(g.members) > 1 {
			g.leave(id)
		} else if !in {
			g.join(id)
		}
		cur := g.rebalance()
		checkBalanced(t, cur, shapeTasks)
		share := (shapeTasks + len(cur) - 1) / len(cur)
		for m, tasks := range prev {
			now, stays := cur[m]
			if !stays {
				continue
			}
			kept := 0
			for _, task := range tasks {
				if slices.Contains(now, task) {
					kept++
				}
			}
			if want := min(len(tasks), share-1); kept < want {
				t.Fatalf("step %d: %s kept %d of %v, want at least %d (now %v)", step, m, kept, tasks, want, now)
			}
		}
		prev = cur
	}
}

// logRecorder is a slog.Handler that keeps every record with its
// attributes.
type logRecorder struct {
	mu   sync.Mutex
	recs []loggedRecord
}

type loggedRecord struct {
	Level   slog.Level
	Message string
	attrs   map[string]string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := loggedRecord{Level: r.Level, Message: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, rec)
	return nil
}

func (l *logRecorder) records() []loggedRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}
