package topology_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// roles returns, per task, the role app has for it and that task's state
// (status page).
func roles(app *topology.App) map[string]query.TaskState {
	out := map[string]query.TaskState{}
	for _, ts := range app.Status(context.Background()).Tasks {
		out[ts.Task] = ts
	}
	return out
}

// waitRoles polls until ok accepts the roles of apps, or fails the test.
func waitRoles(t *testing.T, what string, timeout time.Duration, ok func(rs []map[string]query.TaskState) bool, apps ...*topology.App) []map[string]query.TaskState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var rs []map[string]query.TaskState
		for _, a := range apps {
			rs = append(rs, roles(a))
		}
		if ok(rs) {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %s: not reached; roles %v", timeout, what, rs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAppStandbyFollowsAndTakesOverWithTail: with NumStandbyReplicas 1
// and two instances, each task has its active on one instance and a
// standby on the other. The standby follows the changelog (lag 0 on the
// status page, a checkpoint at the changelog's end in its task folder),
// and when the active's instance stops, the task opens on the standby's
// instance restoring only the tail: not the store.
func TestAppStandbyFollowsAndTakesOverWithTail(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	const keys, perKey = 400, 5
	produceKeys(t, b, in, 2, keys, perKey)

	appID := testutil.TopicName(t, "app")
	dirA, dirB := t.TempDir(), t.TempDir()
	cfg := func(dir, endpoint string) topology.Config {
		return topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, QueryEndpoint: endpoint,
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t), NumStandbyReplicas: 1,
		}
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	appA, doneA := startApp(t, ctxA, countTopology(t, in, out), cfg(dirA, "a:1"))
	waitCounts(t, b, out, keys, perKey, 60*time.Second)
	appB, doneB := startApp(t, ctxB, countTopology(t, in, out), cfg(dirB, "b:1"))

	// Every task: active on one instance, a caught-up standby on the
	// other.
	settled := func(rs []map[string]query.TaskState) bool {
		for _, task := range []string{"0_0", "0_1"} {
			a, b := rs[0][task], rs[1][task]
			if a.Role == "" || b.Role == "" || a.Role == b.Role {
				return false
			}
			sb := a
			if b.Role == query.RoleStandby {
				sb = b
			}
			if sb.Role != query.RoleStandby || sb.State != query.TaskRunning || sb.Lag != 0 {
				return false
			}
		}
		return true
	}
	waitRoles(t, "every task active on one instance with a caught-up standby on the other", 60*time.Second, settled, appA, appB)
	// More input: the standbys follow.
	produceKeys(t, b, in, 2, keys, 1)
	waitCounts(t, b, out, keys, perKey+1, 60*time.Second)
	rs := waitRoles(t, "standbys caught up again", 60*time.Second, settled, appA, appB)

	// The standby's checkpoint (B's folder) is at the changelog's end.
	client, err := sarama.NewClient(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	changelog := appID + "-counts-changelog"
	var standbyOnB string
	for task, ts := range rs[1] {
		if ts.Role == query.RoleStandby {
			standbyOnB = task
		}
	}
	if standbyOnB == "" {
		t.Fatalf("B has no standby: %v", rs[1])
	}
	p := int32(standbyOnB[2] - '0')
	// The active sends its changelog records at its commit, which may
	// come after the output the test waited for: poll.
	var end int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		end, err = client.GetOffset(changelog, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := store.ReadCheckpoint(filepath.Join(dirB, appID, standbyOnB))
		if err != nil {
			t.Fatal(err)
		}
		got := cp[store.TopicPartition{Topic: changelog, Partition: p}]
		// Two rounds of counts: at least one changelog record per key
		// of the partition each.
		if got == end && end >= int64(keys) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby %s on B: checkpoint %v, want %s[%d] at the changelog end %d", standbyOnB, cp, changelog, p, end)
		}
	}

	// A stops: B runs both tasks; the one it kept a standby of restores
	// only the tail written after its last round.
	cancelA()
	if err := <-doneA; err != nil {
		t.Fatalf("A: %v", err)
	}
	produceKeys(t, b, in, 2, keys, 1)
	waitCounts(t, b, out, keys, perKey+2, 60*time.Second)
	waitRoles(t, "B runs both tasks", 60*time.Second, func(rs []map[string]query.TaskState) bool {
		return rs[0]["0_0"].Role == query.RoleActive && rs[0]["0_1"].Role == query.RoleActive &&
			rs[0]["0_0"].State == query.TaskRunning && rs[0]["0_1"].State == query.TaskRunning
	}, appB)
	restored := appB.RestoredRecords()[standbyOnB]
	storeSize := int64(keys / 2)
	t.Logf("task %s failed over to its standby: restored %d records (store: %d keys, changelog: %d records)", standbyOnB, restored, storeSize, end)
	if restored*10 > storeSize {
		t.Fatalf("task %s restored %d records on its standby's instance, want under 10%% of its %d keys", standbyOnB, restored, storeSize)
	}
	got := lastCounts(t, b, out)
	for k := range keys {
		key := fmt.Sprintf("key-%03d", k)
		if got[key] < perKey+2 {
			t.Errorf("key %s counted %d, want at least %d", key, got[key], perKey+2)
		}
	}
	cancelB()
	if err := <-doneB; err != nil {
		t.Fatalf("B: %v", err)
	}
}

