package assign

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// StrategyName is the group protocol name the strategy registers under.
// Every member of an application's group must use it.
const StrategyName = "brook-tasks"

// LocalState is what the runtime tells the strategy about this instance
// before each join.
type LocalState struct {
	// Restored holds, for each task whose state is on this instance's
	// disk, the changelog offsets its stores are restored to: changelog
	// topic -> next offset to restore. The strategy reports one sum per
	// task (see MemberData.Warm) and only for some tasks (see
	// SubscriptionUserData); the leader prefers members with larger sums
	// when it has to place a task.
	Restored map[TaskID]map[string]int64
}

// Config configures a Strategy.
type Config struct {
	// Groups is the topology's shape: each sub-topology with its
	// co-partitioned source topics. Required.
	Groups []TaskGroup
	// Endpoint is this instance's interactive-query address (host:port)
	// that other instances route queries to. Empty means none.
	Endpoint string
	// State is called before each join (on the consumer group's
	// rebalance path, so it must return promptly) for the restored
	// changelog offsets to report. Nil reports none.
	State func() LocalState
	// Describe asks the group coordinator to describe the consumer group
	// (a DescribeGroups request for the application's group id), for
	// Routing. Nil leaves Routing without a source: it fails.
	Describe func(ctx context.Context) (*sarama.GroupDescription, error)
	// Logger receives warnings about undecodable member data and tasks
	// nobody can run. Nil discards them.
	Logger *slog.Logger
}

// Strategy is the consumer-group balance strategy of a brook application.
// It assigns tasks rather than partitions, keeps them sticky across
// rebalances and prefers members with warm state. Each member receives
// only its own part of the assignment; Routing assembles the whole one
// when interactive queries need it. See the package documentation for how
// it plugs into sarama.
//
// It implements sarama.BalanceStrategy,
// sarama.SubscriptionUserDataBalanceStrategy and
// sarama.OnAssignmentBalanceStrategy, and is safe for concurrent use.
type Strategy struct {
	groups   groupSet
	endpoint string
	state    func() LocalState
	describe func(ctx context.Context) (*sarama.GroupDescription, error)
	log      *slog.Logger
	// retry is how long a failed Routing answer is reused before the
	// group is described again.
	retry time.Duration

	mu sync.Mutex
	// plan is the leader's last Plan, read by AssignmentData.
	plan *leaderPlan
	// current is the last assignment this member received.
	current *MemberAssignment
	// memberID is this member's id in the group, as the runtime last
	// reported it.
	memberID string
	// routes is the whole assignment of current's generation, once
	// Routing has assembled it; routeErr the last failure to, for
	// routeErrGen, at routeErrAt; fetching is closed when the
	// description in flight is done.
	routes      *Assignment
	routeErr    error
	routeErrGen int32
	routeErrAt  time.Time
	fetching    chan struct{}
}

// leaderPlan is what AssignmentData needs of the last Plan.
type leaderPlan struct {
	partitions map[int32]int32
	members    map[string]bool
}

// DefaultRoutingRetry is how long Routing reuses a failure (the group is
// rebalancing, the coordinator cannot be reached) before it describes the
// group again, so that a burst of queries does not become a burst of
// DescribeGroups requests.
const DefaultRoutingRetry = 250 * time.Millisecond

var (
	_ sarama.BalanceStrategy                     = (*Strategy)(nil)
	_ sarama.SubscriptionUserDataBalanceStrategy = (*Strategy)(nil)
	_ sarama.OnAssignmentBalanceStrategy         = (*Strategy)(nil)
)

// NewStrategy validates cfg and returns a strategy. Put it in
// sarama.Config.Consumer.Group.Rebalance.GroupStrategies and subscribe the
// consumer group to Topics().
func NewStrategy(cfg Config) (*Strategy, error) {
	gs, err := newGroupSet(cfg.Groups)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Strategy{groups: gs, endpoint: cfg.Endpoint, state: cfg.State, describe: cfg.Describe,
		log: log, retry: DefaultRoutingRetry}, nil
}

