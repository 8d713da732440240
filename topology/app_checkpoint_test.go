package topology_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// waitForLog waits until the log file at path contains s.
func waitForLog(t *testing.T, path, s string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not in %s after %v:\n%s", s, path, timeout, tail(string(b), 30))
		}
	}
}

// TestAppCrashBeforeFirstCommitKeepsCheckpoints: an instance that restores
// its tasks and is killed before its first commit leaves their
// checkpoints in place (written again once the restore is done), so the
// next start restores nothing instead of wiping every store and
// restoring its whole changelog from offset 0.
func TestAppCrashBeforeFirstCommitKeepsCheckpoints(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	const keys, perKey = 20, 5
	produceKeys(t, b, in, 2, keys, perKey)
	appID, dir := testutil.TopicName(t, "app"), t.TempDir()
	cfg := topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, CommitInterval: 100 * time.Millisecond, Logger: testLogger(t)}

	// A first run counts everything and stops cleanly: the checkpoints
	// name the changelogs' ends.
	ctx, cancel := context.WithCancel(context.Background())
	_, done := startApp(t, ctx, countTopology(t, in, out), cfg)
	waitCounts(t, b, out, keys, perKey, 60*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	tasks := []string{"0_0", "0_1"}
	for _, task := range tasks {
		cp, err := store.ReadCheckpoint(filepath.Join(dir, appID, task))
		if err != nil || len(cp) == 0 {
			t.Fatalf("task %s: checkpoint %v, %v after a clean stop", task, cp, err)
		}
	}

	// A second instance opens the tasks (restoring nothing) and is killed
	// before it commits anything.
	inst := startInstance(t, "crashing", "count", map[string]string{
		"IN": in, "OUT": out, "APP_ID": appID, "BROKERS": strings.Join(b.Addrs(), ","),
		"STATE_DIR": dir, "COMMIT_MS": "3600000",
	})
	waitForLog(t, inst.log, "to=running", 60*time.Second)
	inst.kill(t)
	for _, task := range tasks {
		cp, err := store.ReadCheckpoint(filepath.Join(dir, appID, task))
		if err != nil || len(cp) == 0 {
			t.Errorf("task %s: checkpoint %v, %v after a crash before the first commit; want the restored offsets", task, cp, err)
		}
	}

	// The next start restores nothing: nothing was written since.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	app, done := startApp(t, ctx, countTopology(t, in, out), cfg)
	for deadline := time.Now().Add(60 * time.Second); app.State() != topology.StateRunning; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not running after 60s (state %v)", app.State())
		}
	}
	restored := app.RestoredRecords()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for task, n := range restored {
		if n != 0 {
			t.Errorf("task %s restored %d changelog records after the crash, want 0 (all: %v)", task, n, restored)
		}
	}
}
