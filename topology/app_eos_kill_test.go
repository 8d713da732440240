package topology_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/testutil"
)

// feeder produces payments to every account, round after round, until
// stopped, and remembers them.
type feeder struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	sent  payments
	err   error
}

// startFeeder sends one payment to each of accounts accounts every
// interval, on partition account % partitions.
func startFeeder(t *testing.T, b *testutil.Broker, topic string, accounts, partitions int, interval time.Duration, seed uint64) *feeder {
	t.Helper()
	cfg := b.SaramaConfig()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(b.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &feeder{stopc: make(chan struct{}), done: make(chan struct{}), sent: payments{}}
	rng := rand.New(rand.NewPCG(seed, 17))
	go func() { // owned by stop, which the test calls (or its cleanup)
		defer close(f.done)
		defer p.Close()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-f.stopc:
				return
			case <-tick.C:
			}
			var msgs []*sarama.ProducerMessage
			amounts := make([]int64, accounts)
			for i := 0; i < accounts; i++ {
				amounts[i] = 1 + rng.Int64N(100)
				m := paymentMsg(i, partitions, amounts[i])
				m.Topic = topic
				msgs = append(msgs, m)
			}
			if err := p.SendMessages(msgs); err != nil {
				f.mu.Lock()
				f.err = err
				f.mu.Unlock()
				return
			}
			f.mu.Lock()
			for i, a := range amounts {
				f.sent[accountName(i)] = append(f.sent[accountName(i)], a)
			}
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { f.stop(t) })
	return f
}

// stop ends the feeder and returns everything it sent.
func (f *feeder) stop(t *testing.T) payments {
	t.Helper()
	select {
	case <-f.stopc:
	default:
		close(f.stopc)
	}
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		t.Fatalf("feeder: %v", f.err)
	}
	return f.sent
}

func (f *feeder) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.sent {
		n += len(a)
	}
	return n
}

