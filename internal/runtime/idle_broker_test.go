package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/runtime"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// idleBroker is a test broker whose embedded log cleaner is off, so that
// the transaction markers a test writes into a compacted topic stay there
// (kfake compacts them away at once otherwise); real Kafka is used as
// configured.
func idleBroker(t *testing.T) *testutil.Broker {
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

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// diff says what got lacks of want and has beyond it (both sorted).
func diff(got, want []string) string {
	var missing, extra []string
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok {
			extra = append(extra, g)
		}
	}
	return fmt.Sprintf("%d results, %d wanted; missing %v; unexpected %v", len(got), len(want), missing, extra)
}

// joinTopology joins txns with the customers table twice: inner into
// inner, left (a missing customer gives "none") into left.
func joinTopology(t *testing.T, txns, customers, inner, left string) *topology.Topology {
	t.Helper()
	b := topology.New()
	table := topology.TableOf(b, "customers", customers, serde.String(), serde.String())
	stream := topology.Stream(b, "txns", txns, serde.String(), serde.String())
	topology.Join(stream, table, "inner", func(_ string, tx, name string) (string, error) {
		return tx + "|" + name, nil
	}).To("to-inner", inner, serde.String(), serde.String())
	topology.LeftJoin(stream, table, "left", func(_ string, tx, name string, found bool) (string, error) {
		if !found {
			name = "none"
		}
		return tx + "|" + name, nil
	}).To("to-left", left, serde.String(), serde.String())
	tp, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// runJoin runs the join app until its left join has produced n results,
// and returns the inner and left join results ("key=value"), sorted.
func runJoin(t *testing.T, b *testutil.Broker, g topology.Guarantee, tp *topology.Topology, inner, left string, n int) (gotInner, gotLeft []string) {
	t.Helper()
	app, err := topology.NewApp(tp, topology.Config{
		ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(),
		Guarantee: g, CommitInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	read := func(topic string) []string {
		var out []string
		for _, m := range b.ConsumeAllCommitted(t, topic) {
			out = append(out, fmt.Sprintf("%s=%s", m.Key, m.Value))
		}
		slices.Sort(out)
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		gotLeft = read(left)
		if len(gotLeft) >= n {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d left-join results after 60 s (the task stalls?): %v", len(gotLeft), n, gotLeft)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The inner join's results come from the same records, in the same
	// commits: all that will come are there within a few commits.
	innerBy := time.Now().Add(5 * time.Second)
	for {
		gotInner = read(inner)
		if len(gotInner) >= n || time.Now().After(innerBy) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return gotInner, gotLeft
}

// TestJoinWaitsForTableRecordsOnTheBroker: a stream–table join whose table
// partition's records are all on the broker but whose fetch is slow (the
// claim hands the table's records to the task only two seconds after the
// first, four times the 500 ms after which brook used to give up waiting)
// joins every transaction with its customer: the task keeps the
// transactions back while the table partition has records left to fetch,
// however long the fetch takes. Before the fix, the task waited 500 ms
// and then joined the transactions against a table holding only the first
// customer: 49 of 50 inner-join results were lost, without an error.
func TestJoinWaitsForTableRecordsOnTheBroker(t *testing.T) {
	for _, g := range []topology.Guarantee{topology.AtLeastOnce, topology.ExactlyOnce} {
		t.Run(fmt.Sprint("guarantee=", g), func(t *testing.T) {
			b := idleBroker(t)
			name := func(s string) string { return testutil.TopicName(t, s) }
			txns, customers, inner, left := name("txns"), name("customers"), name("inner"), name("left")
			b.CreateTopic(t, txns, 1, nil)
			b.CreateTopic(t, customers, 1, map[string]string{"cleanup.policy": "compact"})
			b.CreateTopic(t, inner, 1, nil)
			b.CreateTopic(t, left, 1, nil)

			const n = 50
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			var table, stream []*sarama.ProducerMessage
			var want []string
			for i := range n {
				c := fmt.Sprint("c", i)
				at := base.Add(time.Duration(i) * 10 * time.Millisecond)
				table = append(table, &sarama.ProducerMessage{Key: sarama.StringEncoder(c), Value: sarama.StringEncoder("name-" + c), Timestamp: at})
				// Each transaction comes 5 ms after its customer.
				stream = append(stream, &sarama.ProducerMessage{Key: sarama.StringEncoder(c), Value: sarama.StringEncoder(fmt.Sprint("tx", i)), Timestamp: at.Add(5 * time.Millisecond)})
				want = append(want, fmt.Sprintf("%s=tx%d|name-%s", c, i, c))
			}
			slices.Sort(want)
			b.Produce(t, customers, table...)
			b.Produce(t, txns, stream...)

			// The table's claim hands over its first record at once and
			// the rest two seconds later: a slow fetch.
			var once sync.Once
			reset := runtime.SetClaimHook(func(ctx context.Context, m *sarama.ConsumerMessage) {
				if m.Topic != customers || m.Offset != 1 {
					return
				}
				once.Do(func() {
					select {
					case <-ctx.Done():
					case <-time.After(2 * time.Second):
					}
				})
			})
			defer reset()

			gotInner, gotLeft := runJoin(t, b, g, joinTopology(t, txns, customers, inner, left), inner, left, n)
			if !slices.Equal(gotLeft, want) {
				t.Errorf("left join: transactions joined before their customers were applied: %v", diff(gotLeft, want))
			}
			if !slices.Equal(gotInner, want) {
				t.Errorf("inner join: %d of %d results: %v", len(gotInner), n, diff(gotInner, want))
			}
		})
	}
}

// TestJoinDoesNotStallOnTableTransactionMarkers: a table topic written by
// a transactional producer ends in offsets no consumer receives (the
// commit and abort markers, an aborted record, and under read_committed a
// transaction still open), so its partition's fetch position stays below
// its high watermark for good. The join must not wait for them (Config's
// default MaxTaskIdle waits without a bound for records on the broker):
// the task reads the gap, finds nothing it would receive, and joins the
// transactions.
func TestJoinDoesNotStallOnTableTransactionMarkers(t *testing.T) {
	for _, g := range []topology.Guarantee{topology.AtLeastOnce, topology.ExactlyOnce} {
		t.Run(fmt.Sprint("guarantee=", g), func(t *testing.T) {
			b := idleBroker(t)
			name := func(s string) string { return testutil.TopicName(t, s) }
			txns, customers, inner, left := name("txns"), name("customers"), name("inner"), name("left")
			b.CreateTopic(t, txns, 1, nil)
			b.CreateTopic(t, customers, 1, map[string]string{"cleanup.policy": "compact"})
			b.CreateTopic(t, inner, 1, nil)
			b.CreateTopic(t, left, 1, nil)

			const n = 10
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			cfg := b.SaramaConfig()
			cfg.Producer.Idempotent = true
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Net.MaxOpenRequests = 1
			cfg.Producer.Partitioner = sarama.NewManualPartitioner
			cfg.Producer.Transaction.ID = name("txn")
			p, err := sarama.NewSyncProducer(b.Addrs(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			send := func(key, value string, at time.Time) {
				t.Helper()
				m := &sarama.ProducerMessage{Topic: customers, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(value), Timestamp: at}
				if _, _, err := p.SendMessage(m); err != nil {
					t.Fatal(err)
				}
			}
			var stream []*sarama.ProducerMessage
			var wantInner, wantLeft []string
			if err := p.BeginTxn(); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				c := fmt.Sprint("c", i)
				send(c, "name-"+c, base)
				stream = append(stream, &sarama.ProducerMessage{Key: sarama.StringEncoder(c), Value: sarama.StringEncoder(fmt.Sprint("tx", i)),
					Timestamp: base.Add(time.Duration(i+1) * time.Second)})
				wantInner = append(wantInner, fmt.Sprintf("%s=tx%d|name-%s", c, i, c))
				wantLeft = append(wantLeft, fmt.Sprintf("%s=tx%d|name-%s", c, i, c))
			}
			if err := p.CommitTxn(); err != nil {
				t.Fatal(err)
			}
			// An aborted update of c0: a read_committed consumer skips it,
			// a read_uncommitted one applies it.
			if err := p.BeginTxn(); err != nil {
				t.Fatal(err)
			}
			send("c0", "aborted", base)
			if err := p.AbortTxn(); err != nil {
				t.Fatal(err)
			}
			if g == topology.ExactlyOnce {
				// A transaction left open while the app runs: its record
				// lies below the high watermark but above the last
				// stable offset, which a read_committed consumer cannot
				// pass until the transaction ends.
				if err := p.BeginTxn(); err != nil {
					t.Fatal(err)
				}
				send("c1", "open", base)
				defer func() {
					if err := p.AbortTxn(); err != nil {
						t.Errorf("abort the open transaction: %v", err)
					}
				}()
			} else {
				wantInner[0] = "c0=tx0|aborted"
				wantLeft[0] = "c0=tx0|aborted"
			}
			slices.Sort(wantInner)
			slices.Sort(wantLeft)
			b.Produce(t, txns, stream...)

			gotInner, gotLeft := runJoin(t, b, g, joinTopology(t, txns, customers, inner, left), inner, left, n)
			if !slices.Equal(gotLeft, wantLeft) {
				t.Errorf("left join: %v", diff(gotLeft, wantLeft))
			}
			if !slices.Equal(gotInner, wantInner) {
				t.Errorf("inner join: %v", diff(gotInner, wantInner))
			}
		})
	}
}
