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
	// Logger receives warnings about undecodable member data, tasks
	// nobody can run, standbys that cannot be placed and failed
	// EndOffsets calls. Nil discards them.
	Logger *slog.Logger

	// Standbys is the number of standby replicas per stateful task
	// (Kafka Streams' num.standby.replicas): copies of its stores that
	// other members keep current from the changelogs, never on the
	// member running the task. With fewer members than Standbys+1 the
	// leader places as many as it can. Only the leader's setting counts;
	// every instance should have the same. 0 (the default): none.
	Standbys int

	// EndOffsets returns, for each of the given tasks, the sum of the end
	// offsets of its changelog partitions (the runtime asks the brokers
	// with ListOffsets, latest, under read_committed when exactly-once).
	// A task missing from the map has nothing to restore and counts as
	// caught up everywhere. The leader calls it during Plan, with a
	// context bounded by EndOffsetsTimeout, and only for the stateful
	// tasks whose balanced target is not their previous owner (none in a
	// steady rebalance).
	//
	// Setting it enables warm-ups (KIP-441): a task whose target member
	// lags more than AcceptableRecoveryLag behind the changelog stays on
	// a caught-up member while the target warms it up (see the package
	// doc). Nil: no warm-ups, tasks move at once (the first assignor's
	// behaviour). If it fails, the plan is made as if it were nil, the
	// error is logged and reported by LastPlan (an *EndOffsetsError),
	// and the rebalance goes on.
	EndOffsets func(ctx context.Context, tasks []TaskID) (map[TaskID]int64, error)
	// EndOffsetsTimeout bounds each EndOffsets call. 0 means
	// DefaultEndOffsetsTimeout.
	EndOffsetsTimeout time.Duration
	// AcceptableRecoveryLag is the largest lag (changelog offsets summed
	// over a task's changelog partitions) at which a member counts as
	// caught up for a task. 0 means DefaultAcceptableRecoveryLag.
	AcceptableRecoveryLag int64
	// MaxWarmups bounds the warm-up copies across the whole group at any
	// time (max.warmup.replicas). 0 means DefaultMaxWarmups.
	MaxWarmups int
	// ProbingInterval is how long after an assignment with warm-ups the
	// group should rebalance again to move the tasks that caught up
	// (probing.rebalance.interval.ms). 0 means DefaultProbingInterval.
	ProbingInterval time.Duration

	// Cooperative declares sarama's cooperative rebalance protocol
	// (KIP-429) besides the eager one (see SupportedProtocols): members
	// keep their partitions while the group rebalances and give up only
	// those the new assignment moves away, so retained tasks never stop.
	// sarama uses it only when every strategy configured on the member
	// supports it; the runtime must then handle revocations during the
	// session (see the package doc). Whatever this setting, a leader
	// withholds a task from its new owner while another member still
	// owns it (as cooperative members report), so turn it on only once
	// every instance of the application runs a brook that withholds:
	// an older leader would give a cooperative member's tasks to others
	// before it has given them up. false (the default): eager only.
	Cooperative bool
}

// Defaults of the warm-up settings.
const (
	// DefaultAcceptableRecoveryLag is Kafka Streams' default
	// acceptable.recovery.lag.
	DefaultAcceptableRecoveryLag = 10_000
	// DefaultMaxWarmups is Kafka Streams' default max.warmup.replicas.
	DefaultMaxWarmups = 2
	// DefaultProbingInterval is one minute, where Kafka Streams waits
	// ten: a scale-out that moves 20 tasks, two warm-ups at a time, takes
	// about ten probing rebalances, which is ten minutes here and over
	// an hour at Kafka Streams' default. Each probing rebalance stops
	// processing only briefly (and not at all for retained tasks under
	// cooperative rebalancing), and the runtime may probe earlier, as
	// soon as this instance's warm-ups are caught up.
	DefaultProbingInterval = time.Minute
	// DefaultEndOffsetsTimeout bounds the leader's EndOffsets call, which
	// runs inside the rebalance (before SyncGroup).
	DefaultEndOffsetsTimeout = 5 * time.Second
)

// EndOffsetsError reports that Config.EndOffsets failed during a plan: the
// tasks were assigned without warm-ups (as with EndOffsets nil), so some
// may have moved to members that must restore them first.
type EndOffsetsError struct {
	// Tasks is how many tasks the leader asked for.
	Tasks int
	// Err is EndOffsets' error.
	Err error
}

func (e *EndOffsetsError) Error() string {
	return fmt.Sprintf("assign: changelog end offsets of %d tasks: %v (planned without warm-ups)", e.Tasks, e.Err)
}

