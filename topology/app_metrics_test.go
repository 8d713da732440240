package topology_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// regroupTopology counts the input's values by value: the records go
// through a repartition topic, which the App writes itself (in
// transactions under exactly-once).
func regroupTopology(t *testing.T, in, out string) *topology.Topology {
	t.Helper()
	b := topology.New()
	s := topology.Stream(b, "in", in, serde.String(), serde.String())
	topology.Count(topology.GroupBy(s, "by-value", func(_, v string) (string, error) { return v, nil }, serde.String()), "counts").
		ToStream("changes").To("out", out, serde.String(), topology.ChangeSerde(serde.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func nodeProcessed(s metrics.AppSnapshot, node string) int64 {
	var n int64
	for _, ns := range s.Nodes {
		if ns.Node == node {
			n += ns.RecordsProcessed
		}
	}
	return n
}

func appSnapshot(t *testing.T, reg *metrics.Registry, appID string) metrics.AppSnapshot {
	t.Helper()
	for _, a := range reg.Snapshot().Apps {
		if a.ApplicationID == appID {
			return a
		}
	}
	t.Fatalf("no App %q in the registry", appID)
	return metrics.AppSnapshot{}
}

// TestAppWaitCaughtUpExactlyOnce runs an exactly-once App whose records go
// through a repartition topic it writes in transactions, so every
// transaction leaves a commit marker after its records. WaitCaughtUp must
// come back although a task's position (the offset after its last
// record) stays below the repartition partitions' last stable offset
// (after the marker): the offsets left hold no record. A second
// WaitCaughtUp, whose mark includes the repartition records of the first
// round, returns once the downstream tasks processed every one of them.
// The metrics then show every record through both sub-topologies.
func TestAppWaitCaughtUpExactlyOnce(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 3, nil)
	b.CreateTopic(t, out, 3, nil)
	appID := testutil.TopicName(t, "app")
	reg := metrics.NewRegistry()
	app, err := topology.NewApp(regroupTopology(t, in, out), topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), Guarantee: topology.ExactlyOnce,
		CommitInterval: 200 * time.Millisecond, Logger: testLogger(t), Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()

	const n = 120
	var msgs []*sarama.ProducerMessage
	for i := 0; i < n; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder(fmt.Sprint("k", i)), Value: sarama.StringEncoder(fmt.Sprint("v", i%7))})
	}
	b.Produce(t, in, msgs...)

	// Round 1: every input record processed; round 2: every repartition
	// record written meanwhile (committed: the transactions of round 1's
	// records commit within the commit interval).
	var rep topology.CaughtUpReport
	for round := 1; round <= 2; round++ {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		rep, err = app.WaitCaughtUp(wctx)
		wcancel()
		if err != nil {
			t.Fatalf("round %d: WaitCaughtUp: %v; report %+v", round, err, rep)
		}
		if !rep.CaughtUp || rep.Reason != "" {
			t.Fatalf("round %d: report %+v", round, rep)
		}
		if round == 1 {
			// Let the transactions of the repartition records commit, so
			// that round 2's mark covers all of them.
			deadline := time.Now().Add(time.Minute)
			for nodeProcessed(appSnapshot(t, reg, appID), "changes") < 7 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(600 * time.Millisecond) // three commit intervals: the last repartition writes commit
		}
	}
	repartitions := 0
	for _, p := range rep.Partitions {
		if p.Remaining != 0 || p.Position < 0 || p.Target < 0 {
			t.Errorf("partition %+v not caught up in a caught-up report", p)
		}
		if p.Topic != in {
			repartitions++
			if p.Target > 0 && p.Position >= p.Target {
				// Every repartition record is in a transaction: its commit
				// marker comes after it, so the last stable offset is past
				// the position.
				t.Logf("repartition %s[%d]: position %d reached target %d", p.Topic, p.Partition, p.Position, p.Target)
			}
		}
	}
	if repartitions != 3 {
		t.Errorf("report lists %d repartition partitions, want 3: %+v", repartitions, rep.Partitions)
	}
	s := appSnapshot(t, reg, appID)
	if got := nodeProcessed(s, "in"); got != n {
		t.Errorf("source in processed %d records, want %d", got, n)
	}
	// The repartition topic's source node is named after the step.
	var down int64
	for _, ns := range s.Nodes {
		if ns.Kind == "source" && ns.Node != "in" {
			down += ns.RecordsProcessed
		}
	}
	if down != n {
		t.Errorf("the repartition's source processed %d records, want %d (caught up with every repartition record)", down, n)
	}
	var txns int64
	for _, ts := range s.Tasks {
		txns += ts.TransactionsCommitted
		if ts.State != metrics.TaskRunning {
			t.Errorf("task %s is %s, want running", ts.Task, ts.State)
		}
	}
	if txns == 0 || s.Commits.Count == 0 || s.Rebalances.Count == 0 || s.State != "running" {
		t.Errorf("transactions %d, commits %d, rebalances %d, state %s: want some of each, running", txns, s.Commits.Count, s.Rebalances.Count, s.State)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := app.CaughtUp(context.Background()); err == nil {
		t.Error("CaughtUp after Run returned: no error")
	}
}

