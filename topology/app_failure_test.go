package topology_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// committedUpdates reads the payments app's output with read_committed,
// per account in offset order.
func committedUpdates(t *testing.T, b *testutil.Broker, topic string) map[string][]balanceUpdate {
	t.Helper()
	out := map[string][]balanceUpdate{}
	for _, m := range b.ConsumeAllCommitted(t, topic) {
		var u balanceUpdate
		if err := json.Unmarshal(m.Value, &u); err != nil {
			t.Fatalf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)
		}
		out[string(m.Key)] = append(out[string(m.Key)], u)
	}
	return out
}

// committedBalances reads the changelog of the payments app's store with
// read_committed and returns the last value per account.
func committedBalances(t *testing.T, b *testutil.Broker, appID string) map[string]balance {
	t.Helper()
	out := map[string]balance{}
	for _, m := range b.ConsumeAllCommitted(t, store.ChangelogTopic(appID, "balances")) {
		var v balance
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("changelog %d@%d: %v", m.Partition, m.Offset, err)
		}
		out[string(m.Key)] = v
	}
	return out
}

// skipPoison is a processing handler that drops the payments app's poison
// payment and fails on anything else.
var skipPoison = topology.WithProcessingHandler(func(ec processor.ErrorContext) processor.HandlerResponse {
	if errors.Is(ec.Err, errPoison) {
		return processor.Continue
	}
	return processor.Fail
})

// TestAppExactlyOncePoisonCommitsHealthyTasksAndRecordsBeforeIt: under
// exactly-once with the default (fail) handler, a poison record on one
// partition in the first commit interval stops the app, but first every
// healthy task commits its transaction and the failing task commits the
// records before the poison, without the poison's partial output and store
// write (its processor wrote both before failing). read_committed
// consumers then see exactly that, the committed offsets are the healthy
// partitions' ends and the poison's offset, the local stores and the
// changelog hold the matching balances, and a restart that skips the
// poison continues exactly once (no duplicate, no gap).
func TestAppExactlyOncePoisonCommitsHealthyTasksAndRecordsBeforeIt(t *testing.T) {
	b := eosBroker(t)
	const parts, accounts, rounds = 4, 8, 5
	in, out := testutil.TopicName(t, "payments"), testutil.TopicName(t, "balances")
	b.CreateTopic(t, in, parts, nil)
	b.CreateTopic(t, out, parts, nil)
	appID, dir := testutil.TopicName(t, "app"), t.TempDir()
	const poison = 999
	sent := payments{}
	ends := make([]int64, parts)
	var msgs []*sarama.ProducerMessage
	for r := 0; r < rounds; r++ {
		for i := 0; i < accounts; i++ {
			amount := int64(1 + (r*7+i*13)%50)
			sent[accountName(i)] = append(sent[accountName(i)], amount)
			msgs = append(msgs, paymentMsg(i, parts, amount))
			ends[i%parts]++
		}
	}
	b.Produce(t, in, msgs...)

	cfg := eosConfig(t, b, appID, dir)
	cfg.CommitInterval = time.Hour // nothing commits before the poison
	cfg.Workers = 2
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	_, done := startApp(t, ctx, paymentsTopology(t, in, out, poison), cfg)
	// Every healthy record is processed (its output is in an open
	// transaction) before the poison arrives on partition 1, followed by
	// more payments the app must not process.
	b.WaitForRecords(t, out, rounds*accounts, false, 60*time.Second)
	before := payments{}
	for k, v := range sent {
		before[k] = append([]int64(nil), v...)
	}
	poisonOffset := ends[1]
	b.Produce(t, in, paymentMsg(1, parts, poison), paymentMsg(1, parts, 3), paymentMsg(5, parts, 4))
	sent[accountName(1)] = append(sent[accountName(1)], poison, 3)
	sent[accountName(5)] = append(sent[accountName(5)], 4)

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatal("Run did not stop on the poison payment")
	}
	var pe *processor.ProcessingError
	if !errors.As(err, &pe) || !errors.Is(err, errPoison) || pe.Topic != in || pe.Partition != 1 || pe.Offset != poisonOffset {
		t.Fatalf("Run returned %v, want the poison's ProcessingError at %s/1@%d", err, in, poisonOffset)
	}
	t.Logf("app stopped with: %v", err)

	// The poison's partial output was never even sent.
	if got := len(b.ConsumeAll(t, out)); got != rounds*accounts {
		t.Fatalf("the output topic holds %d records, want %d: the poison's partial output was sent", got, rounds*accounts)
	}
	checkExactlyOnce(t, before, committedUpdates(t, b, out))
	for p := int32(0); p < parts; p++ {
		want := ends[p]
		if p == 1 {
			want = poisonOffset
		}
		if got := committedOffset(t, b, appID, in, p); got != want {
			t.Errorf("partition %d: committed offset %d, want %d", p, got, want)
		}
	}
	checkBalances(t, before, readBalances(t, dir, appID))
	cl := committedBalances(t, b, appID)
	for acct, amounts := range before {
		if got := cl[acct]; got.Balance != before.sum(acct) || got.Seq != int64(len(amounts)) {
			t.Errorf("%s: committed changelog holds %+v, want balance %d after %d payments", acct, got, before.sum(acct), len(amounts))
		}
	}
	if t.Failed() {
		return
	}

	// Restart with a handler that skips the poison (its own partial
	// output and write stay, as Continue means): exactly once from there.
	w := watchOutput(t, b, out)
	runCtx, stop := context.WithCancel(ctx)
	_, done2 := startApp(t, runCtx, paymentsTopology(t, in, out, poison, skipPoison), eosConfig(t, b, appID, dir))
	got := w.waitComplete(t, sent, 60*time.Second)
	stop()
	if err := <-done2; err != nil {
		t.Fatalf("second Run: %v", err)
	}
	checkExactlyOnce(t, sent, got)
	checkBalances(t, sent, readBalances(t, dir, appID))
}

