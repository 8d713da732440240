package topology_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// countTopology counts records per key in a LevelDB store with a changelog
// (buildCountTopology) and writes every new count to out.
func countTopology(t testing.TB, in, out string) *topology.Topology {
	t.Helper()
	topo, err := buildCountTopology(in, out)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func produceKeys(t *testing.T, b *testutil.Broker, topic string, partitions, keys, perKey int) {
	t.Helper()
	var msgs []*sarama.ProducerMessage
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("key-%03d", k)
			msgs = append(msgs, &sarama.ProducerMessage{
				Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(fmt.Sprint(i)),
				Partition: int32(k % partitions),
			})
		}
	}
	b.Produce(t, topic, msgs...)
}

// lastCounts reads out and returns the last count per key.
func lastCounts(t *testing.T, b *testutil.Broker, topic string) map[string]int64 {
	t.Helper()
	last := map[string]int64{}
	for _, m := range b.ConsumeAll(t, topic) {
		v, err := serde.Int64().Deserialize(topic, m.Value)
		if err != nil {
			t.Fatalf("%s/%d@%d: %v", topic, m.Partition, m.Offset, err)
		}
		last[string(m.Key)] = v
	}
	return last
}

func waitCounts(t *testing.T, b *testutil.Broker, topic string, keys int, want int64, timeout time.Duration) map[string]int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := lastCounts(t, b, topic)
		done := len(got) == keys
		for _, v := range got {
			if v < want {
				done = false
			}
		}
		if done {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d keys, counts %v; want %d keys at >= %d", timeout, len(got), got, keys, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func startApp(t *testing.T, ctx context.Context, topo *topology.Topology, cfg topology.Config) (*topology.App, <-chan error) {
	t.Helper()
	app, err := topology.NewApp(topo, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	return app, done
}

// TestAppCountsAndRestoresTail runs two instances of a counting app over a
// 6-partition topic, checks every key's count, then restarts one instance
// alone and checks that it restores only the changelog tail after its
// checkpoints, not the whole changelog.
func TestAppCountsAndRestoresTail(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 6, nil)
	b.CreateTopic(t, out, 6, nil)
	const keys, perKey = 60, 20
	produceKeys(t, b, in, 6, keys, perKey)

	appID := testutil.TopicName(t, "app")
	cfg := func(dir string) topology.Config {
		return topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir,
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t),
		}
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, doneA := startApp(t, ctx, countTopology(t, in, out), cfg(dirA))
	_, doneB := startApp(t, ctx, countTopology(t, in, out), cfg(dirB))
	got := waitCounts(t, b, out, keys, perKey, 60*time.Second)
	cancel()
	for _, d := range []<-chan error{doneA, doneB} {
		if err := <-d; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	dups := 0
	for k, v := range got {
		if v < perKey {
			t.Errorf("key %s counted %d, want %d", k, v, perKey)
		}
		dups += int(v - perKey)
	}
	t.Logf("at-least-once duplicates counted: %d", dups)

	// Restart A alone with more input: it takes every task; the tasks it
	// ran before restore only their tail, B's former tasks restore fully
	// into A's empty state dir.
	produceKeys(t, b, in, 6, keys, 1)
	var mu sync.Mutex
	var restored []store.RestoreProgress
	c := cfg(dirA)
	c.RestoreListener = func(p store.RestoreProgress) {
		mu.Lock()
		restored = append(restored, p)
		mu.Unlock()
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	app, done := startApp(t, ctx2, countTopology(t, in, out), c)
	waitCounts(t, b, out, keys, perKey+1, 60*time.Second)
	rec := app.RestoredRecords()
	cancel2()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	var total int64
	for _, n := range rec {
		total += n
	}
	if len(rec) != 6 {
		t.Fatalf("restored tasks %v, want 6", rec)
	}
	// Everything ever written to the changelog is keys*perKey (+dups);
	// tail-only restore of A's own tasks must bring the total well under it.
	full := int64(keys * perKey)
	t.Logf("restored records per task after restart: %v (total %d, whole changelog %d)", rec, total, full)
	if total >= full {
		t.Fatalf("restart restored %d records, not less than the whole changelog (%d): checkpoints were not used", total, full)
	}
}

func TestAppMissingSourceTopic(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "missing"), testutil.TopicName(t, "out")
	b.CreateTopic(t, out, 1, nil)
	app, err := topology.NewApp(countTopology(t, in, out), topology.Config{
		ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = app.Run(context.Background())
	if err == nil {
		t.Fatal("Run succeeded without its source topic")
	}
	t.Log(err)
	var missing *topology.MissingTopicsError
	if !errors.As(err, &missing) || len(missing.Topics) != 1 || missing.Topics[0] != in || len(missing.Sources) != 1 || missing.Sources[0] != in {
		t.Fatalf("error %v is not a MissingTopicsError naming %q", err, in)
	}
}

// TestAppCoPartitionMismatch joins two topics of different partition
// counts in one sub-topology: Run refuses, naming both topics and counts.
func TestAppCoPartitionMismatch(t *testing.T) {
	b := testutil.NewBroker(t)
	left, right, out := testutil.TopicName(t, "left"), testutil.TopicName(t, "right"), testutil.TopicName(t, "out")
	b.CreateTopic(t, left, 3, nil)
	b.CreateTopic(t, right, 4, nil)
	b.CreateTopic(t, out, 1, nil)
	tb := topology.New()
	l := topology.Source(tb, "left", left, serde.String(), serde.String())
	r := topology.Source(tb, "right", right, serde.String(), serde.String())
	topology.Sink(tb, "out", out, topology.Merge(tb, "both", l, r), serde.String(), serde.String())
	topo, err := tb.Build()
	if err != nil {
		t.Fatal(err)
	}
	app, err := topology.NewApp(topo, topology.Config{
		ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = app.Run(context.Background())
	var cp *topology.CoPartitionError
	if !errors.As(err, &cp) {
		t.Fatalf("Run returned %v, want a CoPartitionError", err)
	}
	t.Log(err)
	if !containsAll(err.Error(), left, right, "3", "4") {
		t.Fatalf("error %q does not name both topics and counts", err)
	}
}
