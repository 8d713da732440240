package assign

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestSupportedProtocols: with Config.Cooperative the strategy declares
// cooperative then eager, and sarama selects cooperative when it is the
// only strategy (its configuration check then insists on Kafka 2.4) and
// eager beside an eager-only strategy; without, eager only.
func TestSupportedProtocols(t *testing.T) {
	coop, err := NewStrategy(Config{Groups: shape, Cooperative: true})
	if err != nil {
		t.Fatal(err)
	}
	eager, err := NewStrategy(Config{Groups: shape})
	if err != nil {
		t.Fatal(err)
	}
	if got := coop.SupportedProtocols(); !slices.Equal(got, []sarama.RebalanceProtocol{sarama.RebalanceProtocolCooperative, sarama.RebalanceProtocolEager}) {
		t.Errorf("cooperative strategy supports %v", got)
	}
	if got := eager.SupportedProtocols(); !slices.Equal(got, []sarama.RebalanceProtocol{sarama.RebalanceProtocolEager}) {
		t.Errorf("eager strategy supports %v", got)
	}
	validate := func(version sarama.KafkaVersion, strategies ...sarama.BalanceStrategy) error {
		c := sarama.NewConfig()
		c.Version = version
		c.Consumer.Group.Rebalance.GroupStrategies = strategies
		return c.Validate()
	}
	// sarama's selection is not exported; its configuration check refuses
	// a cooperative protocol before Kafka 2.4, which shows what it chose.
	if err := validate(sarama.V2_3_0_0, coop); err == nil || !strings.Contains(err.Error(), "cooperative") {
		t.Errorf("cooperative alone before Kafka 2.4: %v, want sarama to select cooperative and refuse", err)
	}
	if err := validate(sarama.V2_4_0_0, coop); err != nil {
		t.Errorf("cooperative alone on Kafka 2.4: %v", err)
	}
	for name, strategies := range map[string][]sarama.BalanceStrategy{
		"eager brook":  {eager},
		"beside range": {coop, sarama.NewBalanceStrategyRange()},
	} {
		if err := validate(sarama.V2_3_0_0, strategies...); err != nil {
			t.Errorf("%s before Kafka 2.4: %v, want sarama to select eager", name, err)
		}
	}
}

// ownedMeta is the subscription of a member on the cooperative protocol
// that holds the given partitions (topic -> partitions) since generation
// gen and whose brook data lists owned.
func ownedMeta(t *testing.T, s *Strategy, gen int32, owned []TaskID, holds map[string][]int32) sarama.ConsumerGroupMemberMetadata {
	t.Helper()
	d := MemberData{Generation: gen, Owned: owned}
	if len(owned) == 0 {
		d.Generation = -1
	}
	ud, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	m := sarama.ConsumerGroupMemberMetadata{Version: 2, Topics: s.Topics(), UserData: ud, GenerationID: -1}
	for _, topic := range slices.Sorted(maps.Keys(holds)) {
		m.OwnedPartitions = append(m.OwnedPartitions, &sarama.OwnedPartition{Topic: topic, Partitions: holds[topic]})
	}
	if len(holds) > 0 {
		m.GenerationID = gen
	}
	return m
}

// partitionsOf is the partitions of tasks, by topic, for shape.
func partitionsOf(tasks ...TaskID) map[string][]int32 {
	out := map[string][]int32{}
	for _, task := range tasks {
		for _, topic := range shape[task.Group].Topics {
			out[topic] = append(out[topic], task.Partition)
		}
	}
	return out
}

func allTasks(groups []TaskGroup, partitions map[string]int) []TaskID {
	var out []TaskID
	for _, g := range groups {
		for p := range partitions[g.Topics[0]] {
			out = append(out, TaskID{g.ID, int32(p)})
		}
	}
	return out
}

func shapeTopics() map[string][]int32 {
	out := map[string][]int32{}
	for topic, n := range shapePartitions {
		for p := range n {
			out[topic] = append(out[topic], int32(p))
		}
	}
	return out
}

