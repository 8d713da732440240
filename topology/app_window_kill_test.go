package topology_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// The windowed-count kill test (issue #15's acceptance): card payments
// ("<customer>|<seq>", keyed by card) are grouped by customer — through
// the repartition topic "<app>-by-customer-repartition" — and counted per
// customer in 5-second tumbling windows with 1 second of grace; the count
// of each window is emitted once, when the window closes. Two instances run
// in their own OS processes under exactly-once; one is SIGKILLed mid-stream
// (and restarted), twice. The final counts must equal the counts the test
// computes from its own input, each window exactly once; afterwards a
// fresh instance restores the window store from its changelog and answers
// queries with the same counts.

const (
	killWindow = 5 * time.Second
	killGrace  = time.Second
	killStep   = 50 * time.Millisecond // event time between rounds
)

// buildWindowKillTopology is the app of TestAppWindowedCountSurvivesKills.
func buildWindowKillTopology(in, out string) (*topology.Topology, error) {
	b := topology.New()
	txns := topology.Stream(b, "txns", in, serde.String(), serde.String())
	byCustomer := topology.GroupBy(txns, "by-customer", customerOf, serde.String(), topology.WithPartitions(3))
	finals := topology.WindowedBy(byCustomer, topology.Tumbling(killWindow).Grace(killGrace)).
		Count("customer-counts", topology.WithRetention(time.Hour)).
		Suppress("customer-finals", topology.UntilWindowCloses()).
		ToStream("finals")
	counts := topology.MapValues(finals, "final-count", func(_ topology.Windowed[string], c topology.Change[int64]) (int64, error) {
		return c.Value, nil
	})
	counts.To("out", out, topology.WindowedSerde(serde.String()), serde.Int64())
	return b.Build()
}

func customerOf(_ string, v string) (string, error) {
	c, _, ok := strings.Cut(v, "|")
	if !ok {
		return "", fmt.Errorf("bad payment %q", v)
	}
	return c, nil
}

// windowFeeder sends one payment per customer every interval, with event
// times t0 + round × killStep, to a one-partition topic (one upstream task
// writes the repartition topic in timestamp order, so no record is late
// however the instances are killed), and counts them per window.
type windowFeeder struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	want  map[string]int64 // "<customer>@<start ms>" → count
	last  time.Time
	err   error
}

func startWindowFeeder(t *testing.T, b *testutil.Broker, topic string, customers int, t0 time.Time, interval time.Duration) *windowFeeder {
	t.Helper()
	p, err := sarama.NewSyncProducer(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := &windowFeeder{stopc: make(chan struct{}), done: make(chan struct{}), want: map[string]int64{}}
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
			at := t0.Add(time.Duration(round) * killStep)
			var msgs []*sarama.ProducerMessage
			for c := range customers {
				// Customers pay with one of a few cards each.
				card := fmt.Sprintf("card-%d-%d", c, round%3)
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(card),
					Value: sarama.StringEncoder(fmt.Sprintf("cust-%02d|%d", c, round)), Timestamp: at})
			}
			if err := p.SendMessages(msgs); err != nil {
				f.mu.Lock()
				f.err = err
				f.mu.Unlock()
				return
			}
			f.mu.Lock()
			start := at.UnixMilli() - at.UnixMilli()%killWindow.Milliseconds()
			for c := range customers {
				f.want[fmt.Sprintf("cust-%02d@%d", c, start)]++
			}
			f.last = at
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { f.stop(t) })
	return f
}

// stop ends the feeder and returns the expected count of every window and
// the last event time sent.
func (f *windowFeeder) stop(t *testing.T) (map[string]int64, time.Time) {
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
	return f.want, f.last
}

// runKilling starts instances A and B of the helper app app (logs named
// after name) on their own state directories, SIGKILLs A twice at random
// moments while both run, restarting it on its directory, and returns the
// running A and B once A runs again.
func runKilling(t *testing.T, name, app string, vars func(dir string) map[string]string) (a, b *instance) {
	t.Helper()
	dirA, dirB := t.TempDir(), t.TempDir()
	a = startInstance(t, name+"-a", app, vars(dirA))
	b = startInstance(t, name+"-b", app, vars(dirB))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	for k := range 2 {
		a.waitLog(t, runningLog, 60*time.Second)
		b.waitLog(t, runningLog, 60*time.Second)
		time.Sleep(time.Duration(1000+rng.IntN(1500)) * time.Millisecond) // a random moment mid-stream, not a timing assertion
		a.kill(t)
		t.Logf("kill %d of instance A", k+1)
		time.Sleep(time.Duration(300+rng.IntN(1000)) * time.Millisecond)
		a = startInstance(t, fmt.Sprintf("%s-a-%d", name, k+1), app, vars(dirA))
	}
	a.waitLog(t, runningLog, 60*time.Second)
	time.Sleep(time.Second) // let A process after its restart before the input ends
	return a, b
}

