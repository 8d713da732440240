package assign_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/testutil"
)

// member is one consumer-group member running the brook strategy, the way
// the runtime does: its handler's Setup tells the strategy its member id
// and records the session's claims and the member's part of the
// assignment; the strategy describes the group through a cluster admin to
// route.
type member struct {
	name     string
	strategy *assign.Strategy
	group    sarama.ConsumerGroup
	admin    sarama.ClusterAdmin
	cancel   context.CancelFunc
	done     chan error

	// coop: the member is on sarama's cooperative protocol, so rounds
	// after a session's first change its claims without a new Setup:
	// snapshots read the session. log, when set, records every claim
	// the member's handler runs.
	coop bool
	log  *claimLog

	mu      sync.Mutex
	sess    sarama.ConsumerGroupSession
	gen     int32
	claims  map[string][]int32
	own     assign.MemberAssignment
	hasView bool
	seen    map[string][]string // topic -> keys received
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.strategy.SetMemberID(s.MemberID())
	a, ok := m.strategy.Local()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sess = s
	m.gen = s.GenerationID()
	m.claims = s.Claims()
	m.own, m.hasView = a, ok
	return nil
}

// claimLog records which member's handler consumes each partition, to
// find a partition consumed by two members at once, and how often each
// member started consuming each partition.
type claimLog struct {
	mu      sync.Mutex
	running map[string]string         // "topic/partition" -> member
	starts  map[string]map[string]int // member -> "topic/partition" -> claims started
	overlap []string
	// withheld sums the tasks the leaders withheld.
	withheld int
}

func newClaimLog() *claimLog {
	return &claimLog{running: map[string]string{}, starts: map[string]map[string]int{}}
}

func (l *claimLog) start(member, tp string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if other, ok := l.running[tp]; ok {
		l.overlap = append(l.overlap, fmt.Sprintf("%s consumed by %s and %s at once", tp, other, member))
	}
	l.running[tp] = member
	if l.starts[member] == nil {
		l.starts[member] = map[string]int{}
	}
	l.starts[member][tp]++
}

func (l *claimLog) stop(member, tp string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[tp] == member {
		delete(l.running, tp)
	}
}

// startsOf returns how often member started consuming each partition.
func (l *claimLog) startsOf(member string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.starts[member])
}

func (l *claimLog) overlaps() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.overlap)
}

func (m *member) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	if m.log != nil {
		tp := fmt.Sprintf("%s/%d", c.Topic(), c.Partition())
		m.log.start(m.name, tp)
		defer m.log.stop(m.name, tp)
	}
	for {
		select {
		case msg, ok := <-c.Messages():
			if !ok {
				return nil
			}
			m.mu.Lock()
			if m.seen == nil {
				m.seen = make(map[string][]string)
			}
			m.seen[msg.Topic] = append(m.seen[msg.Topic], string(msg.Key))
			m.mu.Unlock()
			s.MarkMessage(msg, "")
		case <-s.Context().Done():
			return nil
		}
	}
}

type snapshot struct {
	gen     int32
	claims  map[string][]int32
	own     assign.MemberAssignment
	hasView bool
	whole   assign.Assignment // from Routing
}

// snapshot returns what the member's last Setup recorded and the whole
// assignment it routes by.
func (m *member) snapshot() (snapshot, error) {
	m.mu.Lock()
	s := snapshot{gen: m.gen, claims: m.claims, own: m.own, hasView: m.hasView}
	if m.coop && m.sess != nil {
		s.gen, s.claims = m.sess.GenerationID(), m.sess.Claims()
		s.own, s.hasView = m.strategy.Local()
	}
	m.mu.Unlock()
	var err error
	if s.hasView {
		s.whole, err = m.strategy.Routing(context.Background())
	}
	return s, err
}

func startMember(t *testing.T, b *testutil.Broker, groupID, name string, groups []assign.TaskGroup) *member {
	t.Helper()
	return startMemberWith(t, b, groupID, name, groups, false, nil)
}