// Name implements sarama.BalanceStrategy.
func (s *Strategy) Name() string { return StrategyName }

// Topics returns every source topic of every sub-topology, sorted: the
// topics to subscribe the consumer group to.
func (s *Strategy) Topics() []string {
	return slices.Sorted(maps.Keys(s.groups.byTopic))
}

// TaskOf returns the task that partition of topic belongs to.
func (s *Strategy) TaskOf(topic string, partition int32) (TaskID, bool) {
	g, ok := s.groups.byTopic[topic]
	if !ok || partition < 0 {
		return TaskID{}, false
	}
	return TaskID{Group: g, Partition: partition}, true
}

// Tasks turns a member's claims (sarama's ConsumerGroupSession.Claims:
// topic -> partitions) into tasks. Every partition of a task must be in
// the claims, else it returns an *IncompleteTaskError; topics that belong
// to no sub-topology are an error too.
func (s *Strategy) Tasks(claims map[string][]int32) ([]TaskID, error) {
	have := make(map[TaskID]map[string]bool)
	for topic, parts := range claims {
		for _, p := range parts {
			t, ok := s.TaskOf(topic, p)
			if !ok {
				return nil, fmt.Errorf("assign: claimed partition %s/%d belongs to no sub-topology", topic, p)
			}
			if have[t] == nil {
				have[t] = make(map[string]bool)
			}
			have[t][topic] = true
		}
	}
	tasks := slices.SortedFunc(maps.Keys(have), TaskID.Compare)
	for _, t := range tasks {
		g, _ := s.groups.group(t.Group)
		var missing []string
		for _, topic := range g.Topics {
			if !have[t][topic] {
				missing = append(missing, topic)
			}
		}
		if len(missing) > 0 {
			return nil, &IncompleteTaskError{Task: t, Missing: missing}
		}
	}
	return tasks, nil
}

// Local returns a copy of this member's part of the last assignment it
// received (its generation, tasks and the partition counts), and false
// before the first one or after one it could not read. It is updated
// during each rebalance before sarama calls the ConsumerGroupHandler's
// Setup, so Setup sees its own generation.
func (s *Strategy) Local() (MemberAssignment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return MemberAssignment{}, false
	}
	return s.current.clone(), true
}

// SetMemberID tells the strategy this member's id in the group (sarama's
// ConsumerGroupSession.MemberID), which Routing needs to find itself in
// the group's description.
func (s *Strategy) SetMemberID(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != s.memberID {
		s.memberID = id
		s.forgetRoutes()
	}
}

// MemberID returns the id SetMemberID last set, "" before.
func (s *Strategy) MemberID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memberID
}

// forgetRoutes drops the cached routing answer; s.mu is held.
func (s *Strategy) forgetRoutes() {
	s.routes, s.routeErr = nil, nil
}

// minWarmReported is how many tasks besides its own a member reports warm
// state for at least; it reports as many as it owns when that is more.
const minWarmReported = 8

// SubscriptionUserData implements sarama.SubscriptionUserDataBalanceStrategy:
// sarama calls it before every JoinGroup and sends the result to the
// leader as this member's user data.
//
// It reports the member's endpoint, the tasks of the last assignment it
// received, and warm state: one sum of restored changelog offsets per
// task, for the tasks it owned and for at most max(8, owned) others with
// state on this instance — those with the largest sums, which would cost
// the most to restore elsewhere. The rest is pruned, so the payload grows
// with the member's share of the tasks, never with the group or with the
// history of what the instance once ran.
func (s *Strategy) SubscriptionUserData(topics []string) ([]byte, error) {
	d := MemberData{Endpoint: s.endpoint, Generation: -1}
	s.mu.Lock()
	if s.current != nil {
		d.Generation = s.current.Generation
		d.Owned = slices.Clone(s.current.Tasks)
	}
	s.mu.Unlock()
	if s.state != nil {
		d.Warm = s.warmth(s.state().Restored, d.Owned)
	}
	return d.MarshalBinary()
}

