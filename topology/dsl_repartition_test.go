package topology_test

import (
	"context"
	"fmt"
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

// spendTopology re-keys card payments ("<customer>|<amount>" keyed by
// card) by customer through the repartition step "by-customer" and keeps
// a running sum per customer in the store "spend", written to out as
// "<sum>" keyed by customer.
func spendTopology(t testing.TB, in, out string, opts ...topology.RepartitionOption) *topology.Topology {
	t.Helper()
	b := topology.New()
	cards := topology.Stream(b, "cards", in, serde.String(), serde.String())
	byCustomer := topology.SelectKey(cards, "customer", func(_ string, v string) (string, error) {
		c, _, ok := strings.Cut(v, "|")
		if !ok {
			return "", fmt.Errorf("bad payment %q", v)
		}
		return c, nil
	})
	if !byCustomer.KeyChanged() {
		t.Fatal("SelectKey's stream is not key-changed")
	}
	re := byCustomer.Repartition("by-customer", opts...)
	if re.KeyChanged() {
		t.Fatal("a repartitioned stream is key-changed")
	}
	topology.KeyValueStore(b, "spend", serde.String(), serde.Int64())
	sums := topology.ProcessFunc(b, "sum", re.Node(), func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		s, err := processor.KeyValueStore[string, int64](ctx, "spend")
		if err != nil {
			return err
		}
		_, amount, _ := strings.Cut(r.Value, "|")
		n, err := strconv.ParseInt(amount, 10, 64)
		if err != nil {
			return err
		}
		cur, _, err := s.Get(r.Key)
		if err != nil {
			return err
		}
		if err := s.Put(r.Key, cur+n); err != nil {
			return err
		}
		return ctx.Forward(processor.Revalue(r, strconv.FormatInt(cur+n, 10)))
	}, topology.WithStores("spend"))
	topology.Sink(b, "out", out, sums, serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestRepartitionSplitsSubTopologies(t *testing.T) {
	topo := spendTopology(t, "payments", "spend-out")
	subs := topo.SubTopologies()
	if len(subs) != 2 {
		t.Fatalf("%d sub-topologies, want 2: %+v", len(subs), subs)
	}
	if got := fmt.Sprint(subs[0].SourceTopics, subs[1].SourceTopics); got != "[payments] [<application-id>-by-customer-repartition]" {
		t.Fatalf("source topics %s", got)
	}
	desc := topo.Describe()
	if !containsAll(desc, "by-customer-repartition-sink", "by-customer-repartition-source", "<application-id>-by-customer-repartition") {
		t.Fatalf("description lacks the repartition nodes:\n%s", desc)
	}
}

func TestRepartitionThroughTestDriver(t *testing.T) {
	d, err := testutil.NewTestDriver(spendTopology(t, "payments", "spend-out"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "payments", serde.String(), serde.String())
	t0 := time.Unix(1_700_000_000, 0)
	for i, p := range []struct{ card, v string }{
		{"card-1", "alice|10"}, {"card-2", "bob|5"}, {"card-3", "alice|7"}, {"card-1", "alice|1"},
	} {
		if err := in.Pipe(p.card, p.v, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	re := testutil.NewOutputTopic(d, testutil.DriverApplicationID+"-by-customer-repartition", serde.String(), serde.String())
	recs, err := re.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || recs[0].Key != "alice" || recs[1].Key != "bob" {
		t.Fatalf("repartition topic records %+v", recs)
	}
	out := testutil.NewOutputTopic(d, "spend-out", serde.String(), serde.String())
	got, err := out.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, r := range got {
		s = append(s, r.Key+"="+r.Value+"@"+strconv.FormatInt(r.Timestamp.Unix()-t0.Unix(), 10))
	}
	if fmt.Sprint(s) != "[alice=10@0 bob=5@1 alice=17@2 alice=18@3]" {
		t.Fatalf("sums %v", s)
	}
}

func TestRepartitionBuildProblems(t *testing.T) {
	b := topology.New()
	src := topology.Stream(b, "src", "in", serde.String(), serde.String())
	// MapValues changes the value type: the stream carries no value serde.
	n := topology.MapValues(src, "len", func(_ string, v string) (int, error) { return len(v), nil })
	n.Repartition("no-serde")
	src.Repartition("twice")
	src.Repartition("twice")
	src.Repartition("bad-serde", topology.WithSerdes(serde.Int64(), serde.String()))
	src.Repartition("negative", topology.WithPartitions(-1))
	_, err := b.Build()
	if err == nil {
		t.Fatal("Build accepted the problems")
	}
	for _, want := range []string{
		`node "no-serde": repartition topic needs a key serde and a value serde`,
		`duplicate name: node "twice"`,
		`node "bad-serde": key serde is a`,
		`node "negative": repartition partition count -1 is negative`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Build error lacks %q:\n%v", want, err)
		}
	}
	// With serdes given, the step builds.
	b2 := topology.New()
	src2 := topology.Stream(b2, "src", "in", serde.String(), serde.String())
	m := topology.MapValues(src2, "len", func(_ string, v string) (int64, error) { return int64(len(v)), nil })
	m.Repartition("ok", topology.WithSerdes(serde.String(), serde.Int64())).To("out", "out", serde.String(), serde.Int64())
	if _, err := b2.Build(); err != nil {
		t.Fatal(err)
	}
}

// TestAppRepartitionTopic runs the re-keying app on a broker under both
// guarantees: the repartition topic is created with the input's partition
// count (or the one given) and cleanup.policy=delete, every customer's sum
// is exact, and the consumed records are deleted from the repartition
// topic after commit.
func TestAppRepartitionTopic(t *testing.T) {
	for _, tc := range []struct {
		name       string
		guarantee  topology.Guarantee
		partitions int32
	}{
		{"at-least-once", topology.AtLeastOnce, 0},
		{"exactly-once", topology.ExactlyOnce, 0},
		{"explicit-partitions", topology.AtLeastOnce, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testutil.NewBroker(t)
			in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
			b.CreateTopic(t, in, 3, nil)
			b.CreateTopic(t, out, 3, nil)
			appID := testutil.TopicName(t, "app")
			var opts []topology.RepartitionOption
			wantParts := int32(3)
			if tc.partitions > 0 {
				opts = append(opts, topology.WithPartitions(tc.partitions))
				wantParts = tc.partitions
			}
			topo := spendTopology(t, in, out, opts...)
			const customers, payments = 7, 140
			want := map[string]int64{}
			var msgs []*sarama.ProducerMessage
			for i := range payments {
				c := fmt.Sprintf("cust-%d", i%customers)
				amount := int64(i + 1)
				want[c] += amount
				msgs = append(msgs, &sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder(fmt.Sprintf("card-%d", i%11)),
					Value: sarama.StringEncoder(fmt.Sprintf("%s|%d", c, amount)), Timestamp: time.Now()})
			}
			b.Produce(t, in, msgs...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, done := startApp(t, ctx, topo, topology.Config{
				ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), Guarantee: tc.guarantee,
				CommitInterval: 100 * time.Millisecond, RepartitionPurgeInterval: 100 * time.Millisecond, Logger: testLogger(t),
			})
			got := map[string]int64{}
			deadline := time.Now().Add(60 * time.Second)
			for {
				got = map[string]int64{}
				for _, m := range b.ConsumeAllCommitted(t, out) {
					n, _ := strconv.ParseInt(string(m.Value), 10, 64)
					got[string(m.Key)] = max(got[string(m.Key)], n)
				}
				if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("sums %v, want %v", got, want)
			}
			topic := appID + "-by-customer-repartition"
			client, err := sarama.NewClient(b.Addrs(), b.SaramaConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			admin, err := sarama.NewClusterAdminFromClient(client)
			if err != nil {
				t.Fatal(err)
			}
			md, err := admin.DescribeTopics([]string{topic})
			if err != nil || len(md) != 1 || len(md[0].Partitions) != int(wantParts) {
				t.Fatalf("repartition topic %s: %v partitions (err %v), want %d", topic, md, err, wantParts)
			}
			entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"cleanup.policy"}})
			if err != nil || len(entries) != 1 || entries[0].Value != "delete" {
				t.Fatalf("repartition topic cleanup.policy %+v (err %v), want delete", entries, err)
			}
			// Purged: every partition's log start moves to what was
			// consumed and committed.
			for {
				var purged, written int64
				for p := range wantParts {
					oldest, err1 := client.GetOffset(topic, p, sarama.OffsetOldest)
					newest, err2 := client.GetOffset(topic, p, sarama.OffsetNewest)
					if err1 != nil || err2 != nil {
						t.Fatal(err1, err2)
					}
					purged += oldest
					written += newest
				}
				// Under exactly-once each partition's log ends with a
				// commit marker the consumer never commits past.
				if written > 0 && purged >= int64(payments) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("repartition topic purged to %d of %d records written", purged, written)
				}
				time.Sleep(100 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}
