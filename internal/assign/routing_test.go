package assign

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// routed runs one generation of a three-member group and returns it with
// the members' description as the coordinator gives it.
func routed(t *testing.T) *group {
	t.Helper()
	g := newGroup(t, shape, shapePartitions)
	g.join("a", "b", "c")
	g.rebalance()
	return g
}

func TestRoutingNeedsAStableGroupOfOneGeneration(t *testing.T) {
	g := routed(t)
	s := g.members["a"]
	good := g.desc
	own := mustAssignment(t, s, g)
	cases := map[string]func(d *sarama.GroupDescription){
		"rebalancing":      func(d *sarama.GroupDescription) { d.State = "PreparingRebalance" },
		"other protocol":   func(d *sarama.GroupDescription) { d.Protocol = "range" },
		"coordinator says": func(d *sarama.GroupDescription) { d.Err = sarama.ErrNotCoordinatorForConsumer },
		"without a":        func(d *sarama.GroupDescription) { delete(d.Members, "a") },
		"b is older": func(d *sarama.GroupDescription) {
			m := *d.Members["b"]
			a, _ := m.GetMemberAssignment()
			ud, _ := MemberAssignment{Generation: g.gen - 1, Partitions: map[int32]int32{0: 6, 1: 4}}.MarshalBinary()
			a.UserData = ud
			m.MemberAssignment = encodeAssignment(t, "b", a)
			d.Members["b"] = &m
		},
		"a task twice": func(d *sarama.GroupDescription) {
			m := *d.Members["b"]
			a, _ := m.GetMemberAssignment()
			other, _ := d.Members["c"].GetMemberAssignment()
			for topic, ps := range other.Topics {
				a.Topics[topic] = append(a.Topics[topic], ps...)
			}
			m.MemberAssignment = encodeAssignment(t, "b", a)
			d.Members["b"] = &m
		},
		"a's tasks differ": func(d *sarama.GroupDescription) {
			m := *d.Members["a"]
			a, _ := m.GetMemberAssignment()
			a.Topics = map[string][]int32{}
			m.MemberAssignment = encodeAssignment(t, "a", a)
			d.Members["a"] = &m
		},
	}
	for name, mutate := range cases {
		d := *good
		d.Members = map[string]*sarama.GroupMemberDescription{}
		for id, m := range good.Members {
			d.Members[id] = m
		}
		mutate(&d)
		g.desc = &d
		s.retry = 0
		s.OnAssignment(own, g.gen) // forget the cached answer
		_, err := s.Routing(context.Background())
		var re *RoutingError
		if !errors.As(err, &re) || re.Generation != g.gen {
			t.Errorf("%s: err = %v, want a *RoutingError of generation %d", name, err, g.gen)
		}
	}
	g.desc = good
	s.OnAssignment(own, g.gen)
	if a, err := s.Routing(context.Background()); err != nil || len(a.Hosts) != 3 {
		t.Fatalf("stable again: %v %v", a, err)
	}
}