// TestAppScaleOutWarmsUpThenMoves: a second instance joins an instance
// whose stores lag it by more than AcceptableRecoveryLag. The leader keeps
// the tasks where they are and gives the new instance a warm-up copy;
// once the copy is within the acceptable lag the new instance probes (a
// rebalance well before ProbingRebalanceInterval) and the task moves to
// it, restoring only the tail.
func TestAppScaleOutWarmsUpThenMoves(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	const keys, perKey = 2000, 2
	produceKeys(t, b, in, 2, keys, perKey)

	appID := testutil.TopicName(t, "app")
	cfg := func(endpoint string) topology.Config {
		return topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), QueryEndpoint: endpoint,
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t),
			AcceptableRecoveryLag: 100, ProbingRebalanceInterval: 10 * time.Minute,
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	appA, doneA := startApp(t, ctx, countTopology(t, in, out), cfg("a:1"))
	waitCounts(t, b, out, keys, perKey, 60*time.Second)
	appB, doneB := startApp(t, ctx, countTopology(t, in, out), cfg("b:1"))

	// First a warm-up on B, A still running both tasks.
	rs := waitRoles(t, "a warm-up on B while A runs both tasks", 60*time.Second, func(rs []map[string]query.TaskState) bool {
		warm := 0
		for _, ts := range rs[1] {
			if ts.Role == query.RoleWarmup {
				warm++
			}
		}
		return warm > 0 && rs[0]["0_0"].Role == query.RoleActive && rs[0]["0_1"].Role == query.RoleActive
	}, appA, appB)
	var warming string
	for task, ts := range rs[1] {
		if ts.Role == query.RoleWarmup {
			warming = task
		}
	}
	began := time.Now()
	// Then the probe: the task moves to B, well before the 10-minute
	// probing interval.
	waitRoles(t, "task "+warming+" running on B", 60*time.Second, func(rs []map[string]query.TaskState) bool {
		return rs[1][warming].Role == query.RoleActive && rs[1][warming].State == query.TaskRunning
	}, appA, appB)
	restored := appB.RestoredRecords()[warming]
	t.Logf("task %s warmed up on B, moved after %v, restored %d records on opening (store: %d keys)", warming, time.Since(began).Round(time.Millisecond), restored, keys/2)
	if restored > 100 {
		t.Fatalf("task %s restored %d records when it moved to B, want at most the acceptable lag (100)", warming, restored)
	}
	produceKeys(t, b, in, 2, keys, 1)
	waitCounts(t, b, out, keys, perKey+1, 60*time.Second)
	cancel()
	for _, d := range []<-chan error{doneA, doneB} {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
}