// startMemberWith starts a member on the cooperative protocol when coop,
// recording its claims in log when not nil.
func startMemberWith(t *testing.T, b *testutil.Broker, groupID, name string, groups []assign.TaskGroup, coop bool, log *claimLog) *member {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	describe := func(context.Context) (*sarama.GroupDescription, error) {
		ds, err := admin.DescribeConsumerGroups([]string{groupID})
		if err != nil {
			return nil, err
		}
		if len(ds) != 1 {
			return nil, fmt.Errorf("%d groups described", len(ds))
		}
		return ds[0], nil
	}
	cfgA := assign.Config{Groups: groups, Endpoint: name + ":8080", Describe: describe, Cooperative: coop}
	if log != nil {
		cfgA.Logger = slog.New(log)
	}
	s, err := assign.NewStrategy(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	cfg := b.SaramaConfig()
	cfg.ClientID = name
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{s}
	cfg.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	g, err := sarama.NewConsumerGroup(b.Addrs(), groupID, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{name: name, strategy: s, group: g, admin: admin, cancel: cancel, done: make(chan error, 1), coop: coop, log: log}
	go func() {
		var err error
		for ctx.Err() == nil {
			if err = g.Consume(ctx, s.Topics(), m); err != nil {
				break
			}
		}
		if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
			err = nil
		}
		m.done <- err
	}()
	return m
}

// stop leaves the group and waits for the consume loop to end.
func (m *member) stop(t *testing.T) {
	t.Helper()
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	if err := <-m.done; err != nil {
		t.Errorf("member %s: consume: %v", m.name, err)
	}
	if err := m.group.Close(); err != nil {
		t.Errorf("member %s: close: %v", m.name, err)
	}
	if err := m.admin.Close(); err != nil {
		t.Errorf("member %s: close admin: %v", m.name, err)
	}
}

// converged waits until all members run the same generation, their claims
// cover every task once with co-partitioned partitions together, and every
// member reads the same whole assignment, which matches the claims. It
// returns each member's tasks.
func converged(t *testing.T, members []*member, wantTasks int) map[string][]assign.TaskID {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var why string
	for time.Now().Before(deadline) {
		tasks, err := check(members, wantTasks)
		if err == nil {
			return tasks
		}
		why = err.Error()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the group did not converge: %s", why)
	return nil
}

func check(members []*member, wantTasks int) (map[string][]assign.TaskID, error) {
	snaps := make([]snapshot, len(members))
	for i, m := range members {
		var err error
		if snaps[i], err = m.snapshot(); err != nil {
			return nil, fmt.Errorf("%s cannot route: %w", m.name, err)
		}
		if !snaps[i].hasView {
			return nil, fmt.Errorf("%s has no assignment yet", m.name)
		}
		if snaps[i].gen != snaps[0].gen {
			return nil, fmt.Errorf("generations differ: %s %d, %s %d", members[0].name, snaps[0].gen, m.name, snaps[i].gen)
		}
	}
	whole := snaps[0].whole
	if len(whole.Hosts) != len(members) || whole.Generation != snaps[0].gen {
		return nil, fmt.Errorf("assignment of generation %d lists %d hosts, want %d for generation %d",
			whole.Generation, len(whole.Hosts), len(members), snaps[0].gen)
	}
	out := make(map[string][]assign.TaskID)
	owner := make(map[assign.TaskID]string)
	for i, m := range members {
		s := snaps[i]
		// Every member reads the same whole assignment.
		for j, h := range s.whole.Hosts {
			w := whole.Hosts[j]
			if h.MemberID != w.MemberID || h.Endpoint != w.Endpoint || !slices.Equal(h.Tasks, w.Tasks) {
				return nil, fmt.Errorf("%s reads host %d as %+v, %s as %+v", m.name, j, h, members[0].name, w)
			}
		}
		if !maps.Equal(s.whole.Partitions, whole.Partitions) || !maps.Equal(s.own.Partitions, whole.Partitions) {
			return nil, fmt.Errorf("%s reads partitions %v and %v", m.name, s.whole.Partitions, s.own.Partitions)
		}
		// Its claims are whole tasks (co-partitioned partitions
		// together) and exactly its tasks in the assignment.
		tasks, err := m.strategy.Tasks(s.claims)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		if !slices.Equal(tasks, s.whole.Local()) || !slices.Equal(tasks, s.own.Tasks) {
			return nil, fmt.Errorf("%s claims %v but the assignment gives it %v (its own part: %v)", m.name, tasks, s.whole.Local(), s.own.Tasks)
		}
		if got := s.whole.Hosts[s.whole.Self].Endpoint; got != m.name+":8080" {
			return nil, fmt.Errorf("%s has endpoint %q in the assignment", m.name, got)
		}
		for _, task := range tasks {
			owner[task] = m.name
		}
		out[m.name] = tasks
	}
	if len(owner) != wantTasks {
		return nil, fmt.Errorf("%d tasks claimed, want %d", len(owner), wantTasks)
	}
	// Routing: the owner found through any member's view is the claimer.
	for task, name := range owner {
		h, ok := whole.Owner(task)
		if !ok || h.Endpoint != name+":8080" {
			return nil, fmt.Errorf("task %s: assignment says %+v, claimed by %s", task, h, name)
		}
	}
	return out, nil
}

// ordersAndProfiles creates the group tests' topics: orders and payments
// of 6 partitions, co-partitioned in task group 0, and profiles of
// profilePartitions in task group 1.
func ordersAndProfiles(t *testing.T, b *testutil.Broker, profilePartitions int32) []assign.TaskGroup {
	t.Helper()
	orders := testutil.TopicName(t, "orders")
	payments := testutil.TopicName(t, "payments")
	profiles := testutil.TopicName(t, "profiles")
	b.CreateTopic(t, orders, 6, nil)
	b.CreateTopic(t, payments, 6, nil)
	b.CreateTopic(t, profiles, profilePartitions, nil)
	return []assign.TaskGroup{
		{ID: 0, Topics: []string{orders, payments}},
		{ID: 1, Topics: []string{profiles}},
	}
}

func TestConsumerGroupOnBroker(t *testing.T) {
	b := testutil.NewBroker(t)
	groups := ordersAndProfiles(t, b, 3)
	orders, payments := groups[0].Topics[0], groups[0].Topics[1]
	const tasks = 9
	groupID := testutil.TopicName(t, "group")

	m1 := startMember(t, b, groupID, "m1", groups)
	defer m1.stop(t)
	one := converged(t, []*member{m1}, tasks)
	if len(one["m1"]) != tasks {
		t.Fatalf("single member runs %v", one)
	}

	m2 := startMember(t, b, groupID, "m2", groups)
	defer m2.stop(t)
	m3 := startMember(t, b, groupID, "m3", groups)
	defer m3.stop(t)
	three := converged(t, []*member{m1, m2, m3}, tasks)
	for name, ts := range three {
		if len(ts) != 3 {
			t.Errorf("%s runs %v, want 3 tasks", name, ts)
		}
	}

	// Keyed records placed by the Java default partitioner: the order and
	// the payment of one customer reach the same member.
	const keys = 60
	for _, topic := range []string{orders, payments} {
		var msgs []*sarama.ProducerMessage
		for i := range keys {
			key := fmt.Sprintf("customer-%d", i)
			p, err := partition.ForKey([]byte(key), 6)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: p, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(topic)})
		}
		b.Produce(t, topic, msgs...)
	}
	receiver := func() (map[string]string, map[string]string, int) {
		ord, pay := map[string]string{}, map[string]string{}
		n := 0
		for _, m := range []*member{m1, m2, m3} {
			m.mu.Lock()
			for _, k := range m.seen[orders] {
				ord[k] = m.name
				n++
			}
			for _, k := range m.seen[payments] {
				pay[k] = m.name
				n++
			}
			m.mu.Unlock()
		}
		return ord, pay, n
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, _, n := receiver(); n >= 2*keys || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ord, pay, n := receiver()
	if n != 2*keys {
		t.Fatalf("received %d records, want %d", n, 2*keys)
	}
	for k, who := range ord {
		if pay[k] != who {
			t.Errorf("key %s: order consumed by %s, payment by %s", k, who, pay[k])
		}
	}

	// m2 leaves: m1 and m3 keep their tasks and share m2's.
	m2.stop(t)
	two := converged(t, []*member{m1, m3}, tasks)
	for _, name := range []string{"m1", "m3"} {
		for _, task := range three[name] {
			if !slices.Contains(two[name], task) {
				t.Errorf("%s lost task %s when m2 left: before %v, after %v", name, task, three[name], two[name])
			}
		}
	}
	if d := len(two["m1"]) - len(two["m3"]); d < -1 || d > 1 {
		t.Errorf("unbalanced after m2 left: %v", two)
	}
}

// TestIdleMemberReadsAssignmentOnBroker: a member without tasks still gets
// the whole assignment (sarama sends user data only to members in the
// plan, so the strategy lists every member).
func TestIdleMemberReadsAssignmentOnBroker(t *testing.T) {
	b := testutil.NewBroker(t)
	topic := testutil.TopicName(t, "single")
	b.CreateTopic(t, topic, 1, nil)
	groups := []assign.TaskGroup{{ID: 0, Topics: []string{topic}}}
	groupID := testutil.TopicName(t, "group")
	m1 := startMember(t, b, groupID, "m1", groups)
	defer m1.stop(t)
	m2 := startMember(t, b, groupID, "m2", groups)
	defer m2.stop(t)
	got := converged(t, []*member{m1, m2}, 1)
	idle := m1
	if len(got["m1"]) == 1 {
		idle = m2
	}
	s, err := idle.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.claims) != 0 || len(s.whole.Local()) != 0 || len(s.own.Tasks) != 0 {
		t.Fatalf("%s should be idle: claims %v", idle.name, s.claims)
	}
	h, ok := s.whole.Owner(assign.TaskID{Group: 0, Partition: 0})
	if !ok || h.Endpoint == idle.name+":8080" {
		t.Errorf("idle %s routes task 0_0 to %+v, %v", idle.name, h, ok)
	}
}

