package topology_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/brookstream/brook/store/leveldb"
	"os"
	"path/filepath"
	"sort"
	"strings"
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

// balance is the payments app's state per account.
type balance struct {
	Balance int64 `json:"balance"`
	Seq     int64 `json:"seq"`
}

// balanceUpdate is the payments app's output: the account's new balance
// after its Seq-th payment, of Amount.
type balanceUpdate struct {
	Seq     int64 `json:"seq"`
	Balance int64 `json:"balance"`
	Amount  int64 `json:"amount"`
}

// errPoison is the processing error of the payments app for the poison
// amount.
var errPoison = errors.New("poison payment")

// buildPaymentsTopology sums payment amounts (int64 values) per account
// (string keys) in the LevelDB store "balances" and writes every new
// balance, with the account's sequence number, to out. A payment of
// exactly poison (when non-zero) fails processing after its store write
// and its output were made, so that they sit in the open transaction.
func buildPaymentsTopology(in, out string, poison int64, opts ...topology.Option) (*topology.Topology, error) {
	b := topology.New(opts...)
	src := topology.Source(b, "payments", in, serde.String(), serde.Int64())
	topology.KeyValueStore(b, "balances", serde.String(), serde.JSON[balance]())
	updates := topology.ProcessFunc(b, "sum", src, func(ctx processor.Context[string, balanceUpdate], r processor.Record[string, int64]) error {
		s, err := processor.KeyValueStore[string, balance](ctx, "balances")
		if err != nil {
			return err
		}
		cur, _, err := s.Get(r.Key)
		if err != nil {
			return err
		}
		cur.Balance += r.Value
		cur.Seq++
		if err := s.Put(r.Key, cur); err != nil {
			return err
		}
		if err := ctx.Forward(processor.Revalue(r, balanceUpdate{Seq: cur.Seq, Balance: cur.Balance, Amount: r.Value})); err != nil {
			return err
		}
		if poison != 0 && r.Value == poison {
			return errPoison
		}
		return nil
	}, topology.WithStores("balances"))
	topology.Sink(b, "balances-out", out, updates, serde.String(), serde.JSON[balanceUpdate]())
	return b.Build()
}

