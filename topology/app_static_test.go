package topology_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// TestAppStaticMemberRestartKeepsTasksWithoutRebalance: an instance with a
// GroupInstanceID that stops and starts again (same state folder) within
// the session timeout gets its tasks back without a rebalance: the other
// instance never leaves the running state (its tasks are not closed) and
// the group's generation does not change.
func TestAppStaticMemberRestartKeepsTasksWithoutRebalance(t *testing.T) {
	t.Run("follower", func(t *testing.T) { testStaticRestart(t, false, false) })
	// The restarted instance led the group: Kafka hands the restarted
	// leader its old assignment too, without a rebalance (KIP-345).
	t.Run("leader", func(t *testing.T) { testStaticRestart(t, true, false) })
	t.Run("follower-eager", func(t *testing.T) { testStaticRestart(t, false, true) })
}

func testStaticRestart(t *testing.T, aLeads, eager bool) {
	b := testutil.NewBroker(t)
	if (aLeads || !eager) && b.Embedded() != nil {
		// kfake skips the rebalance only when the rejoining static
		// member's subscription bytes are identical to its last ones
		// (groups.go, replaceStaticMember: sameJoin), where Kafka checks
		// only that the selected protocol is unchanged. A brook member's
		// subscription carries its last generation, tasks and warm state,
		// which a restarted process no longer has, so on kfake the
		// restarted leader (which rejoined after the others came) makes
		// the group rebalance. Under the cooperative protocol a
		// restarted follower differs too: its subscription lists the
		// partitions it owns (sarama's OwnedPartitions), none after a
		// restart. Real Kafka 4.1 does not rebalance; these cases run
		// there (the eager follower runs on both).
		t.Skip("kfake rebalances when a static member rejoins with other subscription bytes; Kafka does not (see the comment)")
	}
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	const keys = 100
	produceKeys(t, b, in, 2, keys, 2)
	appID := testutil.TopicName(t, "app")
	dirA := t.TempDir()
	cfg := func(dir, endpoint, instance string) topology.Config {
		return topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, QueryEndpoint: endpoint,
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t), GroupInstanceID: instance,
			EagerRebalancing: eager,
		}
	}
	// The first instance started leads the group; A is the one
	// restarted.
	var mu sync.Mutex
	var statesB []string
	cb := cfg(t.TempDir(), "b:1", "instance-b")
	cb.StateListener = func(from, to topology.State) {
		mu.Lock()
		statesB = append(statesB, to.String())
		mu.Unlock()
	}
	both := func(rs []map[string]query.TaskState) bool {
		return rs[0]["0_0"].State == query.TaskRunning && rs[0]["0_1"].State == query.TaskRunning
	}
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	ctxA, cancelA := context.WithCancel(context.Background())
	var appA, appB *topology.App
	var doneA, doneB <-chan error
	if aLeads {
		appA, doneA = startApp(t, ctxA, countTopology(t, in, out), cfg(dirA, "a:1", "instance-a"))
		waitRoles(t, "A runs both tasks", 60*time.Second, both, appA)
		appB, doneB = startApp(t, ctxB, countTopology(t, in, out), cb)
	} else {
		appB, doneB = startApp(t, ctxB, countTopology(t, in, out), cb)
		waitRoles(t, "B runs both tasks", 60*time.Second, both, appB)
		appA, doneA = startApp(t, ctxA, countTopology(t, in, out), cfg(dirA, "a:1", "instance-a"))
	}
	one := func(rs []map[string]query.TaskState) bool {
		for _, r := range rs {
			running := 0
			for _, ts := range r {
				if ts.Role == query.RoleActive && ts.State == query.TaskRunning {
					running++
				}
			}
			if running != 1 {
				return false
			}
		}
		return true
	}
	waitRoles(t, "one task on each instance", 60*time.Second, one, appA, appB)
	waitCounts(t, b, out, keys, 2, 60*time.Second)
	tasksOf := func(app *topology.App) []string {
		var out []string
		for task, ts := range roles(app) {
			if ts.Role == query.RoleActive {
				out = append(out, task)
			}
		}
		slices.Sort(out)
		return out
	}
	before := tasksOf(appA)
	gen := appB.Status(context.Background()).Generation
	mu.Lock()
	mark := len(statesB)
	mu.Unlock()

	// A stops (a static member does not leave the group) and starts
	// again at once.
	cancelA()
	if err := <-doneA; err != nil {
		t.Fatalf("A: %v", err)
	}
	ctxA2, cancelA2 := context.WithCancel(context.Background())
	defer cancelA2()
	appA2, doneA2 := startApp(t, ctxA2, countTopology(t, in, out), cfg(dirA, "a:1", "instance-a"))
	waitRoles(t, "the restarted A running one task", 60*time.Second, one, appA2, appB)
	produceKeys(t, b, in, 2, keys, 1)
	waitCounts(t, b, out, keys, 3, 60*time.Second)

	if after := tasksOf(appA2); !slices.Equal(after, before) {
		t.Errorf("the restarted A runs %v, before it ran %v", after, before)
	}
	mu.Lock()
	changed := slices.Clone(statesB[mark:])
	mu.Unlock()
	if len(changed) > 0 {
		t.Errorf("B changed state while A restarted: %v (a rebalance closed its tasks)", changed)
	}
	if g := appB.Status(context.Background()).Generation; g != gen {
		t.Errorf("the group's generation went from %d to %d across A's restart", gen, g)
	}
	cancelA2()
	cancelB()
	for _, d := range []<-chan error{doneA2, doneB} {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
}