// TestAppExactlyOncePoisonPillCommitsUpToIt is TestAppPoisonPillFailsThenResumesAtIt
// under exactly-once: with the default handler the app stops with an
// error naming topic, partition and offset, after committing the records
// before the bad one (read_committed consumers see their sums, the
// committed offset is the bad record's); restarted with a dead-letter
// handler it resumes exactly at the bad record.
func TestAppExactlyOncePoisonPillCommitsUpToIt(t *testing.T) {
	b := eosBroker(t)
	in, out, dlq := testutil.TopicName(t, "in"), testutil.TopicName(t, "out"), testutil.TopicName(t, "dlq")
	for _, tp := range []string{in, out, dlq} {
		b.CreateTopic(t, tp, 1, nil)
	}
	poisonInput(t, b, in)
	appID := testutil.TopicName(t, "app")
	dir := t.TempDir()
	cfg := eosConfig(t, b, appID, dir)
	cfg.CommitInterval = time.Hour

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	app, err := topology.NewApp(sumTopology(t, in, out), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = app.Run(ctx)
	var de *processor.DeserializationError
	if !errors.As(err, &de) || de.Topic != in || de.Partition != 0 || de.Offset != 4 {
		t.Fatalf("Run returned %v, want a DeserializationError at %s/0@4", err, in)
	}
	if committed := committedOffset(t, b, appID, in, 0); committed != 4 {
		t.Fatalf("committed offset %d, want 4 (the bad record)", committed)
	}
	sums := func() []int64 {
		var s []int64
		for _, m := range b.ConsumeAllCommitted(t, out) {
			v, err := serde.Int64().Deserialize(out, m.Value)
			if err != nil {
				t.Fatal(err)
			}
			s = append(s, v)
		}
		return s
	}
	if got := fmt.Sprint(sums()); got != "[1 3 6 10]" {
		t.Fatalf("read_committed sums %s, want [1 3 6 10] (the records before the bad one)", got)
	}

	app2, err := topology.NewApp(sumTopology(t, in, out, topology.WithDeserializationHandler(processor.DeadLetter(dlq, testLogger(t)))), eosConfig(t, b, appID, dir))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app2.Run(runCtx) }()
	b.WaitForRecords(t, out, 9, true, 30*time.Second)
	dead := b.WaitForRecords(t, dlq, 1, true, 30*time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("restarted Run: %v", err)
	}
	if got := fmt.Sprint(sums()); got != "[1 3 6 10 16 23 31 40 50]" {
		t.Fatalf("read_committed sums %s, want [1 3 6 10 16 23 31 40 50] (no duplicate, no gap)", got)
	}
	if len(dead) != 1 || string(dead[0].Value) != "bad" {
		t.Fatalf("dead letters %v, want the one bad record", dead)
	}
}

