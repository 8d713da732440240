package topology_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// repartitionCountTopology re-keys card events by merchant (the value)
// and counts them per merchant through the repartition topic
// "<app>-by-merchant-repartition" into the store "merchant-counts".
func repartitionCountTopology(t testing.TB, in, out string) *topology.Topology {
	t.Helper()
	b := topology.New()
	byMerchant := topology.Map(topology.Stream(b, "events", in, serde.String(), serde.String()), "key-by-merchant",
		func(_ string, merchant string) (string, string, error) { return merchant, merchant, nil })
	g := byMerchant.GroupByKey(topology.WithRepartitionName("by-merchant"))
	topology.Count(g, "merchant-counts").ToStream("count-changes").
		To("counts-out", out, serde.String(), topology.ChangeSerde(serde.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestAppCountThroughRepartitionEOS: Map -> GroupByKey -> Count runs
// through the repartition topic under exactly-once; the topic is created
// with the source's partition count; a restart on an empty state
// directory (state from the changelog) continues the counts, and the
// committed output holds every count of every merchant exactly once, in
// order (1, 2, ..., n).
func TestAppCountThroughRepartitionEOS(t *testing.T) {
	b := eosBroker(t)
	in, out := testutil.TopicName(t, "events"), testutil.TopicName(t, "counts")
	b.CreateTopic(t, in, 3, nil)
	b.CreateTopic(t, out, 2, nil)
	appID := testutil.TopicName(t, "app")
	want := map[string]int64{}
	seq := 0
	produce := func(n int) {
		var msgs []*sarama.ProducerMessage
		for range n {
			merchant := fmt.Sprintf("m%d", seq%7)
			want[merchant]++
			msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(fmt.Sprintf("card%d", seq)),
				Value: sarama.StringEncoder(merchant), Partition: int32(seq % 3)})
			seq++
		}
		b.Produce(t, in, msgs...)
	}
	// counts returns every committed count per merchant, in output order.
	counts := func() map[string][]int64 {
		got := map[string][]int64{}
		for _, m := range b.ConsumeAllCommitted(t, out) {
			if len(m.Value) != 8 {
				t.Fatalf("output value %x is not an int64", m.Value)
			}
			got[string(m.Key)] = append(got[string(m.Key)], int64(binary.BigEndian.Uint64(m.Value)))
		}
		return got
	}
	done := func(got map[string][]int64) bool {
		for k, n := range want {
			if c := got[k]; len(c) == 0 || c[len(c)-1] != n {
				return false
			}
		}
		return true
	}
	run := func() {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		app, errc := startApp(t, ctx, repartitionCountTopology(t, in, out), eosConfig(t, b, appID, t.TempDir()))
		deadline := time.Now().Add(90 * time.Second)
		for !done(counts()) {
			if time.Now().After(deadline) {
				t.Fatalf("counts %v, want the last of each to be %v", counts(), want)
			}
			time.Sleep(200 * time.Millisecond)
		}
		// The aggregation's store answers interactive queries with the
		// counts (one instance holds every task).
		view, err := query.KeyValue[string, int64](app, "merchant-counts")
		if err != nil {
			t.Fatal(err)
		}
		for k, n := range want {
			for {
				got, found, err := view.Get(k)
				if err == nil && found && got == n {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("query %s = %d, %v, %v; want %d", k, got, found, err, n)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	produce(70)
	run()

	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	rp := appID + "-by-merchant-repartition"
	md, err := admin.DescribeTopics([]string{rp, appID + "-merchant-counts-changelog"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range md {
		if m.Err != sarama.ErrNoError || len(m.Partitions) != 3 {
			t.Errorf("topic %s: %v, %d partitions, want 3 (the source's)", m.Name, m.Err, len(m.Partitions))
		}
	}

	produce(50)
	run()
	got := counts()
	for k, n := range want {
		c := got[k]
		if int64(len(c)) != n {
			t.Errorf("%s: %d committed counts %v, want %d", k, len(c), c, n)
			continue
		}
		for i, v := range c {
			if v != int64(i+1) {
				t.Errorf("%s: committed counts %v are not 1..%d", k, c, n)
				break
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("output keys %v, want %v", strings.Join(keysOf(got), ","), want)
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestAppSessionCountRestoresFromChangelog: a session count's store gets
// a "compact,delete" changelog with retention.ms = gap + grace + 1 day,
// and a restart on an empty state directory restores the sessions
// (through SessionStoreApply): a record within the gap of the restored
// session merges into it.
func TestAppSessionCountRestoresFromChangelog(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	appID := testutil.TopicName(t, "app")
	gap, grace := time.Minute, 10*time.Second
	topo := func() *topology.Topology {
		bl := topology.New()
		sw := topology.Stream(bl, "in", in, serde.String(), serde.String()).GroupByKey().
			SessionWindowedBy(topology.SessionWindows(gap).Grace(grace))
		topology.CountSessions(sw, "visits").ToStream("changes").
			To("out", out, topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
		tp, err := bl.Build()
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	t0 := time.Now().Truncate(time.Millisecond)
	outputs := func() []string {
		var got []string
		for _, m := range b.ConsumeAll(t, out) {
			w, err := topology.WindowedSerde(serde.String()).Deserialize(out, m.Key)
			if err != nil {
				t.Fatal(err)
			}
			c, err := topology.ChangeSerde(serde.Int64()).Deserialize(out, m.Value)
			if err != nil {
				t.Fatal(err)
			}
			v := fmt.Sprint(c.Value)
			if c.Deleted {
				v = "<deleted>"
			}
			got = append(got, fmt.Sprintf("%s@%d-%d=%s", w.Key, w.Start.Sub(t0).Milliseconds(), w.End.Sub(t0).Milliseconds(), v))
		}
		return got
	}
	run := func(at time.Time, wantOutputs int) {
		t.Helper()
		b.Produce(t, in, &sarama.ProducerMessage{Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("x"), Timestamp: at})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, done := startApp(t, ctx, topo(), topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
		})
		deadline := time.Now().Add(60 * time.Second)
		for len(outputs()) < wantOutputs {
			if time.Now().After(deadline) {
				t.Fatalf("outputs %v, want %d", outputs(), wantOutputs)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	run(t0, 1)
	run(t0.Add(30*time.Second), 3)
	if got := strings.Join(outputs(), " "); got != "k@0-1=1 k@0-1=<deleted> k@0-30001=2" {
		t.Fatalf("outputs %s", got)
	}
	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	changelog := appID + "-visits-changelog"
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: changelog,
		ConfigNames: []string{"cleanup.policy", "retention.ms"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]string{}
	for _, e := range entries {
		cfg[e.Name] = e.Value
	}
	wantRet := fmt.Sprint((gap + grace + topology.WindowChangelogExtraRetention).Milliseconds())
	if cfg["cleanup.policy"] != "compact,delete" || cfg["retention.ms"] != wantRet {
		t.Fatalf("changelog %s config %v, want cleanup.policy=compact,delete retention.ms=%s", changelog, cfg, wantRet)
	}
}