// TestPlanWithholdsTasksStillOwned: when a member on the cooperative
// protocol still owns every task and two new members join, the leader
// gives the new members nothing this round, counts and logs what it
// withheld, and the owner's plan drops the tasks that move so that it
// gives them up. Eager members (no OwnedPartitions) get their share at
// once, as before.
func TestPlanWithholdsTasksStillOwned(t *testing.T) {
	logged := &logRecorder{}
	s, err := NewStrategy(Config{Groups: shape, Logger: slog.New(logged)})
	if err != nil {
		t.Fatal(err)
	}
	all := allTasks(shape, shapePartitions)
	meta := map[string]sarama.ConsumerGroupMemberMetadata{
		"a": ownedMeta(t, s, 4, all, partitionsOf(all...)),
		"b": ownedMeta(t, s, -1, nil, nil),
		"c": ownedMeta(t, s, -1, nil, nil),
	}
	plan, err := s.Plan(meta, shapeTopics())
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.Tasks(plan["a"])
	if err != nil {
		t.Fatal(err)
	}
	if len(plan["b"]) != 0 || len(plan["c"]) != 0 || len(kept) != 4 {
		t.Fatalf("plan %v: want a to keep its share of 4 and b and c to get nothing yet", plan)
	}
	r, _ := s.LastPlan()
	if r.Withheld != shapeTasks-4 {
		t.Errorf("report withholds %d tasks, want %d", r.Withheld, shapeTasks-4)
	}
	logged1 := false
	for _, rec := range logged.records() {
		if rec.Level == slog.LevelInfo && strings.Contains(rec.Message, "withheld") && rec.attrs["withheld"] == fmt.Sprint(shapeTasks-4) {
			logged1 = true
		}
	}
	if !logged1 {
		t.Errorf("no Info record of the withheld tasks: %v", logged.records())
	}

	// The same group with a on the eager protocol: it gave everything up.
	eager := maps.Clone(meta)
	m := eager["a"]
	m.OwnedPartitions, m.GenerationID = nil, -1
	eager["a"] = m
	plan, err = s.Plan(eager, shapeTopics())
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.LastPlan(); r.Withheld != 0 || len(plan["b"]) == 0 || len(plan["c"]) == 0 {
		t.Errorf("eager members: withheld %d, plan %v", r.Withheld, plan)
	}
}

// TestPlanWithholdsWholeTasks: a member that holds one partition of a
// co-partitioned task (orders/2 but not payments/2) keeps the whole task
// from anybody else: the task is withheld, not split, and stays with the
// member holding part of it when balance allows.
func TestPlanWithholdsWholeTasks(t *testing.T) {
	s, err := NewStrategy(Config{Groups: shape})
	if err != nil {
		t.Fatal(err)
	}
	a := []TaskID{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {1, 2}}
	b := []TaskID{{0, 2}, {0, 3}, {0, 4}, {0, 5}, {1, 3}}
	// b lists 0_2 in its data, but a holds orders/2 (and b payments/2).
	holdsA := partitionsOf(a...)
	holdsA["orders"] = append(holdsA["orders"], 2)
	holdsB := partitionsOf(b...)
	holdsB["orders"] = slices.DeleteFunc(holdsB["orders"], func(p int32) bool { return p == 2 })
	meta := map[string]sarama.ConsumerGroupMemberMetadata{
		"a": ownedMeta(t, s, 4, a, holdsA),
		"b": ownedMeta(t, s, 4, b, holdsB),
	}
	plan, err := s.Plan(meta, shapeTopics())
	if err != nil {
		t.Fatal(err)
	}
	for id, topics := range plan {
		if _, err := s.Tasks(topics); err != nil {
			t.Errorf("member %s: %v (a task split)", id, err)
		}
		if slices.Contains(topics["orders"], 2) || slices.Contains(topics["payments"], 2) {
			t.Errorf("member %s is given a partition of task 0_2, which two members hold in part: %v", id, topics)
		}
	}
	// a holds 6 tasks in part or whole, so one more of its tasks moves to
	// b and waits too.
	for id, holds := range map[string]map[string][]int32{"a": holdsA, "b": holdsB} {
		for other, topics := range plan {
			for topic, parts := range topics {
				for _, p := range parts {
					if other != id && slices.Contains(holds[topic], p) {
						t.Errorf("%s/%d, which %s holds, goes to %s", topic, p, id, other)
					}
				}
			}
		}
	}
	if r, _ := s.LastPlan(); r.Withheld != 2 {
		t.Errorf("withheld %d tasks, want 2", r.Withheld)
	}
}

