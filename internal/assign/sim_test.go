package assign

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// group simulates a consumer group in memory with real Strategy objects:
// each rebalance runs the same calls, in the same order, that sarama's
// consumer group makes (SubscriptionUserData on every member, Plan and
// AssignmentData on the leader, OnAssignment on every member), and the
// group coordinator's description of the stable group that Routing reads
// (DescribeGroups).
type group struct {
	t          *testing.T
	groups     []TaskGroup
	topics     map[string][]int32
	members    map[string]*Strategy
	subscribed map[string][]string // member -> topics; default: all
	state      map[string]LocalState
	gen        int32
	last       map[string][]TaskID
	// desc is what the coordinator describes; describes counts the
	// descriptions each member asked for.
	desc      *sarama.GroupDescription
	describes map[string]int
	// cfg, when set, adjusts each member's Config (standbys, warm-ups).
	cfg func(id string, c *Config)
	// fullWarm makes members report warm state for every task they
	// have state for, not only their own and the 8 warmest others.
	fullWarm bool
	// standby, warmup and probing are the last generation's copies and
	// probing delays per member; report is the last leader's LastPlan.
	standby, warmup map[string][]TaskID
	probing         map[string]time.Duration
	report          PlanReport
	// coop marks the members on sarama's cooperative protocol. claims
	// are the partitions each member holds between rebalances (a
	// cooperative member reports them as OwnedPartitions, an eager one
	// gives them all up before it joins) and claimsGen the generation
	// they come from; revoked are the tasks each cooperative member gave
	// up after the last rebalance (sarama makes it rejoin at once).
	coop      map[string]bool
	claims    map[string]map[string][]int32
	claimsGen map[string]int32
	revoked   map[string][]TaskID
}

func newGroup(t *testing.T, groups []TaskGroup, partitions map[string]int) *group {
	t.Helper()
	topics := make(map[string][]int32)
	for topic, n := range partitions {
		for p := range n {
			topics[topic] = append(topics[topic], int32(p))
		}
	}
	return &group{t: t, groups: groups, topics: topics, members: map[string]*Strategy{},
		subscribed: map[string][]string{}, state: map[string]LocalState{}, describes: map[string]int{},
		coop: map[string]bool{}, claims: map[string]map[string][]int32{}, claimsGen: map[string]int32{}}
}

func (g *group) join(ids ...string) {
	g.t.Helper()
	for _, id := range ids {
		cfg := Config{
			Groups:   g.groups,
			Endpoint: id + ".svc:8080",
			State:    func() LocalState { return g.state[id] },
			Describe: func(context.Context) (*sarama.GroupDescription, error) {
				g.describes[id]++
				return g.desc, nil
			},
		}
		if g.cfg != nil {
			g.cfg(id, &cfg)
		}
		s, err := NewStrategy(cfg)
		if err != nil {
			g.t.Fatal(err)
		}
		if g.fullWarm {
			s.minWarm = 1 << 20
		}
		g.members[id] = s
	}
}

func (g *group) leave(ids ...string) {
	for _, id := range ids {
		// A member leaving gives up its partitions first.
		delete(g.members, id)
		delete(g.claims, id)
	}
}

