package topology_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// The tests of this file fence a running exactly-once task from outside,
// deterministically, in the two ways Kafka fences a transactional
// producer: another producer registers the task's transactional id (what
// a new owner does), or the broker aborts a transaction that outlived its
// timeout. Either way the task's uncommitted work must be dropped and the
// task re-created (the instance rejoins the group and gets it back); the
// application keeps running and the committed output shows every input's
// effect exactly once.

// gate blocks the processing of one chosen payment, the first time it is
// processed, until the test releases it: before the payment's store write
// and output when first is set, else after them.
//
// The app commits only when its processor asks (the commit interval is an
// hour): after every payment but, unless first is set, the one just before
// the gated one, preGate. A requested commit happens before the task's next
// record, even one already buffered with it, and a record's output goes to
// the producer only when its processing ends: the gated payment then holds
// its transaction open with preGate's output in it (first unset), or holds
// an empty transaction (first set).
type gate struct {
	amount   int64
	first    bool
	once     sync.Once
	blocked  chan struct{}
	released chan struct{}
}

func newGate(amount int64, first bool) *gate {
	return &gate{amount: amount, first: first, blocked: make(chan struct{}), released: make(chan struct{})}
}

// preGate is the payment just before the gated one.
func (g *gate) preGate() int64 { return g.amount - 1 }

// commitAfter reports whether the processor asks for a commit after the
// payment of amount.
func (g *gate) commitAfter(amount int64) bool {
	return g.first || amount != g.preGate()
}

func (g *gate) hold(amount int64) {
	if amount != g.amount {
		return
	}
	g.once.Do(func() {
		close(g.blocked)
		<-g.released
	})
}

func (g *gate) waitBlocked(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-g.blocked:
	case <-time.After(timeout):
		t.Fatalf("the gated payment was not processed within %v", timeout)
	}
}

// release lets the gated payment go on; safe to call more than once.
func (g *gate) release() {
	select {
	case <-g.released:
	default:
		close(g.released)
	}
}

// gatedPaymentsTopology is the payments app (per-account sums in a logged
// store, every new balance to out) whose processor waits for the gate on
// the gate's payment, before or after its store write and output.
// With unlogged, the store has no changelog (its committed content lives
// in the state dir only), so that the task's only output partition is
// out's.
func gatedPaymentsTopology(t *testing.T, in, out string, g *gate, unlogged bool) *topology.Topology {
	t.Helper()
	b := topology.New()
	src := topology.Source(b, "payments", in, serde.String(), serde.Int64())
	var opts []topology.StoreOption
	if unlogged {
		opts = append(opts, topology.WithoutLogging())
	}
	topology.KeyValueStore(b, "balances", serde.String(), serde.JSON[balance](), opts...)
	updates := topology.ProcessFunc(b, "sum", src, func(ctx processor.Context[string, balanceUpdate], r processor.Record[string, int64]) error {
		if g.first {
			g.hold(r.Value)
		}
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
		if !g.first {
			g.hold(r.Value)
		}
		if g.commitAfter(r.Value) {
			ctx.RequestCommit()
		}
		return nil
	}, topology.WithStores("balances"))
	topology.Sink(b, "balances-out", out, updates, serde.String(), serde.JSON[balanceUpdate]())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// logBuffer keeps an App's log lines (and copies them to the test log).
type logBuffer struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (l *logBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}

func capturedLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	buf := &logBuffer{t: t}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelWarn})), buf
}