// Unwrap returns EndOffsets' error.
func (e *EndOffsetsError) Unwrap() error { return e.Err }

// Warmup is one warm-up copy the leader placed.
type Warmup struct {
	// Task is the task warmed up.
	Task TaskID
	// Member warms it up and is meant to run it once caught up.
	Member string
	// Active is the caught-up member that runs the task meanwhile.
	Active string
	// Lag is Member's lag for Task when planned: changelog offsets summed.
	Lag int64
}

// PlanReport describes the leader's last plan, for logs, metrics and
// status endpoints. Only the group leader plans.
type PlanReport struct {
	// Members and Tasks are the group's size in the plan.
	Members, Tasks int
	// Unassigned are the tasks no member may run.
	Unassigned []TaskID
	// Standbys is the number of standby copies placed; MissingStandbys
	// those wanted (Config.Standbys per stateful task) that have no
	// member to go to, because the group has fewer eligible members than
	// Standbys+1.
	Standbys, MissingStandbys int
	// Warmups are the warm-ups placed, by task.
	Warmups []Warmup
	// HeldBack is how many tasks stay on a caught-up member instead of
	// moving to their balanced target: the movements still to make
	// (len(Warmups) of them are warming up now).
	HeldBack int
	// Withheld is how many tasks this plan withholds from the member
	// balance planned them on, because another member still owns them
	// (it reported their partitions in OwnedPartitions, as members on the
	// cooperative protocol do). Their owners give them up and rejoin, and
	// the follow-up rebalance assigns them. Always 0 with eager members.
	Withheld int
	// ProbingRebalance is the follow-up delay sent with the warm-ups, 0
	// when no movement is pending.
	ProbingRebalance time.Duration
	// EndOffsetsErr is the *EndOffsetsError of a failed EndOffsets call
	// (the plan was made without warm-ups), nil otherwise.
	EndOffsetsErr error
	// Took is how long Plan took, EndOffsets included.
	Took time.Duration
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
	// Standby and warm-up settings, defaults applied.
	standbys   int
	endOffsets func(ctx context.Context, tasks []TaskID) (map[TaskID]int64, error)
	endTimeout time.Duration
	acceptable int64
	maxWarmups int
	probing    time.Duration
	// cooperative is Config.Cooperative.
	cooperative bool
	// minWarm is minWarmReported (tests raise it to report all state).
	minWarm int
	// retry is how long a failed Routing answer is reused before the
	// group is described again.
	retry time.Duration

	mu sync.Mutex
	// plan is the leader's last Plan, read by AssignmentData; report
	// describes it.
	plan   *leaderPlan
	report *PlanReport
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
	standby    map[string][]TaskID
	warmup     map[string][]TaskID
	pending    map[string][]TaskID
	probing    time.Duration
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
	_ sarama.RebalanceProtocolBalanceStrategy    = (*Strategy)(nil)
)

// NewStrategy validates cfg and returns a strategy. Put it in
// sarama.Config.Consumer.Group.Rebalance.GroupStrategies and subscribe the
// consumer group to Topics().
func NewStrategy(cfg Config) (*Strategy, error) {
	gs, err := newGroupSet(cfg.Groups)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Standbys < 0:
		return nil, fmt.Errorf("assign: Standbys is %d, want 0 or more", cfg.Standbys)
	case cfg.AcceptableRecoveryLag < 0:
		return nil, fmt.Errorf("assign: AcceptableRecoveryLag is %d, want 0 (the default) or more", cfg.AcceptableRecoveryLag)
	case cfg.MaxWarmups < 0:
		return nil, fmt.Errorf("assign: MaxWarmups is %d, want 0 (the default) or more", cfg.MaxWarmups)
	case cfg.ProbingInterval < 0:
		return nil, fmt.Errorf("assign: ProbingInterval is %v, want 0 (the default) or more", cfg.ProbingInterval)
	case cfg.EndOffsetsTimeout < 0:
		return nil, fmt.Errorf("assign: EndOffsetsTimeout is %v, want 0 (the default) or more", cfg.EndOffsetsTimeout)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Strategy{groups: gs, endpoint: cfg.Endpoint, state: cfg.State, describe: cfg.Describe,
		log: log, retry: DefaultRoutingRetry, standbys: cfg.Standbys, endOffsets: cfg.EndOffsets,
		endTimeout: cmp.Or(cfg.EndOffsetsTimeout, DefaultEndOffsetsTimeout),
		acceptable: cmp.Or(cfg.AcceptableRecoveryLag, DefaultAcceptableRecoveryLag),
		maxWarmups: cmp.Or(cfg.MaxWarmups, DefaultMaxWarmups),
		probing:    cmp.Or(cfg.ProbingInterval, DefaultProbingInterval), cooperative: cfg.Cooperative, minWarm: minWarmReported}
	return s, nil
}