// TestAppAtLeastOnceFailedRecordLeavesNoPartialWrites: under at-least-once
// a record that fails after its processor wrote to the store and forwarded
// an output leaves neither behind: the records before it are committed,
// and a restart that skips it counts it once (its write is not applied
// twice, its output is not sent twice).
func TestAppAtLeastOnceFailedRecordLeavesNoPartialWrites(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "payments"), testutil.TopicName(t, "balances")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	appID, dir := testutil.TopicName(t, "app"), t.TempDir()
	const poison = 999
	amounts := []int64{5, 7, 11, poison, 13, 17}
	var msgs []*sarama.ProducerMessage
	for _, a := range amounts {
		msgs = append(msgs, paymentMsg(0, 1, a))
	}
	b.Produce(t, in, msgs...)
	cfg := topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, CommitInterval: time.Hour, Logger: testLogger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	app, err := topology.NewApp(paymentsTopology(t, in, out, poison), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Run(ctx); !errors.Is(err, errPoison) {
		t.Fatalf("Run returned %v, want the poison processing error", err)
	}
	if off := committedOffset(t, b, appID, in, 0); off != 3 {
		t.Fatalf("committed offset %d, want 3 (the failed record)", off)
	}
	if got := len(b.ConsumeAll(t, out)); got != 3 {
		t.Fatalf("output holds %d records, want the 3 before the failed record", got)
	}
	checkBalances(t, payments{accountName(0): amounts[:3]}, readBalances(t, dir, appID))

	w := watchOutput(t, b, out)
	cfg.CommitInterval = 50 * time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	_, done := startApp(t, runCtx, paymentsTopology(t, in, out, poison, skipPoison), cfg)
	want := payments{accountName(0): amounts}
	got := w.waitComplete(t, want, 30*time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("second Run: %v", err)
	}
	checkExactlyOnce(t, want, got)
	checkBalances(t, want, readBalances(t, dir, appID))
}