// fenceTransactionalID registers tid with the transaction coordinator, as
// a new owner of the task does: the coordinator bumps the id's epoch and
// aborts the transaction its current producer has open.
func fenceTransactionalID(t *testing.T, b *testutil.Broker, tid string) {
	t.Helper()
	cfg := b.SaramaConfig()
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Transaction.ID = tid
	p, err := sarama.NewAsyncProducer(b.Addrs(), cfg)
	if err != nil {
		t.Fatalf("register transactional id %q: %v", tid, err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("close the fencing producer: %v", err)
	}
}

// txnState returns the coordinator's view of a transactional id: its
// current producer epoch and transaction state.
func txnState(t *testing.T, client sarama.Client, tid string) (int16, string) {
	t.Helper()
	coord, err := client.TransactionCoordinator(tid)
	if err != nil {
		t.Fatalf("coordinator of %q: %v", tid, err)
	}
	resp, err := coord.DescribeTransactions(&sarama.DescribeTransactionsRequest{TransactionalIDs: []string{tid}})
	if err != nil {
		t.Fatalf("describe transaction %q: %v", tid, err)
	}
	if len(resp.TransactionStates) != 1 || resp.TransactionStates[0].ErrorCode != sarama.ErrNoError {
		t.Fatalf("describe transaction %q: %+v", tid, resp.TransactionStates)
	}
	st := resp.TransactionStates[0]
	return st.ProducerEpoch, st.TransactionState
}

// fenceCase describes one way of fencing the gated payments app.
type fenceCase struct {
	// holdFirst holds the gated payment before its writes: its
	// transaction is then empty when the fence happens.
	holdFirst bool
	// after is the number of payments that follow the gated one.
	after int
	// unlogged turns the store's changelog off.
	unlogged bool
	// configure adjusts the App's configuration.
	configure func(*topology.Config)
	// fence fences task 0_0's producer (transactional id tid) while the
	// gated payment is held.
	fence func(b *testutil.Broker, client sarama.Client, tid string)
}

// runFenceCase runs the gated payments app alone on a 1-partition topic
// (one task, 0_0): it commits a first round, then processes the gate's
// payment and holds it; c.fence fences the task's producer meanwhile; c.after
// more payments follow the gated one. Once released, the app must notice
// the fence, drop the task's uncommitted work, re-create the task and
// finish: the committed output is exactly once, and Run has not returned.
func runFenceCase(t *testing.T, c fenceCase) {
	b := eosBroker(t)
	in, out := testutil.TopicName(t, "payments"), testutil.TopicName(t, "balances")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	appID := testutil.TopicName(t, "app")
	tid := appID + "-0_0" // the transactional id of task 0_0
	const gated = 777
	sent := payments{}
	produce := func(amounts ...int64) {
		var msgs []*sarama.ProducerMessage
		for i, a := range amounts {
			acct := i % 3
			sent[accountName(acct)] = append(sent[accountName(acct)], a)
			msgs = append(msgs, paymentMsg(acct, 1, a))
		}
		b.Produce(t, in, msgs...)
	}
	w := watchOutput(t, b, out)
	produce(5, 7, 11, 13, 17, 19)
	g := newGate(gated, c.holdFirst)
	t.Cleanup(g.release)
	log, logs := capturedLogger(t)
	cfg := eosConfig(t, b, appID, t.TempDir())
	cfg.Logger = log
	cfg.CommitInterval = time.Hour // the processor asks for every commit
	if c.configure != nil {
		c.configure(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, done := startApp(t, ctx, gatedPaymentsTopology(t, in, out, g, c.unlogged), cfg)
	w.waitComplete(t, sent, 60*time.Second)

	rest := []int64{g.preGate(), gated}
	for i := 0; i < c.after; i++ {
		rest = append(rest, int64(20+i%50))
	}
	produce(rest...)
	g.waitBlocked(t, 30*time.Second)
	client, err := sarama.NewClient(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c.fence(b, client, tid)
	g.release()

	got := waitCompleteWhileRunning(t, w, sent, done, 90*time.Second)
	if !logs.contains("task fenced") {
		t.Fatal(`the app never logged "task fenced": the test did not fence it`)
	}
	if s := app.State(); s != topology.StateRunning {
		t.Errorf("state %v after the fenced task was re-created, want running", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkExactlyOnce(t, sent, got)
	all := len(b.ConsumeAll(t, out))
	t.Logf("%d committed updates; %d records in the log hidden from read_committed (the fenced transaction's)", countUpdates(got), all-countUpdates(got))
	if !c.holdFirst && all <= countUpdates(got) {
		t.Fatalf("the output log holds nothing beyond the committed updates: the fenced transaction wrote nothing, the test proved nothing")
	}
}

// waitCompleteWhileRunning waits until the committed output has an update
// for every payment, failing at once if Run returns first.
func waitCompleteWhileRunning(t *testing.T, w *outputWatcher, in payments, done <-chan error, timeout time.Duration) map[string][]balanceUpdate {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-done:
			t.Fatalf("the fenced instance stopped: Run returned %v", err)
		default:
		}
		got := w.snapshot()
		complete := true
		for acct, amounts := range in {
			if len(got[acct]) < len(amounts) {
				complete = false
			}
		}
		if complete {
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
			t.Fatalf("after %v the committed output is incomplete while Run is still running: %v", timeout, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAppExactlyOnceFencedByNewOwner fences the task by registering its
// transactional id, as an instance that took the task over does, at two
// moments; the task's next write after the fence gets a different answer
// from each broker:
//
//   - the fenced transaction already holds output: the next write to that
//     partition is refused with INVALID_PRODUCER_EPOCH by Kafka, but with
//     INVALID_TXN_STATE by the embedded broker (the partition is in no
//     transaction of that producer any more);
//   - the transaction is still empty: adding the first partition to it is
//     refused with PRODUCER_FENCED by both.
//
// Every one means that another instance owns the task: the outcome must be
// the same fence, never a fatal error. The test waits for the coordinator
// to show the transaction's state before fencing it, and in the first case
// the store has no changelog (whose partition, added at the commit, could
// be refused with PRODUCER_FENCED before the refused write's answer
// arrives), so each case takes the path it names on every run.
func TestAppExactlyOnceFencedByNewOwner(t *testing.T) {
	skipUnderRaceForSarama(t)
	t.Run("write to a partition in the transaction", func(t *testing.T) {
		runFenceCase(t, fenceCase{after: 30, unlogged: true, fence: func(b *testutil.Broker, client sarama.Client, tid string) {
			waitTxnState(t, client, tid, "Ongoing")
			fenceTransactionalID(t, b, tid)
		}})
	})
	t.Run("first write of the transaction", func(t *testing.T) {
		runFenceCase(t, fenceCase{holdFirst: true, after: 30, fence: func(b *testutil.Broker, client sarama.Client, tid string) {
			if _, s := txnState(t, client, tid); s == "Ongoing" {
				t.Fatalf("the held transaction is %s, want it empty", s)
			}
			fenceTransactionalID(t, b, tid)
		}})
	})
}

// waitTxnState waits until the coordinator reports state for tid.
func waitTxnState(t *testing.T, client sarama.Client, tid, state string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, s := txnState(t, client, tid)
		if s == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("transaction %q is %s after 30s, want %s", tid, s, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAppExactlyOnceTransactionTimeoutFence: the processor holds the task
// past its transaction timeout, so the broker aborts the transaction and
// bumps the producer's epoch: the task is fenced although no rebalance
// happened and nobody else owns it. Meanwhile its partition's queue is
// full (MaxBufferedRecords 1, hundreds of payments waiting), so the fetch
// goroutine is blocked pushing into it. The fenced task must still be
// noticed and re-created; before, the push never woke and the task stayed
// dead while the app reported running.
func TestAppExactlyOnceTransactionTimeoutFence(t *testing.T) {
	skipUnderRaceForSarama(t)
	configure := func(c *topology.Config) {
		c.MaxBufferedRecords = 1
		c.ConfigureSarama = func(sc *sarama.Config) { sc.Producer.Transaction.Timeout = 2 * time.Second }
	}
	runFenceCase(t, fenceCase{after: 300, configure: configure, fence: func(_ *testutil.Broker, client sarama.Client, tid string) {
		// Wait until the coordinator has aborted the transaction on its
		// timeout (Kafka looks for expired transactions every 10s by
		// default), which bumps the producer's epoch.
		epoch, state := txnState(t, client, tid)
		t.Logf("held transaction: epoch %d, state %s", epoch, state)
		deadline := time.Now().Add(60 * time.Second)
		for {
			e, s := txnState(t, client, tid)
			if e > epoch {
				t.Logf("the coordinator aborted the transaction: epoch %d, state %s", e, s)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the coordinator did not abort the held transaction within 60s (epoch %d, state %s)", e, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}})
}