// warmth sums each task's restored offsets and keeps the owned tasks and
// the warmest others (see SubscriptionUserData).
func (s *Strategy) warmth(restored map[TaskID]map[string]int64, owned []TaskID) map[TaskID]int64 {
	type entry struct {
		t TaskID
		w int64
	}
	out := make(map[TaskID]int64)
	var others []entry
	for t, offsets := range restored {
		if _, known := s.groups.group(t.Group); !known || t.Partition < 0 {
			continue
		}
		var w int64
		for _, off := range offsets {
			if off > 0 {
				w = satAdd(w, off)
			}
		}
		if w <= 0 {
			continue
		}
		if _, own := slices.BinarySearchFunc(owned, t, TaskID.Compare); own {
			out[t] = w
		} else {
			others = append(others, entry{t, w})
		}
	}
	slices.SortFunc(others, func(a, b entry) int {
		if c := cmp.Compare(b.w, a.w); c != 0 {
			return c
		}
		return a.t.Compare(b.t)
	})
	for _, e := range others[:min(len(others), max(minWarmReported, len(owned)))] {
		out[e.t] = e.w
	}
	return out
}

// satAdd adds two non-negative numbers, saturating at the largest int64.
func satAdd(a, b int64) int64 {
	if a > maxInt64-b {
		return maxInt64
	}
	return a + b
}

const maxInt64 = 1<<63 - 1

// OnAssignment implements sarama.OnAssignmentBalanceStrategy: sarama calls
// it after SyncGroup with this member's assignment: its partitions, and
// user data holding its generation and the partition counts.
func (s *Strategy) OnAssignment(assignment *sarama.ConsumerGroupMemberAssignment, generationID int32) {
	if assignment == nil {
		return
	}
	a, err := DecodeMemberAssignment(assignment.UserData)
	if err == nil {
		a.Tasks, err = s.Tasks(assignment.Topics)
	}
	if err != nil {
		s.log.Error("brook assignor: cannot read this member's assignment; interactive queries cannot be routed until the next rebalance",
			"generation", generationID, "error", err)
		s.mu.Lock()
		s.current = nil
		s.forgetRoutes()
		s.mu.Unlock()
		return
	}
	if a.Generation != generationID {
		s.log.Warn("brook assignor: assignment made for another generation", "action", "nothing: the group rebalances again",
			"assignment_generation", a.Generation, "generation", generationID)
	}
	s.mu.Lock()
	s.current = &a
	s.forgetRoutes()
	s.mu.Unlock()
}