// mustAssignment returns what member s received in g's last generation.
func mustAssignment(t *testing.T, s *Strategy, g *group) *sarama.ConsumerGroupMemberAssignment {
	t.Helper()
	for id, m := range g.members {
		if m == s {
			a, err := g.desc.Members[id].GetMemberAssignment()
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
	}
	t.Fatal("no such member")
	return nil
}

func TestRoutingIsCachedSharedAndRetried(t *testing.T) {
	g := routed(t)
	s := g.members["b"]
	g.describes["b"] = 0
	s.OnAssignment(mustAssignment(t, s, g), g.gen)

	// Concurrent callers share one description; later ones use it.
	var calls atomic.Int32
	release := make(chan struct{})
	s.describe = func(context.Context) (*sarama.GroupDescription, error) {
		calls.Add(1)
		<-release
		return g.desc, nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Routing(context.Background())
			errs <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Routing(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("9 callers described the group %d times, want 1", n)
	}

	// A failure is reused within the retry interval, then retried.
	s.OnAssignment(mustAssignment(t, s, g), g.gen)
	calls.Store(0)
	fail := true
	s.describe = func(context.Context) (*sarama.GroupDescription, error) {
		calls.Add(1)
		if fail {
			return nil, sarama.ErrConsumerCoordinatorNotAvailable
		}
		return g.desc, nil
	}
	s.retry = time.Hour
	for range 3 {
		if _, err := s.Routing(context.Background()); !errors.Is(err, sarama.ErrConsumerCoordinatorNotAvailable) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("a failure was retried at once: %d descriptions", n)
	}
	fail, s.retry = false, 0
	if _, err := s.Routing(context.Background()); err != nil || calls.Load() != 2 {
		t.Errorf("after the retry interval: %v, %d descriptions", err, calls.Load())
	}

	// A caller whose context ends stops waiting for a description in
	// flight, and its end is not cached for others.
	s.OnAssignment(mustAssignment(t, s, g), g.gen)
	block := make(chan struct{})
	s.describe = func(ctx context.Context) (*sarama.GroupDescription, error) {
		<-block
		return g.desc, nil
	}
	go func() { _, _ = s.Routing(context.Background()) }()
	for {
		s.mu.Lock()
		inFlight := s.fetching != nil
		s.mu.Unlock()
		if inFlight {
			break
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Routing(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("a waiter with an ended context: %v", err)
	}
	close(block)
	if _, err := s.Routing(context.Background()); err != nil {
		t.Errorf("after the description in flight: %v", err)
	}
}

func TestRoutingNeedsTheMemberID(t *testing.T) {
	s, err := NewStrategy(Config{Groups: shape, Describe: func(context.Context) (*sarama.GroupDescription, error) {
		t.Error("described the group without knowing who this member is")
		return nil, errors.New("no")
	}})
	if err != nil {
		t.Fatal(err)
	}
	ud, _ := MemberAssignment{Generation: 3, Partitions: map[int32]int32{0: 6}}.MarshalBinary()
	s.OnAssignment(&sarama.ConsumerGroupMemberAssignment{UserData: ud}, 3)
	var re *RoutingError
	if _, err := s.Routing(context.Background()); !errors.As(err, &re) || !strings.Contains(err.Error(), "member's id") {
		t.Errorf("err = %v", err)
	}
	noDescribe, _ := NewStrategy(Config{Groups: shape})
	noDescribe.OnAssignment(&sarama.ConsumerGroupMemberAssignment{UserData: ud}, 3)
	noDescribe.SetMemberID("x")
	if _, err := noDescribe.Routing(context.Background()); !errors.As(err, &re) {
		t.Errorf("without Describe: %v", err)
	}
}

// TestRoutingListsUnreadableMembersWithoutEndpoint: a member whose
// subscription an older brook wrote is listed with its tasks but no
// endpoint, and the strategy says what to do about it.
func TestRoutingListsUnreadableMembersWithoutEndpoint(t *testing.T) {
	g := routed(t)
	logged := &logRecorder{}
	s := g.members["a"]
	s.log = slog.New(logged)
	m := *g.desc.Members["c"]
	meta, _ := m.GetMemberMetadata()
	meta.UserData = []byte{kindLegacyMember, 1, 0, 1, 0, 0}
	m.MemberMetadata = encodeMetadata(t, *meta)
	g.desc.Members["c"] = &m
	s.OnAssignment(mustAssignment(t, s, g), g.gen)
	a, err := s.Routing(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := a.Hosts[slices.IndexFunc(a.Hosts, func(h Host) bool { return h.MemberID == "c" })]
	if c.Endpoint != "" || !slices.Equal(c.Tasks, g.last["c"]) {
		t.Errorf("c is listed as %+v", c)
	}
	warned := false
	for _, r := range logged.records() {
		warned = warned || (r.Level == slog.LevelWarn && r.attrs["action"] != "" && r.attrs["members"] == "1")
	}
	if !warned {
		t.Errorf("no warning with an action: %v", logged.records())
	}
}

// TestSubscriptionReportsBoundedWarmState: a member reports warm state
// for the tasks it owns and for at most max(8, owned) others, the
// warmest; never for tasks of unknown sub-topologies or without state.
func TestSubscriptionReportsBoundedWarmState(t *testing.T) {
	restored := map[TaskID]map[string]int64{}
	for p := range int32(40) {
		restored[TaskID{0, p}] = map[string]int64{"app-a-changelog": int64(p) * 10, "app-b-changelog": 1}
	}
	restored[TaskID{9, 0}] = map[string]int64{"x": 1 << 40}                     // unknown sub-topology
	restored[TaskID{1, 3}] = map[string]int64{"x": -5, "y": 0}                  // no state
	restored[TaskID{1, 2}] = map[string]int64{"x": 1<<62 + 1<<61, "y": 1 << 62} // saturates
	s, err := NewStrategy(Config{Groups: shape, State: func() LocalState { return LocalState{Restored: restored} }})
	if err != nil {
		t.Fatal(err)
	}
	check := func(owned []TaskID, want map[TaskID]int64) {
		t.Helper()
		if owned != nil {
			ud, _ := MemberAssignment{Generation: 5, Partitions: map[int32]int32{0: 40, 1: 4}}.MarshalBinary()
			topics := map[string][]int32{}
			for _, task := range owned {
				for _, topic := range []string{"orders", "payments"} {
					topics[topic] = append(topics[topic], task.Partition)
				}
			}
			s.OnAssignment(&sarama.ConsumerGroupMemberAssignment{Topics: topics, UserData: ud}, 5)
		}
		b, err := s.SubscriptionUserData(s.Topics())
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeMemberData(b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(d.Owned, owned) {
			t.Errorf("owned %v, want %v", d.Owned, owned)
		}
		if len(d.Warm) != len(want) {
			t.Errorf("warm state of %d tasks, want %d: %v", len(d.Warm), len(want), d.Warm)
		}
		for task, w := range want {
			if d.Warm[task] != w {
				t.Errorf("warmth of %s = %d, want %d", task, d.Warm[task], w)
			}
		}
	}
	// No tasks: the 8 warmest.
	want := map[TaskID]int64{{1, 2}: 1<<63 - 1}
	for p := int32(39); p > 32; p-- {
		want[TaskID{0, p}] = int64(p)*10 + 1
	}
	check(nil, want)
	// Ten owned tasks (0_0 has sum 1): those and ten others.
	var owned []TaskID
	want = map[TaskID]int64{{1, 2}: 1<<63 - 1}
	for p := range int32(10) {
		owned = append(owned, TaskID{0, p})
		want[TaskID{0, p}] = int64(p)*10 + 1
	}
	for p := int32(39); p > 30; p-- {
		want[TaskID{0, p}] = int64(p)*10 + 1
	}
	check(owned, want)
}
