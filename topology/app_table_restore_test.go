package topology_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// ratesJoinTopology enriches each transaction of tx with the current rate
// of its currency from the table read from rates ("t2@1.10"; "@none"
// without a rate) and writes it to out.
func ratesJoinTopology(t testing.TB, rates, tx, out string) *topology.Topology {
	t.Helper()
	b := topology.New()
	table := topology.Table(b, "rates", rates, serde.String(), serde.String())
	src := topology.Source(b, "tx", tx, serde.String(), serde.String())
	enriched := topology.ProcessFunc(b, "enrich", src, func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		s, err := table.From(ctx)
		if err != nil {
			return err
		}
		rate, ok, err := s.Get(r.Key)
		if err != nil {
			return err
		}
		if !ok {
			rate = "none"
		}
		return ctx.Forward(processor.Revalue(r, r.Value+"@"+rate))
	}, topology.WithStores("rates"))
	topology.Sink(b, "out", out, enriched, serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// commitGroupOffsets commits offsets for group as a client outside the
// group does (generation -1), as an operator resetting offsets does. The
// group must have no active member.
func commitGroupOffsets(t *testing.T, b *testutil.Broker, group string, offsets map[string]map[int32]int64) {
	t.Helper()
	client, err := sarama.NewClient(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	req := &sarama.OffsetCommitRequest{Version: 7, ConsumerGroup: group, ConsumerGroupGeneration: -1}
	for topic, parts := range offsets {
		for p, off := range parts {
			req.AddBlockWithLeaderEpoch(topic, p, off, -1, 0, "")
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		coord, err := client.Coordinator(group)
		if err == nil {
			var resp *sarama.OffsetCommitResponse
			resp, err = coord.CommitOffset(req)
			if err == nil {
				for topic, parts := range resp.Errors {
					for p, kerr := range parts {
						if kerr != sarama.ErrNoError && err == nil {
							err = kerr
							t.Logf("commit %s/%d for group %s: %v", topic, p, group, kerr)
						}
					}
				}
			}
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("commit offsets of group %s: %v", group, err)
		}
		_ = client.RefreshCoordinator(group)
	}
}

// runUntilOutputs runs the app until out holds n records, stops it and
// returns out's values in offset order and the records each task restored.
func runUntilOutputs(t *testing.T, b *testutil.Broker, topo *topology.Topology, cfg topology.Config, out string, n int) ([]string, map[string]int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, done := startApp(t, ctx, topo, cfg)
	var got []*sarama.ConsumerMessage
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = b.ConsumeAll(t, out)
		if len(got) >= n {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before %s held %d records", err, out, n)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d records after 60s, want %d", out, len(got), n)
		}
	}
	restored := app.RestoredRecords()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	vals := make([]string, len(got))
	for i, m := range got {
		vals[i] = string(m.Value)
	}
	return vals, restored
}

// TestAppTableRestoresToCommittedOffset: a table restores from its source
// topic only up to the group's committed offset, as Kafka Streams does,
// not to the topic's end. The records after the committed offset are
// processed again, in timestamp order with the co-partitioned stream, so
// a re-processed transaction is enriched with the rate it saw the first
// time, never with a later one.
//
// The rates topic holds EUR=1.10 (t=1s), 5000 GBP rates (t=1.5s),
// then EUR=1.20 (t=4s); the transactions are t1 (2s), t2 (3s), t3 (5s).
// The committed offsets say that the rate 1.10 and t1 were processed: the
// table restores that one record, and t2 must be enriched with 1.10
// (restoring to the topic's end gave 1.20, a rate from its future). (The
// GBP rates keep the worker busy while the transactions arrive: the record
// queue does not wait for an empty partition, so without them the new EUR
// rate could be processed before t2 is fetched. For the same reason t3
// may see either rate, depending on which partition is fetched first.)
// The second run starts from a checkpoint ahead of the committed offset
// (an operator reset the offsets to re-process): the table must go back
// to the committed offset too.
func TestAppTableRestoresToCommittedOffset(t *testing.T) {
	b := testutil.NewBroker(t)
	rates, tx, out := testutil.TopicName(t, "rates"), testutil.TopicName(t, "tx"), testutil.TopicName(t, "out")
	b.CreateTopic(t, rates, 1, map[string]string{"cleanup.policy": "compact"})
	b.CreateTopic(t, tx, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	msg := func(key, value string, sec int) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value), Timestamp: base.Add(time.Duration(sec) * time.Second)}
	}
	rateMsgs := []*sarama.ProducerMessage{msg("EUR", "1.10", 1)}
	for i := 0; i < 5000; i++ {
		m := msg("GBP", "0.8"+strconv.Itoa(i%10), 1)
		m.Timestamp = m.Timestamp.Add(500 * time.Millisecond)
		rateMsgs = append(rateMsgs, m)
	}
	b.Produce(t, rates, append(rateMsgs, msg("EUR", "1.20", 4))...)
	b.Produce(t, tx, msg("EUR", "t1", 2), msg("EUR", "t2", 3), msg("EUR", "t3", 5))

	appID, dir := testutil.TopicName(t, "app"), t.TempDir()
	processedFirst := map[string]map[int32]int64{rates: {0: 1}, tx: {0: 1}}
	commitGroupOffsets(t, b, appID, processedFirst)
	cfg := topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, CommitInterval: 100 * time.Millisecond, Logger: testLogger(t)}
	check := func(run string, got []string) {
		t.Helper()
		if len(got) != 2 || got[0] != "t2@1.10" || !strings.HasPrefix(got[1], "t3@") {
			t.Fatalf("%s wrote %q, want t2@1.10 then t3: the table was restored past the committed offset", run, got)
		}
	}
	got, restored := runUntilOutputs(t, b, ratesJoinTopology(t, rates, tx, out), cfg, out, 2)
	if restored["0_0"] != 1 {
		t.Errorf("the table restored %d records, want 1 (the rates below the committed offset 1)", restored["0_0"])
	}
	check("the first run", got)

	// Re-process from the same offsets with the state (and checkpoint) of
	// the first run, which reflects the whole rates topic.
	commitGroupOffsets(t, b, appID, processedFirst)
	got, restored = runUntilOutputs(t, b, ratesJoinTopology(t, rates, tx, out), cfg, out, 4)
	if restored["0_0"] != 1 {
		t.Errorf("the table restored %d records, want 1: its checkpoint is past the committed offset, so it restores again up to there", restored["0_0"])
	}
	check("re-processing", got[2:])
}