// TestCooperativeGroupOnBroker: members on sarama's cooperative protocol.
// When a fourth member joins, the leader withholds the tasks that move
// until their owners have given them up, and the follow-up rebalance
// gives them to the newcomer: no partition is ever consumed by two
// members at once, and the members' other tasks keep running (their
// claims are never restarted). The same when a member leaves.
func TestCooperativeGroupOnBroker(t *testing.T) {
	b := testutil.NewBroker(t)
	groups := ordersAndProfiles(t, b, 6)
	const tasks = 12
	groupID := testutil.TopicName(t, "group")
	log := newClaimLog()
	start := func(name string) *member { return startMemberWith(t, b, groupID, name, groups, true, log) }

	m1 := start("m1")
	defer m1.stop(t)
	m2 := start("m2")
	defer m2.stop(t)
	m3 := start("m3")
	defer m3.stop(t)
	three := converged(t, []*member{m1, m2, m3}, tasks)
	// Partitions of a member's tasks, as the claim log names them.
	tps := func(ts []assign.TaskID) []string {
		var out []string
		for _, task := range ts {
			for _, topic := range groups[task.Group].Topics {
				out = append(out, fmt.Sprintf("%s/%d", topic, task.Partition))
			}
		}
		return out
	}
	// retained checks that every task a member keeps across a change
	// was never restarted on it: it claimed each partition once.
	retained := func(before, after map[string][]assign.TaskID) {
		t.Helper()
		for name, ts := range before {
			var kept []assign.TaskID
			for _, task := range ts {
				if slices.Contains(after[name], task) {
					kept = append(kept, task)
				}
			}
			starts := log.startsOf(name)
			for _, tp := range tps(kept) {
				if starts[tp] != 1 {
					t.Errorf("%s keeps %s but started consuming it %d times", name, tp, starts[tp])
				}
			}
		}
	}

	m4 := start("m4")
	defer m4.stop(t)
	four := converged(t, []*member{m1, m2, m3, m4}, tasks)
	if len(four["m4"]) != tasks/4 {
		t.Errorf("m4 runs %v, want %d tasks", four["m4"], tasks/4)
	}
	retained(three, four)
	if n := log.withheldTotal(); n < tasks/4 {
		t.Errorf("the leaders withheld %d tasks, want at least m4's share %d", n, tasks/4)
	}

	m2.stop(t)
	left := converged(t, []*member{m1, m3, m4}, tasks)
	delete(four, "m2")
	retained(four, left)
	if o := log.overlaps(); len(o) > 0 {
		t.Errorf("partitions consumed by two members at once: %v", o)
	}
}

// Handle counts the tasks leaders report withholding (their Info record
// with a "withheld" attribute): the claim log is the members' slog
// handler.
func (l *claimLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "withheld" {
			l.mu.Lock()
			l.withheld += int(a.Value.Int64())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *claimLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *claimLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *claimLog) WithGroup(string) slog.Handler            { return l }

func (l *claimLog) withheldTotal() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.withheld
}