// TestPlanTrustsOwnedPartitions: a member whose brook data lists no tasks
// (it could not read its last assignment) but which reports owning
// partitions keeps those tasks where balance allows, and the leader logs
// the disagreement; no task goes to another member while it holds it.
func TestPlanTrustsOwnedPartitions(t *testing.T) {
	logged := &logRecorder{}
	s, err := NewStrategy(Config{Groups: shape, Logger: slog.New(logged)})
	if err != nil {
		t.Fatal(err)
	}
	a := []TaskID{{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}}
	b := []TaskID{{0, 3}, {0, 4}, {0, 5}, {1, 2}, {1, 3}}
	meta := map[string]sarama.ConsumerGroupMemberMetadata{
		"a": ownedMeta(t, s, 4, nil, partitionsOf(a...)),
		"b": ownedMeta(t, s, 4, b, partitionsOf(b...)),
	}
	meta["a"] = func(m sarama.ConsumerGroupMemberMetadata) sarama.ConsumerGroupMemberMetadata {
		m.GenerationID = 4
		return m
	}(meta["a"])
	plan, err := s.Plan(meta, shapeTopics())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Tasks(plan["a"])
	if !slices.Equal(got, a) {
		t.Errorf("a runs %v, gets %v", a, got)
	}
	if r, _ := s.LastPlan(); r.Withheld != 0 {
		t.Errorf("withheld %d", r.Withheld)
	}
	warned := false
	for _, rec := range logged.records() {
		if rec.Level == slog.LevelWarn && rec.attrs["member"] == "a" && rec.attrs["held_not_listed"] == "5" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning about a's disagreeing data: %v", logged.records())
	}
}