// TestAppCaughtUpAfterAbortedTransaction: an exactly-once App reads a
// topic whose last records were written in a transaction that was
// aborted. Its last stable offset lies after the abort marker, past
// records the App never receives: CaughtUp must count them as processed,
// and the partition's lag falls to 0.
func TestAppCaughtUpAfterAbortedTransaction(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)

	cfg := b.SaramaConfig()
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Transaction.ID = testutil.TopicName(t, "txn")
	p, err := sarama.NewSyncProducer(b.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(commit bool, keys ...string) {
		t.Helper()
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder(k), Value: sarama.StringEncoder("v")}); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	send(true, "a", "b", "c")
	send(false, "x", "y") // aborted: never delivered under read_committed

	appID := testutil.TopicName(t, "app")
	reg := metrics.NewRegistry()
	app, err := topology.NewApp(countTopology(t, in, out), topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), Guarantee: topology.ExactlyOnce,
		CommitInterval: 200 * time.Millisecond, Logger: testLogger(t), Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	rep, err := app.WaitCaughtUp(wctx)
	wcancel()
	if err != nil {
		t.Fatalf("WaitCaughtUp: %v; report %+v", err, rep)
	}
	if len(rep.Partitions) != 1 {
		t.Fatalf("report %+v, want one partition", rep)
	}
	pp := rep.Partitions[0]
	// Offsets: a, b, c (0-2), commit marker (3), x, y (4-5), abort marker
	// (6): the last stable offset is 7, the position after c is 3.
	if pp.Target != 7 || pp.Position != 3 || pp.Remaining != 0 {
		t.Errorf("partition %+v; want target 7, position 3, nothing remaining", pp)
	}
	// The lag gauge comes from the monitor, every few seconds.
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := appSnapshot(t, reg, appID)
		var lag, end int64 = -2, -2
		for _, ps := range s.Partitions {
			if ps.Assigned && ps.Topic == in {
				lag, end = ps.Lag, ps.End
			}
		}
		if lag == 0 && end == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag %d, end %d; want 0 and 7 (the offsets after position 3 hold no record)", lag, end)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestAppMetricsCountsDuplicatesAndNullKeys: the DSL's drops reach the
// App's metrics: DropDuplicates' duplicates and an aggregation's null-key
// records, at the nodes that dropped them.
func TestAppMetricsCountsDuplicatesAndNullKeys(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	tb := topology.New()
	s := topology.Stream(tb, "in", in, serde.String(), serde.String()).
		DropDuplicates("dedup", func(_, v string) string { return v }, time.Hour)
	s.To("out", out, serde.String(), serde.String())
	topology.Count(s.GroupByKey(), "counts")
	topo, err := tb.Build()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var msgs []*sarama.ProducerMessage
	for i, v := range []string{"p1", "p2", "p1", "p3", "p2", "p4"} { // p1 and p2 twice
		m := &sarama.ProducerMessage{Key: sarama.StringEncoder(fmt.Sprint("k", i)), Value: sarama.StringEncoder(v), Timestamp: now}
		if v == "p4" {
			m.Key = nil // a null key: Count drops it
		}
		msgs = append(msgs, m)
	}
	b.Produce(t, in, msgs...)
	appID := testutil.TopicName(t, "app")
	reg := metrics.NewRegistry()
	app, err := topology.NewApp(topo, topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
		CommitInterval: 200 * time.Millisecond, Logger: testLogger(t), Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	if rep, err := app.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("WaitCaughtUp: %v (%+v)", err, rep)
	}
	var dups, nullKeys int64
	for _, n := range appSnapshot(t, reg, appID).Nodes {
		dups += n.Dropped.Duplicate
		nullKeys += n.Dropped.NullKey
		if n.Dropped.Duplicate > 0 && n.Node != "dedup" {
			t.Errorf("node %s counted duplicates", n.Node)
		}
	}
	if dups != 2 || nullKeys != 1 {
		t.Errorf("dropped %d duplicates and %d null keys, want 2 and 1", dups, nullKeys)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
