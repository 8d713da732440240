package assign

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// The scale benchmark drives real Strategy objects through the calls
// sarama makes in a rebalance (SubscriptionUserData on every member, Plan
// and AssignmentData on the leader, OnAssignment on every member) for a
// large group, and measures the leader's work and the bytes of every group
// message. It uses only the strategy's sarama-facing methods and
// LocalState, so the same file runs against earlier versions of the
// package for before/after figures.
//
// The application ("payments") has two sub-topologies of equal size:
// sub-topology 0 joins two co-partitioned topics and holds two stores,
// sub-topology 1 reads a repartition topic and holds one store. Every
// member reports restored offsets for every task it has run, as the
// runtime does.

const (
	scaleApp      = "payments"
	scaleClientID = "brook-" + scaleApp // topology.Config's default ClientID
)

var scaleGroups = []TaskGroup{
	{ID: 0, Topics: []string{"payments.authorizations", "payments.captures"}},
	{ID: 1, Topics: []string{"payments-balances-by-account-repartition"}},
}

var scaleChangelogs = map[int32][]string{
	0: {"payments-auth-capture-join-left-changelog", "payments-auth-capture-join-right-changelog"},
	1: {"payments-balances-changelog"},
}

// scaleSim is a consumer group of Strategy objects.
type scaleSim struct {
	tb       testing.TB
	topics   map[string][]int32
	members  map[string]*Strategy
	restored map[string]map[TaskID]map[string]int64 // what each member's runtime reports
	gen      int32
	serial   int
	last     map[string][]TaskID
	// standbys is Config.Standbys; with it, every member also has an
	// EndOffsets hook (warm-ups), answering from endSum.
	standbys    int
	lastStandby map[string][]TaskID
	// coop puts the members on sarama's cooperative protocol: each
	// reports the partitions it holds (its last assignment) as
	// OwnedPartitions, with that generation.
	coop   bool
	claims map[string]map[string][]int32
}

func newScaleSim(tb testing.TB, members, tasks int) *scaleSim {
	return newScaleSimStandbys(tb, members, tasks, 0)
}

// newScaleSimStandbys is newScaleSim with standbys per task and, when
// standbys > 0, warm-ups.
func newScaleSimStandbys(tb testing.TB, members, tasks, standbys int) *scaleSim {
	tb.Helper()
	per := int32(tasks / len(scaleGroups))
	sim := &scaleSim{tb: tb, topics: map[string][]int32{}, members: map[string]*Strategy{},
		restored: map[string]map[TaskID]map[string]int64{}, standbys: standbys, claims: map[string]map[string][]int32{}}
	for _, g := range scaleGroups {
		for _, topic := range g.Topics {
			for p := range per {
				sim.topics[topic] = append(sim.topics[topic], p)
			}
		}
	}
	for range members {
		sim.join()
	}
	return sim
}

// join adds a new member; its id is shaped like the coordinator's
// ("<client id>-<uuid>") and its endpoint like a Kubernetes service's.
func (sim *scaleSim) join() string {
	sim.tb.Helper()
	n := sim.serial
	sim.serial++
	id := fmt.Sprintf("%s-%08x-%04x-4%03x-8%03x-%012x", scaleClientID, n*2654435761%(1<<32), n%0xffff, n%0xfff, n%0xfff, n)
	restored := map[TaskID]map[string]int64{}
	sim.restored[id] = restored
	cfg := Config{
		Groups:   scaleGroups,
		Endpoint: fmt.Sprintf("payments-%d.payments.prod.svc.cluster.local:8080", n),
		State:    func() LocalState { return LocalState{Restored: restored} },
		Standbys: sim.standbys,
	}
	if sim.standbys > 0 {
		cfg.EndOffsets = func(_ context.Context, tasks []TaskID) (map[TaskID]int64, error) {
			out := make(map[TaskID]int64, len(tasks))
			for _, t := range tasks {
				out[t] = sim.endSum(t, sim.gen-1)
			}
			return out, nil
		}
	}
	s, err := NewStrategy(cfg)
	if err != nil {
		sim.tb.Fatal(err)
	}
	sim.members[id] = s
	return id
}