// receiptsTopology adds each payment to the account's sum and writes a
// receipt of amount bytes to out. A payment of 1000 or more asks for a
// commit at once.
func receiptsTopology(t *testing.T, in, out string) *topology.Topology {
	t.Helper()
	tb := topology.New()
	src := topology.Source(tb, "payments", in, serde.String(), serde.Int64())
	topology.KeyValueStore(tb, "sums", serde.String(), serde.Int64())
	receipts := topology.ProcessFunc(tb, "receipt", src, func(ctx processor.Context[string, string], r processor.Record[string, int64]) error {
		s, err := processor.KeyValueStore[string, int64](ctx, "sums")
		if err != nil {
			return err
		}
		v, _, err := s.Get(r.Key)
		if err != nil {
			return err
		}
		if err := s.Put(r.Key, v+r.Value); err != nil {
			return err
		}
		if r.Value >= 1000 {
			ctx.RequestCommit()
		}
		return ctx.Forward(processor.Revalue(r, strings.Repeat("x", int(r.Value))))
	}, topology.WithStores("sums"))
	topology.Sink(tb, "receipts-out", out, receipts, serde.String(), serde.String())
	topo, err := tb.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestAppBrokerRefusedRecordIsProductionError: the broker refuses a sink
// record (larger than the output topic's max.message.bytes). Under both
// guarantees Run returns a *processor.ProductionError naming the sink, the
// output topic and the source record; the failing task commits nothing
// past its last commit (under exactly-once its transaction is aborted:
// nothing of it is visible), and the healthy task commits its work.
func TestAppBrokerRefusedRecordIsProductionError(t *testing.T) {
	for _, eos := range []bool{false, true} {
		name := "AtLeastOnce"
		if eos {
			name = "ExactlyOnce"
		}
		t.Run(name, func(t *testing.T) {
			b := eosBroker(t)
			in, out := testutil.TopicName(t, "payments"), testutil.TopicName(t, "receipts")
			b.CreateTopic(t, in, 2, nil)
			b.CreateTopic(t, out, 2, map[string]string{"max.message.bytes": "2048"})
			appID := testutil.TopicName(t, "app")
			cfg := topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), CommitInterval: time.Hour, Logger: testLogger(t)}
			if eos {
				cfg.Guarantee = topology.ExactlyOnce
			}
			// Partition 0: 10, 20, then 5000 (refused); partition 1: 1, 2, 3.
			b.Produce(t, in, paymentMsg(0, 2, 10), paymentMsg(0, 2, 20), paymentMsg(1, 2, 1), paymentMsg(1, 2, 2), paymentMsg(1, 2, 3))
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			_, done := startApp(t, ctx, receiptsTopology(t, in, out), cfg)
			// The five receipts are written (in open transactions under
			// exactly-once) before the big payment arrives, so that its
			// receipt goes to the broker in a batch of its own.
			b.WaitForRecords(t, out, 5, false, 60*time.Second)
			b.Produce(t, in, paymentMsg(0, 2, 5000))
			var err error
			select {
			case err = <-done:
			case <-ctx.Done():
				t.Fatal("Run did not stop on the refused record")
			}
			var pe *processor.ProductionError
			if !errors.As(err, &pe) {
				t.Fatalf("Run returned %v (%T), want a *processor.ProductionError", err, err)
			}
			if pe.Node != "receipts-out" || pe.OutputTopic != out || pe.Topic != in || pe.Partition != 0 || pe.Offset != 2 ||
				!errors.Is(err, sarama.ErrMessageSizeTooLarge) {
				t.Fatalf("ProductionError %+v, want sink receipts-out, output %s, source %s/0@2, MESSAGE_TOO_LARGE", pe, out, in)
			}
			t.Logf("app stopped with: %v", err)
			// The failing task commits nothing; the healthy one commits
			// its three payments.
			if off := committedOffset(t, b, appID, in, 0); off >= 0 {
				t.Errorf("partition 0: offset %d committed for the failed task", off)
			}
			if off := committedOffset(t, b, appID, in, 1); off != 3 {
				t.Errorf("partition 1: committed offset %d, want 3", off)
			}
			if !eos {
				return
			}
			committedReceipts := 0
			for _, m := range b.ConsumeAllCommitted(t, out) {
				committedReceipts++
				if string(m.Key) != accountName(1) {
					t.Errorf("read_committed sees a receipt of %s (%d bytes) from the failed task", m.Key, len(m.Value))
				}
			}
			aborted := 0
			for _, m := range b.ConsumeAll(t, out) {
				if string(m.Key) == accountName(0) {
					aborted++
				}
			}
			if aborted != 2 {
				t.Errorf("read_uncommitted sees %d receipts of account 0, want the 2 its aborted transaction wrote", aborted)
			}
			if committedReceipts != 3 {
				t.Errorf("read_committed sees %d receipts, want the healthy task's 3 (the failed task's transaction aborted)", committedReceipts)
			}
			if got := len(b.ConsumeAllCommitted(t, store.ChangelogTopic(appID, "sums"))); got != 1 {
				t.Errorf("read_committed changelog has %d records, want the healthy task's 1", got)
			}
		})
	}
}
