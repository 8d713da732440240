package topology_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// The global-table kill test (issue #16's acceptance (a)): transactions
// ("<txn id>|<merchant id>", keyed by card, 3 partitions) are enriched
// from a global table of merchants whose topic has 5 partitions. Two
// instances run in their own OS processes under exactly-once; one is
// SIGKILLed mid-stream (and restarted), twice. Every transaction must come
// out exactly once, with its merchant's name (or "unknown" for the ids the
// table lacks), as the test computes from its own input.

const globalKillMerchants = 40

func merchantName(i int) string { return fmt.Sprintf("merchant-%02d-name", i) }

// buildGlobalKillTopology is the app of TestAppGlobalJoinSurvivesKills.
func buildGlobalKillTopology(in, merchants, out string) (*topology.Topology, error) {
	b := topology.New()
	txns := topology.Stream(b, "txns", in, serde.String(), serde.String())
	table := topology.GlobalTable(b, "merchants", merchants, serde.String(), serde.String())
	enriched := topology.LeftJoinGlobal(txns, table, "enrich",
		func(_ string, v string) (string, error) {
			_, m, ok := strings.Cut(v, "|")
			if !ok {
				return "", fmt.Errorf("bad transaction %q", v)
			}
			return m, nil
		},
		func(_ string, v string, name string, found bool) (string, error) {
			id, _, _ := strings.Cut(v, "|")
			if !found {
				name = "unknown"
			}
			return id + "|" + name, nil
		})
	enriched.To("out", out, serde.String(), serde.String())
	return b.Build()
}

// txnFeeder sends transactions, each to a merchant id (one in eight
// unknown to the table), until stopped, and remembers the expected
// outputs by transaction id.
type txnFeeder struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	want  map[string]string
	err   error
}

func startTxnFeeder(t *testing.T, b *testutil.Broker, topic string, interval time.Duration) *txnFeeder {
	t.Helper()
	p, err := sarama.NewSyncProducer(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := &txnFeeder{stopc: make(chan struct{}), done: make(chan struct{}), want: map[string]string{}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	go func() { // owned by stop (or the test's cleanup)
		defer close(f.done)
		defer p.Close()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for round := 0; ; round++ {
			select {
			case <-f.stopc:
				return
			case <-tick.C:
			}
			var msgs []*sarama.ProducerMessage
			want := map[string]string{}
			for i := range 10 {
				id := fmt.Sprintf("tx-%05d-%d", round, i)
				m := rng.IntN(globalKillMerchants + globalKillMerchants/8)
				name := "unknown"
				if m < globalKillMerchants {
					name = merchantName(m)
				}
				want[id] = id + "|" + name
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("card-%d", rng.IntN(50))),
					Value: sarama.StringEncoder(fmt.Sprintf("%s|m-%02d", id, m))})
			}
			if err := p.SendMessages(msgs); err != nil {
				f.mu.Lock()
				f.err = err
				f.mu.Unlock()
				return
			}
			f.mu.Lock()
			for k, v := range want {
				f.want[k] = v
			}
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { f.stop(t) })
	return f
}

func (f *txnFeeder) stop(t *testing.T) map[string]string {
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
	return f.want
}

func TestAppGlobalJoinSurvivesKills(t *testing.T) {
	b := eosBroker(t)
	in, merchants, out := testutil.TopicName(t, "txns"), testutil.TopicName(t, "merchants"), testutil.TopicName(t, "enriched")
	b.CreateTopic(t, in, 3, nil)
	b.CreateTopic(t, merchants, 5, map[string]string{"cleanup.policy": "compact"})
	b.CreateTopic(t, out, 3, nil)
	var ms []*sarama.ProducerMessage
	for i := range globalKillMerchants {
		ms = append(ms, &sarama.ProducerMessage{Topic: merchants, Key: sarama.StringEncoder(fmt.Sprintf("m-%02d", i)),
			Value: sarama.StringEncoder(merchantName(i))})
	}
	b.Produce(t, merchants, ms...)
	appID := testutil.TopicName(t, "app")
	vars := func(dir string) map[string]string {
		return map[string]string{
			"IN": in, "TABLE": merchants, "OUT": out, "APP_ID": appID, "BROKERS": strings.Join(b.Addrs(), ","),
			"STATE_DIR": dir, "GUARANTEE": "exactly-once", "COMMIT_MS": "100",
		}
	}
	f := startTxnFeeder(t, b, in, 20*time.Millisecond)
	a, bi := runKilling(t, "global", "globaljoin", vars)
	want := f.stop(t)
	var got map[string][]string
	read := func() {
		got = map[string][]string{}
		for _, m := range b.ConsumeAllCommitted(t, out) {
			id, _, _ := strings.Cut(string(m.Value), "|")
			got[id] = append(got[id], string(m.Value))
		}
	}
	deadline := time.Now().Add(120 * time.Second)
	for read(); len(got) < len(want) && time.Now().Before(deadline); read() {
		time.Sleep(250 * time.Millisecond)
	}
	a.stop(t)
	bi.stop(t)
	if bad := exactlyOnce(want, got); len(bad) > 0 {
		t.Fatalf("%d of %d transactions wrong, e.g. %v", len(bad), len(want), bad[:min(len(bad), 10)])
	}
	t.Logf("%d transactions enriched exactly once from a 5-partition global table, through 2 kills", len(want))
}