func paymentsTopology(t testing.TB, in, out string, poison int64, opts ...topology.Option) *topology.Topology {
	t.Helper()
	topo, err := buildPaymentsTopology(in, out, poison, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// payments is the input a test produced, per account in order.
type payments map[string][]int64

func (p payments) sum(acct string) (s int64) {
	for _, a := range p[acct] {
		s += a
	}
	return s
}

func accountName(i int) string { return fmt.Sprintf("acct-%02d", i) }

// paymentMsg is one payment to account i, on partition i % partitions.
func paymentMsg(i int, partitions int, amount int64) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{
		Key: sarama.StringEncoder(accountName(i)), Value: sarama.ByteEncoder(int64Bytes(amount)),
		Partition: int32(i % partitions),
	}
}

// outputWatcher reads the output topic continuously with read_committed and
// collects the balance updates per account in offset order.
type outputWatcher struct {
	mu     sync.Mutex
	byAcct map[string][]balanceUpdate
	err    error
	// appended holds, per partition, the timestamps of the records read
	// (their broker append times on a LogAppendTime topic).
	appended map[int32][]time.Time
}

func watchOutput(t *testing.T, b *testutil.Broker, topic string) *outputWatcher {
	t.Helper()
	cfg := b.SaramaConfig()
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	consumer, err := sarama.NewConsumer(b.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	w := &outputWatcher{byAcct: map[string][]balanceUpdate{}, appended: map[int32][]time.Time{}}
	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	t.Cleanup(func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
		consumer.Close()
	})
	for _, p := range parts {
		var pc sarama.PartitionConsumer
		for attempt := 0; ; attempt++ {
			// A just-created topic's leader may not be known yet.
			if pc, err = consumer.ConsumePartition(topic, p, sarama.OffsetOldest); err == nil || attempt == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { // owned by the test cleanup below
			defer wg.Done()
			for m := range pc.Messages() {
				var u balanceUpdate
				err := json.Unmarshal(m.Value, &u)
				w.mu.Lock()
				if err != nil && w.err == nil {
					w.err = fmt.Errorf("%s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
				}
				w.byAcct[string(m.Key)] = append(w.byAcct[string(m.Key)], u)
				w.appended[m.Partition] = append(w.appended[m.Partition], m.Timestamp)
				w.mu.Unlock()
			}
		}()
		pcs = append(pcs, pc)
	}
	return w
}

// largestGap returns the longest time between two consecutive records of
// partition p appended within [from, to] (from and to count as records),
// by their timestamps.
func (w *outputWatcher) largestGap(p int32, from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, gap := from, time.Duration(0)
	for _, ts := range w.appended[p] {
		if ts.Before(from) || ts.After(to) {
			continue
		}
		gap = max(gap, ts.Sub(prev))
		prev = ts
	}
	return max(gap, to.Sub(prev))
}

// appendedAfter reports whether each of partitions 0..parts-1 has a
// record appended after t.
func (w *outputWatcher) appendedAfter(parts int, t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p := range int32(parts) {
		ts := w.appended[p]
		if len(ts) == 0 || !ts[len(ts)-1].After(t) {
			return false
		}
	}
	return true
}

// snapshot returns a copy of what the watcher has seen.
func (w *outputWatcher) snapshot() map[string][]balanceUpdate {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string][]balanceUpdate, len(w.byAcct))
	for k, v := range w.byAcct {
		out[k] = append([]balanceUpdate(nil), v...)
	}
	return out
}

// waitComplete waits until every account's output has reached as many
// updates as it has payments.
func (w *outputWatcher) waitComplete(t *testing.T, in payments, timeout time.Duration) map[string][]balanceUpdate {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := w.snapshot()
		done := true
		for acct, amounts := range in {
			if len(got[acct]) < len(amounts) {
				done = false
			}
		}
		if done {
			return got
		}
		if time.Now().After(deadline) {
			var missing []string
			for acct, amounts := range in {
				if len(got[acct]) < len(amounts) {
					missing = append(missing, fmt.Sprintf("%s %d/%d", acct, len(got[acct]), len(amounts)))
				}
			}
			sort.Strings(missing)
			t.Fatalf("after %v the committed output is incomplete: %v", timeout, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkExactlyOnce checks that the committed output shows each payment's
// effect exactly once: per account, sequence numbers 1..n with no gap and
// no duplicate, the amounts in input order, and running balances.
func checkExactlyOnce(t *testing.T, in payments, out map[string][]balanceUpdate) {
	t.Helper()
	for acct, amounts := range in {
		ups := out[acct]
		if len(ups) != len(amounts) {
			t.Errorf("%s: %d committed updates for %d payments", acct, len(ups), len(amounts))
		}
		var sum int64
		for i, u := range ups {
			if i >= len(amounts) {
				t.Errorf("%s: extra update %+v", acct, u)
				break
			}
			sum += amounts[i]
			if u.Seq != int64(i+1) || u.Amount != amounts[i] || u.Balance != sum {
				t.Errorf("%s: update %d = %+v, want seq %d amount %d balance %d (duplicate or gap)", acct, i, u, i+1, amounts[i], sum)
				break
			}
		}
	}
	for acct := range out {
		if _, ok := in[acct]; !ok {
			t.Errorf("output for unknown account %q", acct)
		}
	}
}

// readBalances opens the "balances" LevelDB store of every task under the
// application's state dir (the application must be stopped) and returns
// the balances.
func readBalances(t *testing.T, stateDir, appID string) map[string]balance {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(stateDir, appID, "*", "balances"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no balances store under %s: %v", stateDir, err)
	}
	out := map[string]balance{}
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "CURRENT")); err != nil {
			continue
		}
		e, err := leveldb.Open(dir, leveldb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		kv := store.NewKeyValueStore("balances", e, serde.String(), serde.JSON[balance]())
		it, err := kv.All()
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			out[it.Key()] = it.Value()
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		it.Close()
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func checkBalances(t *testing.T, in payments, got map[string]balance) {
	t.Helper()
	for acct, amounts := range in {
		if b := got[acct]; b.Balance != in.sum(acct) || b.Seq != int64(len(amounts)) {
			t.Errorf("%s: store holds %+v, want balance %d after %d payments", acct, b, in.sum(acct), len(amounts))
		}
	}
}

// eosBroker returns the test's broker. The embedded kfake cluster's
// cleaner compacts whole partitions, open transactions included (Kafka's
// cleaner stops at the last stable offset): a compaction while a
// transaction is open deletes committed values that the open
// transaction's records supersede, and once that transaction aborts they
// are gone from the changelog. So on kfake the exactly-once tests turn the
// cleaner off (before any compacted topic exists, as kfake reads the
// interval when it starts its ticker); on real Kafka compaction runs as
// configured.
func eosBroker(t testing.TB) *testutil.Broker {
	t.Helper()
	b := testutil.NewBroker(t)
	if b.Embedded() == nil {
		return b
	}
	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	hour := "3600000"
	if err := admin.AlterConfig(sarama.BrokerResource, "0", map[string]*string{"log.cleaner.backoff.ms": &hour}, false); err != nil {
		t.Fatalf("turn the embedded broker's cleaner off: %v", err)
	}
	return b
}

func eosConfig(t *testing.T, b *testutil.Broker, appID, dir string) topology.Config {
	return topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, Guarantee: topology.ExactlyOnce,
		CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
	}
}

// TestAppExactlyOnceRestartsFromCommittedState runs the payments app with
// exactly-once, stops it, feeds more payments and runs it again: the
// committed output has every payment's effect exactly once, the second run
// restores only the changelog tail after its checkpoint, and the local
// store equals the sums.
func TestAppExactlyOnceRestartsFromCommittedState(t *testing.T) {
	b := eosBroker(t)
	in, out := testutil.TopicName(t, "payments"), testutil.TopicName(t, "balances")
	b.CreateTopic(t, in, 3, nil)
	b.CreateTopic(t, out, 3, nil)
	appID, dir := testutil.TopicName(t, "app"), t.TempDir()
	const accounts = 9
	sent := payments{}
	produce := func(rounds int) {
		var msgs []*sarama.ProducerMessage
		for r := 0; r < rounds; r++ {
			for i := 0; i < accounts; i++ {
				amount := int64(1 + (r*7+i*13)%50)
				sent[accountName(i)] = append(sent[accountName(i)], amount)
				msgs = append(msgs, paymentMsg(i, 3, amount))
			}
		}
		b.Produce(t, in, msgs...)
	}
	w := watchOutput(t, b, out)
	produce(30)
	ctx, cancel := context.WithCancel(context.Background())
	_, done := startApp(t, ctx, paymentsTopology(t, in, out, 0), eosConfig(t, b, appID, dir))
	w.waitComplete(t, sent, 60*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	produce(5)
	ctx2, cancel2 := context.WithCancel(context.Background())
	app, done2 := startApp(t, ctx2, paymentsTopology(t, in, out, 0), eosConfig(t, b, appID, dir))
	got := w.waitComplete(t, sent, 60*time.Second)
	restored := app.RestoredRecords()
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("second Run: %v", err)
	}
	checkExactlyOnce(t, sent, got)
	checkBalances(t, sent, readBalances(t, dir, appID))
	var total int64
	for _, n := range restored {
		total += n
	}
	t.Logf("second run restored %d changelog records (%v); %d payments before it", total, restored, 30*accounts)
	if total >= 30*accounts {
		t.Fatalf("second run restored %d records, the whole changelog: checkpoints were not used", total)
	}

	// A third instance with an empty state dir restores everything from
	// the changelog (read_committed) and continues the sums.
	produce(1)
	dir3 := t.TempDir()
	ctx3, cancel3 := context.WithCancel(context.Background())
	app3, done3 := startApp(t, ctx3, paymentsTopology(t, in, out, 0), eosConfig(t, b, appID, dir3))
	got = w.waitComplete(t, sent, 60*time.Second)
	restored = app3.RestoredRecords()
	cancel3()
	if err := <-done3; err != nil {
		t.Fatalf("third Run: %v", err)
	}
	checkExactlyOnce(t, sent, got)
	checkBalances(t, sent, readBalances(t, dir3, appID))
	total = 0
	for _, n := range restored {
		total += n
	}
	// Every committed change once, or fewer if the broker compacted the
	// changelog.
	if total < accounts || total > 35*accounts {
		t.Fatalf("fresh instance restored %d changelog records, want %d to %d", total, accounts, 35*accounts)
	}
}

// TestAppExactlyOnceFailedRecordIsRolledBack: a processing error in the
// middle of a transaction (after the failing record's store write and
// output were made, and after earlier records' outputs) does not abort
// the records before it: they are committed, while the failing record's
// partial output is never sent and its store write never reaches the
// local store or the changelog. A restart that skips the poison payment
// continues from it exactly once.
func TestAppExactlyOnceFailedRecordIsRolledBack(t *testing.T) {
	b := eosBroker(t)
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

	cfg := eosConfig(t, b, appID, dir)
	cfg.CommitInterval = time.Hour // everything before the poison is in the one open transaction
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	app, err := topology.NewApp(paymentsTopology(t, in, out, poison), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = app.Run(ctx)
	if !errors.Is(err, errPoison) {
		t.Fatalf("Run returned %v, want the poison processing error", err)
	}
	// The records before the poison are committed; its own partial
	// output was never sent at all.
	if got := len(b.ConsumeAll(t, out)); got != 3 {
		t.Fatalf("the output topic holds %d records, want the 3 before the poison", got)
	}
	before := payments{accountName(0): amounts[:3]}
	checkExactlyOnce(t, before, committedUpdates(t, b, out))
	if got := committedBalances(t, b, appID)[accountName(0)]; got.Balance != 23 || got.Seq != 3 {
		t.Fatalf("committed changelog holds %+v, want balance 23 after 3 payments", got)
	}
	if off := committedOffset(t, b, appID, in, 0); off != 3 {
		t.Fatalf("committed offset %d, want 3 (the poison)", off)
	}
	checkBalances(t, before, readBalances(t, dir, appID))

	// Restart, dropping the poison payment: the sums go on from 23.
	w := watchOutput(t, b, out)
	app2, err := topology.NewApp(paymentsTopology(t, in, out, poison, skipPoison), eosConfig(t, b, appID, dir))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app2.Run(runCtx) }()
	// With Continue, the poison record's own output and write stay (the
	// handler drops the record, not what it already did): 6 updates.
	want := payments{accountName(0): amounts}
	got := w.waitComplete(t, want, 60*time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("second Run: %v", err)
	}
	checkExactlyOnce(t, want, got)
	checkBalances(t, want, readBalances(t, dir, appID))
}

// TestAppExactlyOnceProductionErrorAborts: the broker refuses one output
// record (larger than the output topic's max.message.bytes) in a
// transaction that also holds other outputs and changelog records. The
// transaction is aborted and the app stops with an error naming the
// topic; nothing of the transaction is visible to read_committed
// consumers and no offset is committed.
func TestAppExactlyOnceProductionErrorAborts(t *testing.T) {
	b := eosBroker(t)
	in, out := testutil.TopicName(t, "payments"), testutil.TopicName(t, "receipts")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, map[string]string{"max.message.bytes": "2048"})
	appID := testutil.TopicName(t, "app")
	var msgs []*sarama.ProducerMessage
	for _, a := range []int64{10, 20, 5000, 30} {
		msgs = append(msgs, paymentMsg(0, 1, a))
	}
	b.Produce(t, in, msgs...)

	// Each payment adds to the account's sum and writes a receipt of
	// amount bytes.
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
		return ctx.Forward(processor.Revalue(r, strings.Repeat("x", int(r.Value))))
	}, topology.WithStores("sums"))
	topology.Sink(tb, "out", out, receipts, serde.String(), serde.String())
	topo, err := tb.Build()
	if err != nil {
		t.Fatal(err)
	}
	app, err := topology.NewApp(topo, eosConfig(t, b, appID, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = app.Run(ctx)
	if !errors.Is(err, sarama.ErrMessageSizeTooLarge) || !strings.Contains(err.Error(), out) {
		t.Fatalf("Run returned %v, want a MESSAGE_TOO_LARGE error naming %s", err, out)
	}
	t.Logf("app stopped with: %v", err)
	if got := b.ConsumeAllCommitted(t, out); len(got) != 0 {
		t.Fatalf("read_committed sees %d receipts of an aborted transaction", len(got))
	}
	if got := b.ConsumeAllCommitted(t, store.ChangelogTopic(appID, "sums")); len(got) != 0 {
		t.Fatalf("read_committed sees %d changelog records of an aborted transaction", len(got))
	}
	if off := committedOffset(t, b, appID, in, 0); off >= 0 {
		t.Fatalf("offset %d committed for an aborted transaction", off)
	}
}