// Plan implements sarama.BalanceStrategy. sarama calls it on the group
// leader only, with every member's subscription and the partitions of
// every subscribed topic. It assigns tasks, expands them to partitions,
// and keeps what AssignmentData needs.
func (s *Strategy) Plan(members map[string]sarama.ConsumerGroupMemberMetadata, topics map[string][]int32) (sarama.BalanceStrategyPlan, error) {
	// The topology shape against the cluster: task counts per group.
	partitions := make(map[int32]int32)
	groupTopics := make(map[int32][]string)
	for _, g := range s.groups.groups {
		counts := make(map[string]int, len(g.Topics))
		var missing []string
		for _, topic := range g.Topics {
			parts, ok := topics[topic]
			if !ok {
				missing = append(missing, topic)
				continue
			}
			counts[topic] = len(parts)
		}
		if len(counts) == 0 {
			s.log.Debug("brook assignor: no member subscribes to the sources of a sub-topology", "subtopology", g.ID)
			continue
		}
		if len(missing) > 0 {
			return nil, &MissingTopicsError{Group: g.ID, Missing: missing}
		}
		n := -1
		for _, c := range counts {
			if n >= 0 && c != n {
				return nil, &PartitionCountError{Group: g.ID, Partitions: counts}
			}
			n = c
		}
		for _, topic := range g.Topics {
			for _, p := range topics[topic] {
				if p < 0 || int(p) >= n {
					return nil, fmt.Errorf("assign: topic %s reports partition %d among %d partitions", topic, p, n)
				}
			}
		}
		partitions[g.ID] = int32(n)
		groupTopics[g.ID] = g.Topics
	}
	for _, topic := range slices.Sorted(maps.Keys(topics)) {
		if _, ok := s.groups.byTopic[topic]; !ok {
			s.log.Warn("brook assignor: a member subscribes to a topic that is no source of this topology; it stays unassigned", "action", "run the same topology on every instance of an application id (a rolling upgrade that changes sources needs a new application id)", "topic", topic)
		}
	}

	var tasks []TaskID
	for _, g := range slices.Sorted(maps.Keys(partitions)) {
		for p := range partitions[g] {
			tasks = append(tasks, TaskID{Group: g, Partition: p})
		}
	}

	cands := make([]candidate, 0, len(members))
	for id, meta := range members {
		// A member without (readable) data is a new member: no
		// endpoint, no previous tasks, no state.
		c := candidate{id: id, groups: make(map[int32]bool, len(groupTopics)), data: MemberData{Generation: -1}}
		if len(meta.UserData) > 0 {
			d, err := DecodeMemberData(meta.UserData)
			if err != nil {
				s.log.Warn("brook assignor: ignoring undecodable member data; treating the member as new", "action", "run the same brook version on every instance of an application id", "member", id, "error", err)
			} else {
				c.data = d
			}
		}
		subscribed := make(map[string]bool, len(meta.Topics))
		for _, t := range meta.Topics {
			subscribed[t] = true
		}
		for g, gTopics := range groupTopics {
			all := true
			for _, t := range gTopics {
				all = all && subscribed[t]
			}
			c.groups[g] = all
		}
		cands = append(cands, c)
	}

	byMember, unassigned := balance(tasks, cands)
	if len(unassigned) > 0 {
		s.log.Warn("brook assignor: no member subscribes to the sources of these tasks; they stay unassigned", "action", "run the same topology on every instance of an application id", "tasks", fmt.Sprint(unassigned))
	}

	lp := &leaderPlan{partitions: partitions, members: make(map[string]bool, len(cands))}
	plan := make(sarama.BalanceStrategyPlan, len(cands))
	for _, c := range cands {
		lp.members[c.id] = true
		// Every member gets an entry, even without tasks: sarama calls
		// AssignmentData only for members in the plan, and every member
		// needs its generation and the partition counts.
		plan[c.id] = make(map[string][]int32)
		for _, t := range byMember[c.id] {
			for _, topic := range groupTopics[t.Group] {
				plan.Add(c.id, topic, t.Partition)
			}
		}
	}

	s.mu.Lock()
	s.plan = lp
	s.mu.Unlock()
	return plan, nil
}

// ErrNoPlan is returned by AssignmentData when Plan has not run.
var ErrNoPlan = errors.New("assign: AssignmentData called before Plan")

// AssignmentData implements sarama.BalanceStrategy. sarama calls it on the
// leader, after Plan, once per member of the plan; the bytes travel to
// that member in its SyncGroup assignment, beside its partitions. They
// hold the generation and the partition counts (and, later, the member's
// standby tasks): nothing about the other members.
func (s *Strategy) AssignmentData(memberID string, topics map[string][]int32, generationID int32) ([]byte, error) {
	s.mu.Lock()
	plan := s.plan
	s.mu.Unlock()
	if plan == nil {
		return nil, ErrNoPlan
	}
	if !plan.members[memberID] {
		return nil, fmt.Errorf("assign: member %q is not in the last plan", memberID)
	}
	return MemberAssignment{Generation: generationID, Partitions: plan.partitions}.MarshalBinary()
}