func (sim *scaleSim) leave() string {
	ids := slices.Sorted(mapsKeys(sim.members))
	id := ids[len(ids)/2]
	delete(sim.members, id)
	delete(sim.claims, id)
	return id
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// scaleOffset is the offset a changelog of task t is restored to after
// generation gen (the changelogs grow by one offset per generation).
func scaleOffset(t TaskID, changelog int, gen int32) int64 {
	return 5_000_000 + int64(t.Partition)*1_000 + int64(changelog)*77 + int64(gen)
}

// endSum is the sum of task t's changelogs' end offsets after generation
// gen.
func (sim *scaleSim) endSum(t TaskID, gen int32) int64 {
	var sum int64
	for i := range scaleChangelogs[t.Group] {
		sum += scaleOffset(t, i, gen)
	}
	return sum
}

// scaleRound is one rebalance's inputs and messages.
type scaleRound struct {
	leader *Strategy
	meta   map[string]sarama.ConsumerGroupMemberMetadata
	// Encoded as sarama sends them.
	metaBytes map[string][]byte // JoinGroup protocol metadata per member
	asgBytes  map[string][]byte // SyncGroup assignment per member
	userData  map[string]int    // the strategy's share of metaBytes
	asgData   map[string]int    // the strategy's share of asgBytes
	tasks     map[string][]TaskID
	standby   map[string][]TaskID
	warmups   int
}

// joinRound collects every member's subscription (the JoinGroup step).
func (sim *scaleSim) joinRound() *scaleRound {
	sim.tb.Helper()
	ids := slices.Sorted(mapsKeys(sim.members))
	r := &scaleRound{leader: sim.members[ids[0]], meta: map[string]sarama.ConsumerGroupMemberMetadata{},
		metaBytes: map[string][]byte{}, userData: map[string]int{}}
	for _, id := range ids {
		s := sim.members[id]
		ud, err := s.SubscriptionUserData(s.Topics())
		if err != nil {
			sim.tb.Fatal(err)
		}
		m := sarama.ConsumerGroupMemberMetadata{Version: 2, Topics: s.Topics(), UserData: ud, GenerationID: -1}
		if held := sim.claims[id]; sim.coop && len(held) > 0 {
			for _, topic := range slices.Sorted(mapsKeys(held)) {
				m.OwnedPartitions = append(m.OwnedPartitions, &sarama.OwnedPartition{Topic: topic, Partitions: held[topic]})
			}
			m.GenerationID = sim.gen - 1
		}
		sim.meta(r, id, m)
		r.userData[id] = len(ud)
	}
	return r
}

func (sim *scaleSim) meta(r *scaleRound, id string, m sarama.ConsumerGroupMemberMetadata) {
	var req sarama.JoinGroupRequest
	if err := req.AddGroupProtocolMetadata(StrategyName, &m); err != nil {
		sim.tb.Fatal(err)
	}
	r.meta[id] = m
	r.metaBytes[id] = req.OrderedGroupProtocols[0].Metadata
}

// lead runs the leader's part: Plan, then AssignmentData for every member
// of the plan. It returns the plan and each member's user data.
func (sim *scaleSim) lead(r *scaleRound, gen int32) (sarama.BalanceStrategyPlan, map[string][]byte) {
	subscribed := map[string][]int32{}
	for _, m := range r.meta {
		for _, t := range m.Topics {
			subscribed[t] = sim.topics[t]
		}
	}
	plan, err := r.leader.Plan(r.meta, subscribed)
	if err != nil {
		sim.tb.Fatal(err)
	}
	data := make(map[string][]byte, len(plan))
	for id, topics := range plan {
		if data[id], err = r.leader.AssignmentData(id, topics, gen); err != nil {
			sim.tb.Fatal(err)
		}
	}
	return plan, data
}

// syncRound delivers the plan (the SyncGroup step) and records what each
// member now runs, as the runtime would after restoring.
func (sim *scaleSim) syncRound(r *scaleRound, plan sarama.BalanceStrategyPlan, data map[string][]byte, gen int32) {
	sim.tb.Helper()
	r.asgBytes, r.asgData, r.tasks, r.standby = map[string][]byte{}, map[string]int{}, map[string][]TaskID{}, map[string][]TaskID{}
	for id, s := range sim.members {
		a := &sarama.ConsumerGroupMemberAssignment{Topics: plan[id], UserData: data[id]}
		var req sarama.SyncGroupRequest
		if err := req.AddGroupAssignmentMember(id, a); err != nil {
			sim.tb.Fatal(err)
		}
		r.asgBytes[id] = req.GroupAssignments[0].Assignment
		r.asgData[id] = len(data[id])
		s.OnAssignment(a, gen)
		tasks, err := s.Tasks(plan[id])
		if err != nil {
			sim.tb.Fatal(err)
		}
		r.tasks[id] = tasks
		sim.claims[id] = plan[id]
		local, _ := s.Local()
		r.standby[id] = local.Standby
		r.warmups += len(local.Warmup)
		// Actives and standbys are current; a warm-up has restored half.
		for _, t := range slices.Concat(tasks, local.Standby, local.Warmup) {
			offs := map[string]int64{}
			for i, cl := range scaleChangelogs[t.Group] {
				offs[cl] = scaleOffset(t, i, gen)
				if slices.Contains(local.Warmup, t) {
					offs[cl] /= 2
				}
			}
			sim.restored[id][t] = offs
		}
	}
}

// rebalance runs one whole generation and returns it.
func (sim *scaleSim) rebalance() *scaleRound {
	sim.gen++
	r := sim.joinRound()
	plan, data := sim.lead(r, sim.gen)
	sim.syncRound(r, plan, data, sim.gen)
	sim.last, sim.lastStandby = r.tasks, r.standby
	return r
}

// Sizes of the group's messages, computed from the Kafka protocol's
// schemas (non-flexible versions, which are the larger) and the bytes
// sarama encodes.
type groupSizes struct {
	metaMax, asgMax        int // per member, sarama-encoded
	userDataMax, asgUDMax  int // the strategy's user data in them
	joinLeader             int // JoinGroup response to the leader: every member's metadata
	syncLeader             int // SyncGroup request from the leader: every member's assignment
	syncMember             int // largest SyncGroup response: one member's assignment
	record                 int // the coordinator's group record in __consumer_offsets
	describe               int // DescribeGroups response for the group
	spread, tasks, members int
	// standbySpread is max − min standbys per member; standbys their
	// total.
	standbySpread, standbys, warmups int
}

func measure(r *scaleRound) groupSizes {
	var z groupSizes
	const header = 8 + 2 + 2 + len(scaleClientID) // response/request header, roughly
	leader := ""
	lo, hi := -1, 0
	for id := range r.meta {
		if leader == "" || id < leader {
			leader = id
		}
		m, a := len(r.metaBytes[id]), len(r.asgBytes[id])
		z.metaMax, z.asgMax = max(z.metaMax, m), max(z.asgMax, a)
		z.userDataMax, z.asgUDMax = max(z.userDataMax, r.userData[id]), max(z.asgUDMax, r.asgData[id])
		z.syncMember = max(z.syncMember, header+2+4+a)
		// JoinGroup response member: member_id, group_instance_id, metadata.
		z.joinLeader += 2 + len(id) + 2 + 4 + m
		// SyncGroup request assignment: member_id, assignment.
		z.syncLeader += 2 + len(id) + 4 + a
		// GroupMetadataValue member: member_id, group_instance_id,
		// client_id, client_host ("/10.x.y.z"), rebalance and session
		// time-outs, subscription, assignment.
		member := 2 + len(id) + 2 + 2 + len(scaleClientID) + 2 + len("/10.20.30.40") + 4 + 4 + 4 + m + 4 + a
		z.record += member
		z.describe += member - 8 // no time-outs
		n := len(r.tasks[id])
		z.tasks += n
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	z.members = len(r.meta)
	z.spread = hi - lo
	z.standbySpread, z.warmups = spread(r.standby), r.warmups
	for _, ts := range r.standby {
		z.standbys += len(ts)
	}
	// JoinGroup response: header, error, generation, protocol type and
	// name, leader, own member id, members array.
	z.joinLeader += header + 2 + 4 + 2 + len("consumer") + 2 + len(StrategyName) + 2*(2+len(leader)) + 4
	// SyncGroup request: header, group id, generation, member id,
	// instance id, protocol type and name, assignments array.
	z.syncLeader += header + 2 + len(scaleApp) + 4 + 2 + len(leader) + 2 + 2 + len("consumer") + 2 + len(StrategyName) + 4
	// The record: batch header (61) and record framing (~10), key
	// (version, group id), value header (version, protocol type,
	// generation, protocol, leader, state timestamp, members array).
	z.record += 61 + 10 + 2 + 2 + len(scaleApp) + 2 + 2 + len("consumer") + 4 + 2 + len(StrategyName) + 2 + len(leader) + 8 + 4
	z.describe += header + 4 + 2 + 2 + len(scaleApp) + 2 + len("Stable") + 2 + len("consumer") + 2 + len(StrategyName) + 4 + 4
	return z
}

func (z groupSizes) report(b *testing.B) {
	b.ReportMetric(float64(z.metaMax), "meta-B/member")
	b.ReportMetric(float64(z.userDataMax), "meta-userdata-B/member")
	b.ReportMetric(float64(z.asgMax), "assignment-B/member")
	b.ReportMetric(float64(z.asgUDMax), "assignment-userdata-B/member")
	b.ReportMetric(float64(z.joinLeader), "joingroup-leader-B")
	b.ReportMetric(float64(z.syncLeader), "syncgroup-leader-B")
	b.ReportMetric(float64(z.syncMember), "syncgroup-member-B")
	b.ReportMetric(float64(z.record), "group-record-B")
	b.ReportMetric(float64(z.describe), "describegroups-B")
	b.ReportMetric(float64(z.spread), "spread")
	if z.standbys > 0 {
		b.ReportMetric(float64(z.standbySpread), "standby-spread")
		b.ReportMetric(float64(z.warmups), "warmups")
	}
}

// movedTasks counts tasks of before whose owner differs in after.
func movedTasks(before, after map[string][]TaskID) int {
	owner := map[TaskID]string{}
	for id, tasks := range after {
		for _, t := range tasks {
			owner[t] = id
		}
	}
	n := 0
	for id, tasks := range before {
		for _, t := range tasks {
			if owner[t] != id {
				n++
			}
		}
	}
	return n
}

// BenchmarkScale measures one leader rebalance (Plan plus AssignmentData
// for every member: all the work sarama's leader does between JoinGroup
// and SyncGroup) at 100 instances × 2,000 tasks and 1,000 × 20,000:
//
//   - cold: every member is new (no previous tasks, no state);
//   - steady: every member reports the tasks and state of the previous
//     generation (a rebalance that changes nothing);
//   - leave: one member of a steady group has left;
//   - join: one new member joins a steady group.
//
// Besides time it reports the bytes of every group message, the
// coordinator's group record, the balance (max − min tasks per member)
// and, for leave and join, the tasks that moved. The -cooperative
// variants put the members on sarama's cooperative protocol: they report
// the partitions they hold (OwnedPartitions), which the leader reads to
// withhold moving tasks (a join withholds the newcomer's share, which
// counts as moved).
func BenchmarkScale(b *testing.B) {
	for _, size := range []struct {
		members, tasks, standbys int
		coop                     bool
	}{{100, 2_000, 0, false}, {1_000, 20_000, 0, false}, {1_000, 20_000, 1, false}, {1_000, 20_000, 0, true}, {1_000, 20_000, 1, true}} {
		for _, kind := range []string{"cold", "steady", "leave", "join"} {
			name := fmt.Sprintf("%dx%d", size.members, size.tasks)
			if size.standbys > 0 {
				name += fmt.Sprintf("-standbys%d", size.standbys)
			}
			if size.coop {
				name += "-cooperative"
			}
			name += "/" + kind
			b.Run(name, func(b *testing.B) {
				sim := newScaleSimStandbys(b, size.members, size.tasks, size.standbys)
				sim.coop = size.coop
				var before, beforeStandby map[string][]TaskID
				if kind != "cold" {
					sim.rebalance()
					sim.rebalance()
					before, beforeStandby = sim.last, sim.lastStandby
				}
				switch kind {
				case "leave":
					sim.leave()
				case "join":
					sim.join()
				}
				sim.gen++
				r := sim.joinRound()
				var plan sarama.BalanceStrategyPlan
				var data map[string][]byte
				b.ReportAllocs()
				start := time.Now()
				for b.Loop() {
					plan, data = sim.lead(r, sim.gen)
				}
				elapsed := time.Since(start) / time.Duration(b.N)
				sim.syncRound(r, plan, data, sim.gen)
				z := measure(r)
				rep, _ := r.leader.LastPlan()
				if z.tasks+rep.Withheld != size.tasks {
					b.Fatalf("%d tasks assigned and %d withheld, want %d", z.tasks, rep.Withheld, size.tasks)
				}
				if size.coop {
					b.ReportMetric(float64(rep.Withheld), "withheld")
				}
				z.report(b)
				b.ReportMetric(float64(elapsed)/1e6, "leader-ms")
				if before != nil {
					b.ReportMetric(float64(movedTasks(before, r.tasks)), "moved")
					if size.standbys > 0 {
						b.ReportMetric(float64(movedTasks(beforeStandby, r.standby)), "moved-standbys")
					}
				}
			})
		}
	}
}

// TestPayloadsIndependentOfGroupSize: what one member sends and receives
// does not grow with the group. At 10, 50 and 250 members with 20 tasks
// each (after a join and a leave, so members also report state of tasks
// they no longer own), the assignment user data stays within a constant, the
// sarama-encoded assignment differs only by its topics and partitions,
// and the subscription user data stays within a bound set by the
// member's own tasks.
func TestPayloadsIndependentOfGroupSize(t *testing.T) {
	sizes := []int{10, 50, 250}
	var asgUD, asg, metaUD []int
	for _, n := range sizes {
		sim := newScaleSim(t, n, 20*n)
		sim.rebalance()
		sim.leave()
		sim.rebalance()
		sim.join()
		sim.rebalance()
		r := sim.rebalance()
		z := measure(r)
		if z.tasks != 20*n || z.spread > 1 {
			t.Fatalf("%d members: %d tasks assigned, spread %d", n, z.tasks, z.spread)
		}
		asgUD, asg, metaUD = append(asgUD, z.asgUDMax), append(asg, z.asgMax), append(metaUD, z.userDataMax)
		// Per member: header, endpoint, generation; per owned task up
		// to 3 bytes in the task set and 5 for its sum, the same for as
		// many tasks of warm state; a few bytes per run.
		owned := 21
		if bound := 2 + 1 + 60 + 5 + 2*owned*(3+5) + 4*6; z.userDataMax > bound {
			t.Errorf("%d members: subscription user data of %d bytes, want at most %d", n, z.userDataMax, bound)
		}
	}
	for i := range sizes {
		// Header, generation, then per sub-topology its id and
		// partition count (varints: at most 5 bytes), empty standby,
		// warm-up and pending sets, no probing.
		if bound := 2 + 5 + 1 + len(scaleGroups)*(1+5) + 4; asgUD[i] > bound {
			t.Errorf("assignment user data of %d bytes at %d members, want at most %d", asgUD[i], sizes[i], bound)
		}
		// Partition numbers are 4 bytes each whatever their value; a
		// member may hold tasks of one topic more or less.
		if asg[i] > asg[0]+4*4+2+len(scaleGroups[0].Topics[1])+4 {
			t.Errorf("assignment of %d bytes at %d members, %d at %d", asg[i], sizes[i], asg[0], sizes[0])
		}
	}
	t.Logf("assignment user data %v, assignment %v, subscription user data %v bytes at %v members", asgUD, asg, metaUD, sizes)
}

// TestPlanAtScale: at 1,000 members and 20,000 tasks every task is
// assigned once, task counts differ by at most one, a leave moves only
// the leaver's tasks and a join only the newcomer's share, and the
// group's record stays under Kafka's default 1 MB message size. With a
// standby per task (and warm-ups): every task has one standby, standby
// counts differ by at most one, a leave moves only the leaver's tasks,
// each to the member holding its standby, and a join moves no task but
// gives the newcomer warm-ups. On the cooperative protocol (members
// report the partitions they hold), nothing is withheld in a steady
// rebalance or a leave; a join without standbys withholds the
// newcomer's whole share in its first rebalance and the follow-up gives
// it that share; the group record stays under Kafka's limit.
func TestPlanAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 members: not with -short")
	}
	for _, coop := range []bool{false, true} {
		for _, standbys := range []int{0, 1} {
			t.Run(fmt.Sprintf("standbys=%d/cooperative=%v", standbys, coop), func(t *testing.T) { planAtScale(t, standbys, coop) })
		}
	}
}