// exactlyOnce compares outputs by id with the expected one per id: it
// lists ids with a missing, repeated or wrong output and unexpected ids,
// sorted.
func exactlyOnce[V comparable](want map[string]V, got map[string][]V) []string {
	var bad []string
	for id, w := range want {
		if g := got[id]; len(g) != 1 || g[0] != w {
			bad = append(bad, fmt.Sprintf("%s: got %v, want [%v]", id, g, w))
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			bad = append(bad, fmt.Sprintf("%s: unexpected %v", id, g))
		}
	}
	sort.Strings(bad)
	return bad
}

func TestAppWindowedCountSurvivesKills(t *testing.T) {
	b := eosBroker(t)
	in, out := testutil.TopicName(t, "payments"), testutil.TopicName(t, "finals")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 3, nil)
	appID := testutil.TopicName(t, "app")
	const customers = 8
	t0 := time.Now().Truncate(killWindow).Add(-time.Hour)
	vars := func(dir string) map[string]string {
		return map[string]string{
			"IN": in, "OUT": out, "APP_ID": appID, "BROKERS": strings.Join(b.Addrs(), ","),
			"STATE_DIR": dir, "GUARANTEE": "exactly-once", "COMMIT_MS": "100",
		}
	}
	f := startWindowFeeder(t, b, in, customers, t0, 20*time.Millisecond)
	a, bi := runKilling(t, "win", "wincount", vars)
	want, last := f.stop(t)
	// Close every window: one more payment per customer, past the last
	// window's end plus grace (its own window stays open).
	flushAt := last.Add(killWindow + killGrace + killStep)
	var flush []*sarama.ProducerMessage
	for c := range customers {
		flush = append(flush, &sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder("flush"),
			Value: sarama.StringEncoder(fmt.Sprintf("cust-%02d|flush", c)), Timestamp: flushAt})
	}
	b.Produce(t, in, flush...)

	keys := topology.WindowedSerde(serde.String())
	var got map[string][]int64
	read := func() {
		got = map[string][]int64{}
		for _, m := range b.ConsumeAllCommitted(t, out) {
			k, err := keys.Deserialize(out, m.Key)
			if err != nil {
				t.Fatal(err)
			}
			n, err := serde.Int64().Deserialize(out, m.Value)
			if err != nil {
				t.Fatal(err)
			}
			if want := k.Start.Add(killWindow); !k.End.Equal(want) {
				t.Fatalf("window %v ends at %v, want %v", k, k.End, want)
			}
			id := fmt.Sprintf("%s@%d", k.Key, k.Start.UnixMilli())
			got[id] = append(got[id], n)
		}
	}
	deadline := time.Now().Add(120 * time.Second)
	for read(); len(got) < len(want) && time.Now().Before(deadline); read() {
		time.Sleep(250 * time.Millisecond)
	}
	a.stop(t)
	bi.stop(t)
	if bad := exactlyOnce(want, got); len(bad) > 0 {
		t.Fatalf("%d of %d windows wrong, e.g. %v", len(bad), len(want), bad[:min(len(bad), 10)])
	}
	t.Logf("%d windows, each final exactly once and exact, through 2 kills", len(want))

	// A fresh instance restores the window store from its changelog and
	// answers queries with the same counts.
	topo, err := buildWindowKillTopology(in, out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, done := startApp(t, ctx, topo, eosConfig(t, b, appID, t.TempDir()))
	view, err := topology.QueryWindow[string, topology.ValueAndTimestamp[int64]](app, "customer-counts")
	if err != nil {
		t.Fatal(err)
	}
	from, to := t0, last
	for deadline := time.Now().Add(60 * time.Second); ; {
		queried := map[string]int64{}
		it, err := view.FetchAll(from, to)
		if err == nil {
			for it.Next() {
				queried[fmt.Sprintf("%s@%d", it.Key().Key, it.Key().Start.UnixMilli())] = it.Value().Value
			}
			err = it.Err()
			it.Close()
		}
		if err == nil && fmt.Sprint(queried) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queried %d windows (err %v), want the %d counted", len(queried), err, len(want))
		}
		time.Sleep(250 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