// LastPlan returns the report of this member's last Plan, and false if it
// has never led a rebalance. The runtime can log it, export it as metrics
// or show it on a status endpoint after each rebalance it led (sarama
// calls Plan before the leader's own OnAssignment and Setup).
func (s *Strategy) LastPlan() (PlanReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.report == nil {
		return PlanReport{}, false
	}
	r := *s.report
	r.Unassigned = slices.Clone(r.Unassigned)
	r.Warmups = slices.Clone(r.Warmups)
	return r, true
}

// Name implements sarama.BalanceStrategy.
func (s *Strategy) Name() string { return StrategyName }

// SupportedProtocols implements sarama.RebalanceProtocolBalanceStrategy:
// the rebalance protocols this member can take part in, most preferred
// first. With Config.Cooperative it is cooperative, then eager; without,
// eager only. sarama picks cooperative only when every strategy in the
// member's Consumer.Group.Rebalance.GroupStrategies supports it, eager
// when every one supports that, and refuses the configuration otherwise.
// The choice is each member's own: the group coordinator does not
// negotiate it.
func (s *Strategy) SupportedProtocols() []sarama.RebalanceProtocol {
	if s.cooperative {
		return []sarama.RebalanceProtocol{sarama.RebalanceProtocolCooperative, sarama.RebalanceProtocolEager}
	}
	return []sarama.RebalanceProtocol{sarama.RebalanceProtocolEager}
}

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
// received (its generation, active, standby and warm-up tasks, the
// partition counts and the probing delay), and false
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
// It reports the member's endpoint, the active, standby, warm-up and
// pending tasks of the last assignment it received, and warm state: one
// sum of restored changelog offsets per task, for those tasks and for at
// most max(8, active) others with state on this instance — those with
// the largest sums, which would cost the most to restore elsewhere. The rest is pruned, so the payload grows
// with the member's share of the tasks, never with the group or with the
// history of what the instance once ran.
func (s *Strategy) SubscriptionUserData(topics []string) ([]byte, error) {
	d := MemberData{Endpoint: s.endpoint, Generation: -1}
	s.mu.Lock()
	if s.current != nil {
		d.Generation = s.current.Generation
		d.Owned = slices.Clone(s.current.Tasks)
		d.Standby = slices.Clone(s.current.Standby)
		d.Warmup = slices.Clone(s.current.Warmup)
		d.Pending = slices.Clone(s.current.Pending)
	}
	s.mu.Unlock()
	if s.state != nil {
		kept := slices.Concat(d.Owned, d.Standby, d.Warmup, d.Pending)
		slices.SortFunc(kept, TaskID.Compare)
		d.Warm = s.warmth(s.state().Restored, kept, len(d.Owned))
	}
	return d.MarshalBinary()
}