// TestFollowUpCompletesTheMove: the follow-up rebalance gives a withheld
// task to the member it was withheld from, not back to the member that
// just gave it up, although that member is still the warmest for it and,
// n%m being positive, has room for one more task.
//
// Five tasks over members a, c and n: one each, and two members take a
// second (n%m = 2). a runs 0 and 1, c 2 and 3, n 4, and n has warmed up
// task 1 to within the acceptable lag. The first rebalance
// moves 1 to n (a keeps its base share, c its larger one, n takes 1 with
// the other larger share) and withholds it, since a still runs it. In the
// follow-up nobody owns 1 and a, the warmest, has a free larger share:
// planned afresh, 1 would go back to a.
func TestFollowUpCompletesTheMove(t *testing.T) {
	groups := []TaskGroup{{ID: 0, Topics: []string{"t"}}}
	topics := map[string][]int32{"t": {0, 1, 2, 3, 4}}
	end := map[TaskID]int64{}
	for p := range int32(5) {
		end[TaskID{0, p}] = 1_000_000
	}
	restored := map[string]map[TaskID]int64{
		"a": {{0, 0}: 1_000_000, {0, 1}: 1_000_000},
		"c": {{0, 2}: 1_000_000, {0, 3}: 1_000_000},
		"n": {{0, 4}: 1_000_000, {0, 1}: 995_000},
	}
	members := map[string]*Strategy{}
	for _, id := range []string{"a", "c", "n"} {
		s, err := NewStrategy(Config{Groups: groups, Cooperative: true,
			State: func() LocalState {
				out := LocalState{Restored: map[TaskID]map[string]int64{}}
				for task, off := range restored[id] {
					out.Restored[task] = map[string]int64{"t-changelog": off}
				}
				return out
			},
			EndOffsets: func(_ context.Context, tasks []TaskID) (map[TaskID]int64, error) {
				return maps.Clone(end), nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		members[id] = s
	}
	held := map[string]map[string][]int32{"a": {"t": {0, 1}}, "c": {"t": {2, 3}}, "n": {"t": {4}}}
	// Generation 5 as the members' strategies remember it: n warms 1 up.
	for id, s := range members {
		a := MemberAssignment{Generation: 5, Partitions: map[int32]int32{0: 5}}
		if id == "n" {
			a.Warmup, a.ProbingRebalance = []TaskID{{0, 1}}, time.Minute
		}
		data, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		s.OnAssignment(&sarama.ConsumerGroupMemberAssignment{Topics: held[id], UserData: data}, 5)
	}
	round := func(gen int32) (sarama.BalanceStrategyPlan, PlanReport) {
		t.Helper()
		meta := map[string]sarama.ConsumerGroupMemberMetadata{}
		for id, s := range members {
			ud, err := s.SubscriptionUserData(s.Topics())
			if err != nil {
				t.Fatal(err)
			}
			m := sarama.ConsumerGroupMemberMetadata{Version: 2, Topics: s.Topics(), UserData: ud, GenerationID: gen - 1}
			for topic, parts := range held[id] {
				m.OwnedPartitions = append(m.OwnedPartitions, &sarama.OwnedPartition{Topic: topic, Partitions: parts})
			}
			meta[id] = m
		}
		leader := members["c"]
		plan, err := leader.Plan(meta, topics)
		if err != nil {
			t.Fatal(err)
		}
		for id, s := range members {
			data, err := leader.AssignmentData(id, plan[id], gen)
			if err != nil {
				t.Fatal(err)
			}
			s.OnAssignment(&sarama.ConsumerGroupMemberAssignment{Topics: plan[id], UserData: data}, gen)
			held[id] = plan[id] // revocations applied
		}
		r, _ := leader.LastPlan()
		return plan, r
	}
	plan, r := round(6)
	if !slices.Equal(plan["a"]["t"], []int32{0}) || !slices.Equal(plan["n"]["t"], []int32{4}) || r.Withheld != 1 {
		t.Fatalf("first rebalance: plan %v, withheld %d; want a to give up 1 and n to wait for it", plan, r.Withheld)
	}
	if l, _ := members["n"].Local(); !slices.Equal(l.Pending, []TaskID{{0, 1}}) {
		t.Fatalf("n's assignment has pending tasks %v, want 0_1", l.Pending)
	}
	// a gave 1 up, so it rejoins: the follow-up.
	plan, r = round(7)
	if !slices.Equal(plan["n"]["t"], []int32{1, 4}) || !slices.Equal(plan["a"]["t"], []int32{0}) || r.Withheld != 0 {
		t.Fatalf("follow-up: plan %v, withheld %d; want 1 on n", plan, r.Withheld)
	}
	if l, _ := members["n"].Local(); len(l.Pending) != 0 {
		t.Errorf("n still has pending tasks %v", l.Pending)
	}
}

// TestCopyOfTaskGivenUp: an assignment may give a member a standby (or a
// warm-up) of a task it still runs and is giving up (or of a task
// pending for it, never both): OnAssignment accepts it, Local lists it
// among the copies and not the tasks, and the next subscription reports
// it as a standby.
func TestCopyOfTaskGivenUp(t *testing.T) {
	s, err := NewStrategy(Config{Groups: shape, Cooperative: true})
	if err != nil {
		t.Fatal(err)
	}
	give := func(gen int32, a MemberAssignment, claims map[string][]int32) {
		t.Helper()
		data, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		s.OnAssignment(&sarama.ConsumerGroupMemberAssignment{Topics: claims, UserData: data}, gen)
		if _, ok := s.Local(); !ok {
			t.Fatalf("generation %d: assignment rejected", gen)
		}
	}
	counts := map[int32]int32{0: 6, 1: 4}
	give(3, MemberAssignment{Generation: 3, Partitions: counts}, partitionsOf(TaskID{0, 1}, TaskID{1, 2}))
	give(4, MemberAssignment{Generation: 4, Partitions: counts, Standby: []TaskID{{0, 1}}, Warmup: []TaskID{{1, 2}},
		Pending: []TaskID{{0, 3}}, ProbingRebalance: time.Minute}, partitionsOf())
	l, _ := s.Local()
	if len(l.Tasks) != 0 || !slices.Equal(l.Standby, []TaskID{{0, 1}}) || !slices.Equal(l.Warmup, []TaskID{{1, 2}}) || !slices.Equal(l.Pending, []TaskID{{0, 3}}) {
		t.Fatalf("local %+v", l)
	}
	ud, err := s.SubscriptionUserData(s.Topics())
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeMemberData(ud)
	if err != nil {
		t.Fatal(err)
	}
	if d.Generation != 4 || len(d.Owned) != 0 || !slices.Equal(d.Standby, []TaskID{{0, 1}}) || !slices.Equal(d.Pending, []TaskID{{0, 3}}) {
		t.Errorf("subscription %+v", d)
	}
	// A pending task that is also active is not.
	data, _ := MemberAssignment{Generation: 5, Partitions: counts, Pending: []TaskID{{0, 1}}}.MarshalBinary()
	s.OnAssignment(&sarama.ConsumerGroupMemberAssignment{Topics: partitionsOf(TaskID{0, 1}), UserData: data}, 5)
	if _, ok := s.Local(); ok {
		t.Error("an assignment with a task both active and pending was accepted")
	}
}