// rebalance runs one generation and returns each member's tasks. It checks
// the invariants every assignment must hold.
func (g *group) rebalance() map[string][]TaskID {
	g.t.Helper()
	g.gen++
	ids := slices.Sorted(maps.Keys(g.members))
	meta := make(map[string]sarama.ConsumerGroupMemberMetadata, len(ids))
	for _, id := range ids {
		subs := g.subscribed[id]
		if subs == nil {
			subs = g.members[id].Topics()
		}
		ud, err := g.members[id].SubscriptionUserData(slices.Clone(subs))
		if err != nil {
			g.t.Fatal(err)
		}
		meta[id] = sarama.ConsumerGroupMemberMetadata{Version: 2, Topics: subs, UserData: ud, GenerationID: -1}
		if g.coop[id] {
			m := meta[id]
			for _, topic := range slices.Sorted(maps.Keys(g.claims[id])) {
				m.OwnedPartitions = append(m.OwnedPartitions, &sarama.OwnedPartition{Topic: topic, Partitions: slices.Clone(g.claims[id][topic])})
			}
			if len(g.claims[id]) > 0 {
				m.GenerationID = g.claimsGen[id]
			}
			meta[id] = m
		} else {
			// An eager member gives up everything before it joins.
			delete(g.claims, id)
		}
	}
	// sarama's leader plans only with the topics some member subscribes to.
	subscribedTopics := make(map[string][]int32)
	for _, m := range meta {
		for _, topic := range m.Topics {
			subscribedTopics[topic] = g.topics[topic]
		}
	}
	// Any member may lead; use a different one each generation.
	leader := g.members[ids[int(g.gen)%len(ids)]]
	plan, err := leader.Plan(meta, subscribedTopics)
	if err != nil {
		g.t.Fatalf("generation %d: Plan: %v", g.gen, err)
	}
	// No partition is held by two members at once: members apply the
	// new assignment one by one, so a partition a member still holds
	// must go to nobody else.
	holder := map[string]map[int32]string{}
	for _, id := range ids {
		for _, a := range []map[string][]int32{g.claims[id], plan[id]} {
			for topic, parts := range a {
				if holder[topic] == nil {
					holder[topic] = map[int32]string{}
				}
				for _, p := range parts {
					if other, ok := holder[topic][p]; ok && other != id {
						g.t.Fatalf("generation %d: partition %s/%d held by %s and assigned to %s, or the other way round", g.gen, topic, p, other, id)
					}
					holder[topic][p] = id
				}
			}
		}
	}
	g.revoked = map[string][]TaskID{}
	result := make(map[string][]TaskID)
	g.standby, g.warmup, g.probing = map[string][]TaskID{}, map[string][]TaskID{}, map[string]time.Duration{}
	if r, ok := leader.LastPlan(); ok {
		g.report = r
	} else {
		g.t.Fatal("the leader has no plan report")
	}
	g.desc = &sarama.GroupDescription{State: "Stable", ProtocolType: "consumer", Protocol: StrategyName,
		Members: map[string]*sarama.GroupMemberDescription{}}
	for _, id := range ids {
		topics, ok := plan[id]
		if !ok {
			g.t.Fatalf("generation %d: member %s missing from the plan", g.gen, id)
		}
		data, err := leader.AssignmentData(id, topics, g.gen)
		if err != nil {
			g.t.Fatal(err)
		}
		s := g.members[id]
		asg := &sarama.ConsumerGroupMemberAssignment{Version: 0, Topics: topics, UserData: data}
		s.OnAssignment(asg, g.gen)
		s.SetMemberID(id)
		local, ok := s.Local()
		if !ok {
			g.t.Fatalf("member %s has no assignment", id)
		}
		if local.Generation != g.gen {
			g.t.Fatalf("member %s: generation %d", id, local.Generation)
		}
		// Its claims are exactly its tasks' partitions, co-partitioned.
		tasks, err := s.Tasks(topics)
		if err != nil {
			g.t.Fatalf("member %s: %v", id, err)
		}
		if !slices.Equal(tasks, local.Tasks) {
			g.t.Fatalf("member %s: claims give tasks %v, assignment says %v", id, tasks, local.Tasks)
		}
		result[id] = tasks
		if g.coop[id] {
			before, err := s.Tasks(g.claims[id])
			if err != nil {
				g.t.Fatalf("member %s holds %v: %v", id, g.claims[id], err)
			}
			for _, task := range before {
				if !slices.Contains(tasks, task) {
					g.revoked[id] = append(g.revoked[id], task)
				}
			}
		}
		g.claims[id], g.claimsGen[id] = topics, g.gen
		g.standby[id], g.warmup[id], g.probing[id] = local.Standby, local.Warmup, local.ProbingRebalance
		for _, task := range slices.Concat(local.Standby, local.Warmup) {
			if slices.Contains(tasks, task) {
				g.t.Fatalf("member %s has task %s both active and as a copy", id, task)
			}
		}
		g.desc.Members[id] = &sarama.GroupMemberDescription{MemberId: id, ClientId: "brook-test",
			MemberMetadata: encodeMetadata(g.t, meta[id]), MemberAssignment: encodeAssignment(g.t, id, asg)}
	}
	// Every member routes with the same whole assignment, built from the
	// coordinator's description, and finds itself in it.
	var first *Assignment
	for _, id := range ids {
		a, err := g.members[id].Routing(context.Background())
		if err != nil {
			g.t.Fatalf("member %s: Routing: %v", id, err)
		}
		if a.Generation != g.gen || a.Self < 0 || a.Hosts[a.Self].MemberID != id || !slices.Equal(a.Local(), result[id]) {
			g.t.Fatalf("member %s: generation %d, self %d in %v", id, a.Generation, a.Self, a.Hosts)
		}
		for _, h := range a.Hosts {
			if h.Endpoint != h.MemberID+".svc:8080" || !slices.Equal(h.Tasks, result[h.MemberID]) {
				g.t.Fatalf("member %s routes %s to %q with tasks %v, want %v", id, h.MemberID, h.Endpoint, h.Tasks, result[h.MemberID])
			}
			for _, task := range h.Tasks {
				if o, ok := a.Owner(task); !ok || o.MemberID != h.MemberID {
					g.t.Fatalf("member %s: Owner(%s) = %v, %v", id, task, o, ok)
				}
			}
			if !slices.Equal(h.Standby, g.standby[h.MemberID]) || !slices.Equal(h.Warmup, g.warmup[h.MemberID]) {
				g.t.Fatalf("member %s routes %s with standbys %v and warm-ups %v, want %v and %v", id, h.MemberID, h.Standby, h.Warmup, g.standby[h.MemberID], g.warmup[h.MemberID])
			}
			for _, task := range h.Standby {
				if !slices.ContainsFunc(a.Standbys(task), func(x Host) bool { return x.MemberID == h.MemberID }) {
					g.t.Fatalf("member %s: Standbys(%s) = %v lacks %s", id, task, a.Standbys(task), h.MemberID)
				}
			}
			for _, task := range h.Warmup {
				if ws := a.Warmups(task); len(ws) != 1 || ws[0].MemberID != h.MemberID {
					g.t.Fatalf("member %s: Warmups(%s) = %v, want %s", id, task, ws, h.MemberID)
				}
			}
		}
		if first == nil {
			first = &a
		} else if !sameHosts(*first, a) {
			g.t.Fatalf("member %s reads a different assignment:\n%v\n%v", id, a.Hosts, first.Hosts)
		}
	}
	g.last = result
	return result
}