// warmth sums each task's restored offsets and keeps those of the kept
// tasks (ascending: the member's active, standby and warm-up tasks) and
// of the max(8, owned) warmest others (see SubscriptionUserData).
func (s *Strategy) warmth(restored map[TaskID]map[string]int64, kept []TaskID, owned int) map[TaskID]int64 {
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
		if _, keep := slices.BinarySearchFunc(kept, t, TaskID.Compare); keep {
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
	for _, e := range others[:min(len(others), max(s.minWarm, owned))] {
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
	if err == nil {
		err = s.checkCopies(a)
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

// checkCopies checks that a's standby, warm-up and pending tasks are
// tasks of this topology within the partition counts, and none of its
// active tasks. A standby or warm-up of a task this member ran until now
// is fine: under the cooperative protocol the member gives the active
// task up first (see the package doc).
func (s *Strategy) checkCopies(a MemberAssignment) error {
	for _, t := range slices.Concat(a.Standby, a.Warmup, a.Pending) {
		if _, known := s.groups.group(t.Group); !known || t.Partition >= a.Partitions[t.Group] {
			return fmt.Errorf("assign: standby, warm-up or pending task %s is no task of this topology (sub-topology partitions %v)", t, a.Partitions)
		}
		if _, active := slices.BinarySearchFunc(a.Tasks, t, TaskID.Compare); active {
			return fmt.Errorf("assign: task %s is both active and a standby, warm-up or pending task", t)
		}
	}
	return nil
}

// Plan implements sarama.BalanceStrategy. sarama calls it on the group
// leader only, with every member's subscription and the partitions of
// every subscribed topic. It assigns tasks, expands them to partitions,
// and keeps what AssignmentData needs.
func (s *Strategy) Plan(members map[string]sarama.ConsumerGroupMemberMetadata, topics map[string][]int32) (sarama.BalanceStrategyPlan, error) {
	start := time.Now()
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
	held := make(map[string][]heldTask)
	var scratch []heldPartition
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
		// What the member holds now, by the protocol: cooperative
		// members report it, eager ones (and a cooperative member's first
		// join) report nothing.
		if own := s.heldTasks(meta.OwnedPartitions, partitions, &scratch); len(own) > 0 {
			held[id] = own
			s.reconcileOwned(id, &c.data, own, meta.GenerationID, partitions)
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

	b := balanceDetail(tasks, cands)
	if len(b.unassigned) > 0 {
		s.log.Warn("brook assignor: no member subscribes to the sources of these tasks; they stay unassigned", "action", "run the same topology on every instance of an application id", "tasks", fmt.Sprint(b.unassigned))
	}
	params := planParams{standbys: s.standbys, stateless: s.groups.stateless, acceptable: s.acceptable, maxWarmups: s.maxWarmups}
	report := &PlanReport{Members: len(cands), Tasks: len(tasks)}
	if s.endOffsets != nil {
		if moving := b.moving(params.stateless); len(moving) > 0 {
			params.end, report.EndOffsetsErr = s.fetchEndOffsets(moving)
			if report.EndOffsetsErr != nil {
				s.log.Warn("brook assignor: cannot read the changelogs' end offsets; tasks move without warm-ups and restore on their new members", "action", "none needed: the next rebalance tries again; check the brokers if it repeats", "error", report.EndOffsetsErr)
			}
		}
	}
	pl := plan(tasks, b, params)
	byMember := pl.active
	// Cooperative members still run what they report owning: a task
	// moving away from one waits for the follow-up round.
	pending, withheld := withhold(byMember, held, func(g int32) int { return len(groupTopics[g]) })
	report.Withheld = withheld
	if report.Withheld > 0 {
		s.log.Info("brook assignor: tasks withheld from their new owners until their current owners give them up; the follow-up rebalance those members start assigns them",
			"withheld", report.Withheld)
	}
	if pl.missingStandbys > 0 {
		s.log.Warn("brook assignor: fewer eligible members than standbys+1; some standby replicas are not placed", "action", "run at least standbys+1 instances", "standbys", s.standbys, "missing", pl.missingStandbys)
	}
	report.Unassigned, report.Standbys, report.MissingStandbys = pl.unassigned, pl.standbysPlaced, pl.missingStandbys
	report.Warmups, report.HeldBack = pl.warmups, pl.heldBack
	if pl.heldBack > 0 {
		report.ProbingRebalance = s.probing
		s.log.Info("brook assignor: tasks stay on caught-up members while others warm them up; a probing rebalance follows", "held_back", pl.heldBack, "warmups", len(pl.warmups), "probing_after", s.probing)
	}

	lp := &leaderPlan{partitions: partitions, members: make(map[string]bool, len(cands)),
		standby: pl.standby, warmup: pl.warmup, pending: pending, probing: report.ProbingRebalance}
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

	report.Took = time.Since(start)
	s.mu.Lock()
	s.plan, s.report = lp, report
	s.mu.Unlock()
	return plan, nil
}

// fetchEndOffsets calls Config.EndOffsets for tasks within the timeout.
// Negative sums count as 0.
func (s *Strategy) fetchEndOffsets(tasks []TaskID) (map[TaskID]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.endTimeout)
	defer cancel()
	end, err := s.endOffsets(ctx, slices.Clone(tasks))
	if err == nil && end == nil {
		end = map[TaskID]int64{}
	}
	if err != nil {
		return nil, &EndOffsetsError{Tasks: len(tasks), Err: err}
	}
	for t, e := range end {
		if e < 0 {
			end[t] = 0
		}
	}
	return end, nil
}

// ErrNoPlan is returned by AssignmentData when Plan has not run.
var ErrNoPlan = errors.New("assign: AssignmentData called before Plan")

// AssignmentData implements sarama.BalanceStrategy. sarama calls it on the
// leader, after Plan, once per member of the plan; the bytes travel to
// that member in its SyncGroup assignment, beside its partitions. They
// hold the generation, the partition counts, the member's standby,
// warm-up and pending (withheld) tasks and, for a member with warm-ups,
// the probing delay: nothing about the other members.
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
	a := MemberAssignment{Generation: generationID, Partitions: plan.partitions,
		Standby: plan.standby[memberID], Warmup: plan.warmup[memberID], Pending: plan.pending[memberID]}
	if len(a.Warmup) > 0 {
		a.ProbingRebalance = plan.probing
	}
	return a.MarshalBinary()
}
