package topology_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// TestAppForeignKeyJoinEOS runs an inner foreign-key join on a broker,
// exactly-once, with tables of different partition counts (orders 3,
// customers 2): the internal topics are created with the counts of the
// tables they are co-partitioned with (subscription: customers',
// response: orders'), and after each phase of updates and deletes on both
// sides the committed output settles on the join of the tables as they
// are, and stays there (no answer made for an earlier order value lands
// late).
func TestAppForeignKeyJoinEOS(t *testing.T) {
	bk := testutil.NewBroker(t)
	name := func(s string) string { return testutil.TopicName(t, s) }
	orders, customers, out, appID := name("orders"), name("customers"), name("enriched"), name("app")
	compact := map[string]string{"cleanup.policy": "compact"}
	bk.CreateTopic(t, orders, 3, compact)
	bk.CreateTopic(t, customers, 2, compact)
	bk.CreateTopic(t, out, 1, nil)

	b := topology.New()
	o := topology.TableOf(b, "orders", orders, serde.String(), serde.String())
	c := topology.TableOf(b, "customers", customers, serde.String(), serde.String())
	topology.JoinTablesByForeignKey(o, c, "fk", orderCustomer,
		func(_ string, order, name string) (string, error) { return order + "+" + name, nil }, serde.String()).
		ToStream("enriched-changes").To("to-enriched", out, serde.String(), topology.ChangeSerde(serde.String()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, done := startApp(t, ctx, topo, topology.Config{
		ApplicationID: appID, Brokers: bk.Addrs(), StateDir: t.TempDir(), Guarantee: topology.ExactlyOnce,
		CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
	})
	ts := time.Now().Truncate(time.Millisecond)
	parts := map[string]int32{orders: 3, customers: 2}
	produce := func(topic, key string, value *string) {
		t.Helper()
		// Partitioned by key as a producer's default partitioner does
		// (Produce's partitioner is manual).
		p, err := partition.ForKey([]byte(key), parts[topic])
		if err != nil {
			t.Fatal(err)
		}
		m := &sarama.ProducerMessage{Key: sarama.StringEncoder(key), Timestamp: ts, Partition: p}
		if value != nil {
			m.Value = sarama.StringEncoder(*value)
		}
		bk.Produce(t, topic, m)
	}
	s := func(v string) *string { return &v }
	// settle waits until the committed output, applied as a changelog,
	// is want; then checks that it stays so over a few commit intervals.
	settle := func(phase string, want map[string]string) {
		t.Helper()
		table := func() map[string]string {
			got := map[string]string{}
			for _, m := range bk.ConsumeAllCommitted(t, out) {
				if m.Value == nil {
					delete(got, string(m.Key))
				} else {
					got[string(m.Key)] = string(m.Value)
				}
			}
			return got
		}
		deadline := time.Now().Add(60 * time.Second)
		got := table()
		for !maps.Equal(got, want) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			got = table()
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%s: joined table %v, want %v", phase, got, want)
		}
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			if got := table(); !maps.Equal(got, want) {
				t.Fatalf("%s: joined table changed to %v after reaching %v", phase, got, want)
			}
		}
	}

	produce(customers, "c1", s("Ann"))
	produce(customers, "c2", s("Bob"))
	produce(orders, "o1", s("c1|10"))
	produce(orders, "o2", s("c2|20"))
	produce(orders, "o3", s("c1|30"))
	produce(orders, "o4", s("c9|40")) // no such customer
	settle("initial", map[string]string{"o1": "c1|10+Ann", "o2": "c2|20+Bob", "o3": "c1|30+Ann"})

	produce(orders, "o1", s("c2|11"))    // o1 moves from c1 to c2
	produce(customers, "c1", s("Ann B")) // fans out to o3 only, once o1 has moved
	produce(orders, "o2", nil)           // left delete
	settle("updates", map[string]string{"o1": "c2|11+Bob", "o3": "c1|30+Ann B"})

	produce(customers, "c2", nil)        // right delete: o1 goes
	produce(customers, "c9", s("Cy"))    // o4 joins
	produce(customers, "c1", s("Ann C")) // o3 only
	settle("deletes", map[string]string{"o3": "c1|30+Ann C", "o4": "c9|40+Cy"})

	client, err := sarama.NewClient(bk.Addrs(), bk.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for topic, want := range map[string]int{
		appID + "-fk-subscription-registration-topic": 2,
		appID + "-fk-subscription-response-topic":     3,
	} {
		parts, err := client.Partitions(topic)
		if err != nil || len(parts) != want {
			t.Errorf("%s: partitions %v (err %v), want %d", topic, parts, err, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