// encodeMetadata encodes a member's subscription as sarama sends it in
// JoinGroup (and as the coordinator describes it).
func encodeMetadata(tb testing.TB, m sarama.ConsumerGroupMemberMetadata) []byte {
	tb.Helper()
	var req sarama.JoinGroupRequest
	if err := req.AddGroupProtocolMetadata(StrategyName, &m); err != nil {
		tb.Fatal(err)
	}
	return req.OrderedGroupProtocols[0].Metadata
}

// encodeAssignment encodes a member's assignment as sarama sends it in
// SyncGroup.
func encodeAssignment(tb testing.TB, id string, a *sarama.ConsumerGroupMemberAssignment) []byte {
	tb.Helper()
	var req sarama.SyncGroupRequest
	if err := req.AddGroupAssignmentMember(id, a); err != nil {
		tb.Fatal(err)
	}
	return req.GroupAssignments[0].Assignment
}

func sameHosts(a, b Assignment) bool {
	if len(a.Hosts) != len(b.Hosts) || !maps.Equal(a.Partitions, b.Partitions) {
		return false
	}
	for i := range a.Hosts {
		x, y := a.Hosts[i], b.Hosts[i]
		if x.MemberID != y.MemberID || x.Endpoint != y.Endpoint || !slices.Equal(x.Tasks, y.Tasks) ||
			!slices.Equal(x.Standby, y.Standby) || !slices.Equal(x.Warmup, y.Warmup) {
			return false
		}
	}
	return true
}

// checkBalanced fails unless every one of want tasks is assigned once and
// task counts differ by at most one.
func checkBalanced(t *testing.T, got map[string][]TaskID, want int) {
	t.Helper()
	seen := map[TaskID]string{}
	lo, hi := -1, -1
	for id, tasks := range got {
		for _, task := range tasks {
			if other, dup := seen[task]; dup {
				t.Fatalf("task %s assigned to %s and %s", task, other, id)
			}
			seen[task] = id
		}
		if lo < 0 || len(tasks) < lo {
			lo = len(tasks)
		}
		if len(tasks) > hi {
			hi = len(tasks)
		}
	}
	if len(seen) != want {
		t.Fatalf("%d tasks assigned, want %d: %v", len(seen), want, got)
	}
	if hi-lo > 1 {
		t.Fatalf("unbalanced: max %d min %d: %v", hi, lo, got)
	}
}

// moved counts tasks whose owner changed between two generations, among
// tasks that had an owner in the first.
func moved(before, after map[string][]TaskID) int {
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

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("m%02d", i)
	}
	return out
}
