package topology_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// staller blocks the processor that calls stall until release, after
// telling the test through stalled.
type staller struct {
	stalled chan struct{}
	release chan struct{}
	once    sync.Once
}

func newStaller() *staller {
	return &staller{stalled: make(chan struct{}), release: make(chan struct{})}
}

func (s *staller) stall() {
	s.once.Do(func() {
		close(s.stalled)
		<-s.release
	})
}

// stallingCountTopology counts records per key and writes every new count
// to out; with a non-nil staller, the first record whose value is "stall"
// blocks its worker after its count is written to the store.
func stallingCountTopology(t testing.TB, in, out string, s *staller) *topology.Topology {
	t.Helper()
	b := topology.New()
	src := topology.Source(b, "in", in, serde.String(), serde.String())
	counts := topology.KeyValueStore(b, "counts", serde.String(), serde.Int64())
	c := topology.ProcessFunc(b, "count", src, func(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
		st, err := counts.From(ctx)
		if err != nil {
			return err
		}
		n, _, err := st.Get(r.Key)
		if err != nil {
			return err
		}
		n++
		if err := st.Put(r.Key, n); err != nil {
			return err
		}
		if err := ctx.Forward(processor.Revalue(r, n)); err != nil {
			return err
		}
		if s != nil && r.Value == "stall" {
			s.stall()
		}
		return nil
	}, topology.WithStores("counts"))
	topology.Sink(b, "out", out, c, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// waitCommitted waits until group's committed offset of topic/partition
// reaches want.
func waitCommitted(t *testing.T, b *testutil.Broker, group, topic string, partition int32, want int64, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		got := committedOffset(t, b, group, topic, partition)
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: committed offset of %s/%d is %d after %v, want %d", group, topic, partition, got, timeout, want)
		}
	}
}

// lastCount waits until out holds a count for key at least min and
// returns the last one.
func lastCount(t *testing.T, b *testutil.Broker, out, key string, min int64, timeout time.Duration) int64 {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		last, ok := lastCounts(t, b, out)[key]
		if ok && last >= min {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the last count of %q in %s is %d (present %v), want >= %d", timeout, key, out, last, ok, min)
		}
	}
}

// TestAppStalledWorkerPastRebalanceTimeoutLosesNothing: instance A's
// worker stalls in a processor (after writing k's fourth count) while B
// joins. A cannot rejoin within the rebalance timeout (its session waits
// for the worker), so the group moves on without it and B takes the task,
// restores it (k=3) and counts on (k=4, j=1). When A's worker wakes, A
// must see that it lost its membership: it must not append its k=4 to the
// changelog behind B's records, nor checkpoint past them. An instance
// that starts later from A's state directory then restores B's writes:
// the next j counts 2 (it counted 1 when A's checkpoint skipped them).
func TestAppStalledWorkerPastRebalanceTimeoutLosesNothing(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	appID := testutil.TopicName(t, "app")
	dirA, dirB := t.TempDir(), t.TempDir()
	cfg := func(dir string) topology.Config {
		return topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
			ConfigureSarama: func(c *sarama.Config) {
				c.Consumer.Group.Session.Timeout = 6 * time.Second
				c.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
				c.Consumer.Group.Rebalance.Timeout = 3 * time.Second
			},
		}
	}
	rec := func(key, value string) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value)}
	}

	// A counts k three times and commits.
	s := newStaller()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(s.release) }) }
	defer release()
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	_, doneA := startApp(t, ctxA, stallingCountTopology(t, in, out, s), cfg(dirA))
	b.Produce(t, in, rec("k", "1"), rec("k", "2"), rec("k", "3"))
	lastCount(t, b, out, "k", 3, 60*time.Second)
	waitCommitted(t, b, appID, in, 0, 3, 30*time.Second)

	// A's worker stalls on k's fourth record, with k=4 not yet committed.
	b.Produce(t, in, rec("k", "stall"))
	select {
	case <-s.stalled:
	case <-time.After(60 * time.Second):
		t.Fatal("A never reached the stalling record")
	}

	// B joins; after the rebalance timeout the group goes on without A and
	// B counts k's fourth record (again) and j once.
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	_, doneB := startApp(t, ctxB, stallingCountTopology(t, in, out, nil), cfg(dirB))
	b.Produce(t, in, rec("j", "1"))
	lastCount(t, b, out, "j", 1, 90*time.Second)
	waitCommitted(t, b, appID, in, 0, 5, 30*time.Second)
	changelog := store.ChangelogTopic(appID, "counts")
	end := int64(0) // the changelog's end offset (compaction keeps its last record)
	for _, m := range b.ConsumeAll(t, changelog) {
		end = max(end, m.Offset+1)
	}

	// A's worker wakes up; A stops.
	release()
	cancelA()
	if err := <-doneA; err != nil {
		t.Fatalf("A: Run: %v", err)
	}
	for _, m := range b.ConsumeAll(t, changelog) {
		if m.Offset >= end {
			t.Errorf("A wrote %s=%x to the changelog at offset %d after losing its membership", m.Key, m.Value, m.Offset)
		}
	}
	cancelB()
	if err := <-doneB; err != nil {
		t.Fatalf("B: Run: %v", err)
	}

	// C starts from A's state directory: it must restore B's writes.
	ctxC, cancelC := context.WithCancel(context.Background())
	defer cancelC()
	_, doneC := startApp(t, ctxC, stallingCountTopology(t, in, out, nil), cfg(dirA))
	b.Produce(t, in, rec("j", "2"))
	waitCommitted(t, b, appID, in, 0, 6, 60*time.Second)
	cancelC()
	if err := <-doneC; err != nil {
		t.Fatalf("C: Run: %v", err)
	}
	if j := lastCounts(t, b, out)["j"]; j != 2 {
		t.Errorf("the second j counted %d, want 2: the state B wrote while A stalled was lost", j)
	}
	lastK := map[string]int64{}
	for _, m := range b.ConsumeAll(t, changelog) {
		v, err := serde.Int64().Deserialize(changelog, m.Value)
		if err != nil {
			t.Fatal(err)
		}
		lastK[string(m.Key)] = v
	}
	if lastK["k"] < 4 || lastK["j"] < 2 {
		t.Errorf("the changelog's last counts are k=%d, j=%d; want k >= 4, j >= 2", lastK["k"], lastK["j"])
	}
}