// waitLog waits until the instance's log contains s.
func (in *instance) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !in.logContains(s) {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(in.log)
			t.Fatalf("%s: no %q in its log after %v\n%s", in.name, s, timeout, tail(string(b), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (in *instance) logContains(s string) bool {
	b, _ := os.ReadFile(in.log)
	return strings.Contains(string(b), s)
}

func (in *instance) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := in.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

const runningLog = "to=running"

// TestAppExactlyOnceSurvivesRepeatedKills runs the payments app with
// exactly-once in a separate process and SIGKILLs it at random moments, 10
// times, while payments flow, restarting it each time on the same state
// directory. Some kills land during the group join or the restore, most
// while it processes and commits. At the end the read_committed output
// shows every payment's effect exactly once (per-account sequence numbers
// without duplicate or gap, running balances), and the local store holds
// every account's sum.
func TestAppExactlyOnceSurvivesRepeatedKills(t *testing.T) {
	b := eosBroker(t)
	in, out := testutil.TopicName(t, "payments"), testutil.TopicName(t, "balances")
	b.CreateTopic(t, in, 3, nil)
	b.CreateTopic(t, out, 3, nil)
	appID, stateDir := testutil.TopicName(t, "app"), t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	w := watchOutput(t, b, out)
	f := startFeeder(t, b, in, 12, 3, 20*time.Millisecond, seed)
	vars := map[string]string{
		"IN": in, "OUT": out, "APP_ID": appID, "BROKERS": strings.Join(b.Addrs(), ","),
		"STATE_DIR": stateDir, "GUARANTEE": "exactly-once", "COMMIT_MS": "100",
	}
	const kills = 10
	inst := startInstance(t, "payments-0", "payments", vars)
	var restarted []*instance
	for k := 1; k <= kills; k++ {
		if k%4 == 0 {
			// Kill during start-up: group join, InitProducerId, restore.
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
		} else {
			inst.waitLog(t, runningLog, 60*time.Second)
			time.Sleep(time.Duration(200+rng.IntN(1500)) * time.Millisecond)
		}
		inst.kill(t)
		t.Logf("kill %d: %d payments sent so far, %d committed updates seen", k, f.count(), countUpdates(w.snapshot()))
		inst = startInstance(t, fmt.Sprintf("payments-%d", k), "payments", vars)
		restarted = append(restarted, inst)
	}
	sent := f.stop(t)
	w.waitComplete(t, sent, 120*time.Second)
	inst.stop(t)
	got := w.snapshot()
	checkExactlyOnce(t, sent, got)
	checkBalances(t, sent, readBalances(t, stateDir, appID))
	// The first instance checkpointed its stores right after restoring
	// them, before it was first killed: no restart had to wipe them.
	for _, r := range restarted {
		if r.logContains("local state cannot be trusted") {
			b, _ := os.ReadFile(r.log)
			t.Errorf("%s wiped its local state after a kill:\n%s", r.name, tail(string(b), 20))
		}
	}
	all := len(b.ConsumeAll(t, out))
	t.Logf("%d kills; %d payments; %d committed updates; %d more output records in the log that read_committed hides (aborted transactions)",
		kills, f.count(), countUpdates(got), all-countUpdates(got))
}

func countUpdates(m map[string][]balanceUpdate) int {
	n := 0
	for _, u := range m {
		n += len(u)
	}
	return n
}

// TestAppExactlyOnceFencesZombie: instance A runs every task; it is frozen
// with SIGSTOP in the middle of a transaction, its group session expires,
// and instance B takes over its tasks (registering their transactional
// ids, which fences A). A is then resumed believing it still owns them: it
// keeps processing and tries to commit, and is fenced. Only B's
// transactions commit: the read_committed output has every payment's
// effect exactly once, while the log holds output that A wrote and that
// read_committed consumers never see.
func TestAppExactlyOnceFencesZombie(t *testing.T) {
	skipUnderRaceForSarama(t)
	b := eosBroker(t)
	in, out := testutil.TopicName(t, "payments"), testutil.TopicName(t, "balances")
	b.CreateTopic(t, in, 3, nil)
	b.CreateTopic(t, out, 3, nil)
	appID := testutil.TopicName(t, "app")
	w := watchOutput(t, b, out)
	f := startFeeder(t, b, in, 12, 3, 20*time.Millisecond, 42)
	vars := func(dir, commitMS string) map[string]string {
		return map[string]string{
			"IN": in, "OUT": out, "APP_ID": appID, "BROKERS": strings.Join(b.Addrs(), ","),
			"STATE_DIR": dir, "GUARANTEE": "exactly-once", "COMMIT_MS": commitMS,
		}
	}
	// A commits rarely, so that it is inside a transaction with output
	// when it freezes.
	a := startInstance(t, "zombie-a", "payments", vars(t.TempDir(), "3000"))
	a.waitLog(t, runningLog, 60*time.Second)
	for deadline := time.Now().Add(30 * time.Second); countUpdates(w.snapshot()) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("A committed nothing within 30s")
		}
	}
	time.Sleep(1500 * time.Millisecond)
	a.signal(t, syscall.SIGSTOP)
	t.Logf("A frozen after %d committed updates", countUpdates(w.snapshot()))

	bi := startInstance(t, "b", "payments", vars(t.TempDir(), "100"))
	bi.waitLog(t, runningLog, 60*time.Second)
	before := countUpdates(w.snapshot())
	for deadline := time.Now().Add(30 * time.Second); countUpdates(w.snapshot()) <= before; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("B committed nothing within 30s of taking over")
		}
	}
	a.signal(t, syscall.SIGCONT)
	t.Log("A resumed")
	a.waitLog(t, "task fenced", 60*time.Second)
	// Let the group settle with both members, then drain.
	time.Sleep(2 * time.Second)
	sent := f.stop(t)
	w.waitComplete(t, sent, 120*time.Second)
	a.stop(t)
	bi.stop(t)
	got := w.snapshot()
	checkExactlyOnce(t, sent, got)
	all := len(b.ConsumeAll(t, out))
	t.Logf("%d payments; %d committed updates; %d output records in the log hidden from read_committed", f.count(), countUpdates(got), all-countUpdates(got))
	if all <= countUpdates(got) {
		t.Fatalf("the log holds no output beyond the committed updates (%d records): the zombie wrote nothing, the test proved nothing", all)
	}
}