// kafkaMaxMessageBytes is the default max.message.bytes of a broker and
// of __consumer_offsets, which bounds the group record.
const kafkaMaxMessageBytes = 1_048_588

func planAtScale(t *testing.T, standbys int, coop bool) {
	sim := newScaleSimStandbys(t, 1_000, 20_000, standbys)
	sim.coop = coop
	check := func(what string, r *scaleRound) groupSizes {
		t.Helper()
		z := measure(r)
		// A leave with warm-ups: a failed task goes to its standby even
		// when that member is at its share, until a probing rebalance
		// moves it to where the balance wants it.
		allowed := 1
		if standbys > 0 && what == "leave" {
			allowed = 2
		}
		// A join with warm-ups: the newcomer gets no task before its
		// warm-ups catch up; on the cooperative protocol without them,
		// not before the follow-up.
		if (standbys > 0 || coop) && what == "join" {
			allowed = 20_000/len(r.meta) + 2
		}
		rep, _ := r.leader.LastPlan()
		seen := map[TaskID]bool{}
		for _, tasks := range r.tasks {
			for _, task := range tasks {
				if seen[task] {
					t.Fatalf("%s: task %s assigned twice", what, task)
				}
				seen[task] = true
			}
		}
		// Withheld tasks are assigned in the follow-up.
		if len(seen)+rep.Withheld != 20_000 || z.spread > allowed {
			t.Fatalf("%s: %d tasks assigned, %d withheld, spread %d", what, len(seen), rep.Withheld, z.spread)
		}
		// On the cooperative protocol every subscription also lists the
		// partitions the member holds (sarama's OwnedPartitions, about
		// 220 bytes per member here), which takes the record with one
		// standby per task just past 1,000,000 bytes: check it against
		// the limit itself, __consumer_offsets' default
		// max.message.bytes.
		limit := 1_000_000
		if coop {
			limit = kafkaMaxMessageBytes
		}
		if z.record >= limit || z.joinLeader >= limit || z.syncLeader >= limit {
			t.Errorf("%s: group record %d, JoinGroup %d, SyncGroup %d bytes", what, z.record, z.joinLeader, z.syncLeader)
		}
		if z.standbys != standbys*20_000 || z.standbySpread > 1 {
			t.Errorf("%s: %d standbys, spread %d", what, z.standbys, z.standbySpread)
		}
		if coop && what != "join" && rep.Withheld != 0 {
			t.Errorf("%s: %d tasks withheld", what, rep.Withheld)
		}
		t.Logf("%s: record %d B, JoinGroup %d B, SyncGroup %d B, subscription ≤ %d B, assignment ≤ %d B, standby spread %d, warm-ups %d, withheld %d; plan took %v",
			what, z.record, z.joinLeader, z.syncLeader, z.metaMax, z.asgMax, z.standbySpread, z.warmups, rep.Withheld, rep.Took)
		return z
	}
	check("cold", sim.rebalance())
	before := check("steady", sim.rebalance()).members
	prev, prevStandby := sim.last, sim.lastStandby
	left := sim.leave()
	r := sim.rebalance()
	check("leave", r)
	if m := movedTasks(prev, r.tasks); m != len(prev[left]) {
		t.Errorf("a leave moved %d tasks, want the leaver's %d", m, len(prev[left]))
	}
	if standbys > 0 {
		holder := standbyHolders(prevStandby)
		failed := 0
		for id, tasks := range r.tasks {
			for _, task := range tasks {
				if slices.Contains(prev[left], task) {
					if !slices.Contains(holder[task], id) {
						t.Errorf("task %s of the leaver went to %s, not its standby %v", task, id, holder[task])
					}
					failed++
				}
			}
		}
		rep, _ := r.leader.LastPlan()
		t.Logf("leave: %d tasks failed over to their standbys (%d held back there), %d standbys moved; plan took %v",
			failed, rep.HeldBack, movedTasks(prevStandby, r.standby), rep.Took)
	}
	prev = sim.last
	joined := sim.join()
	r = sim.rebalance()
	z := check("join", r)
	m := movedTasks(prev, r.tasks)
	if standbys == 0 && coop {
		// Every task of the newcomer's share is still held by its
		// owner: all withheld, then given in the follow-up, which the
		// owners that gave them up start.
		rep, _ := r.leader.LastPlan()
		now := owners(r.tasks)
		for id, tasks := range prev {
			for _, task := range tasks {
				if o, ok := now[task]; ok && o != id {
					t.Errorf("a cooperative join moved task %s from %s to %s at once", task, id, o)
				}
			}
		}
		if len(r.tasks[joined]) != 0 || rep.Withheld != 20_000/z.members || m != rep.Withheld {
			t.Errorf("a cooperative join gave the newcomer %d tasks, withheld %d and left %d tasks without their owner, want 0 and its share %d twice", len(r.tasks[joined]), rep.Withheld, m, 20_000/z.members)
		}
		r = sim.rebalance()
		z = check("follow-up", r)
		m = movedTasks(prev, r.tasks)
	}
	if standbys == 0 && (m != len(r.tasks[joined]) || m != 20_000/z.members) {
		t.Errorf("a join moved %d tasks, the newcomer has %d, its share is %d", m, len(r.tasks[joined]), 20_000/z.members)
	}
	if standbys > 0 && (m != 0 || z.warmups != DefaultMaxWarmups) {
		t.Errorf("a join moved %d tasks and placed %d warm-ups, want none and %d", m, z.warmups, DefaultMaxWarmups)
	}
	if z.members != before {
		t.Errorf("%d members after a leave and a join, %d before", z.members, before)
	}
}
