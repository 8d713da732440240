package topology_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// partitionOf is the partition of key among n as Kafka's Java producer
// (and brook's repartition sinks) place it: murmur2.
func partitionOf(t *testing.T, key string, n int32) int32 {
	t.Helper()
	p, err := partition.ForKey([]byte(key), n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAppStreamTableJoinExactlyOnce runs stream–table joins on the broker
// under exactly-once: transactions keyed by customer joined with the
// customers table (inner), and transactions keyed by id, re-keyed by
// customer and so repartitioned through
// "<application-id>-by-id-repartition" (3 partitions, following the
// table's topic), left-joined with the same table. Every committed output
// is compared with the expected join: nothing missing, duplicated or
// wrong, each with its transaction's timestamp. A third join reads a
// versioned table of rates: each transaction, late ones included, gets
// the rate of its own time (the versioned store's changelog topic is
// created as any other).
func TestAppStreamTableJoinExactlyOnce(t *testing.T) {
	bk := testutil.NewBroker(t)
	name := func(s string) string { return testutil.TopicName(t, s) }
	txns, txnsByID, customers, out, outByID := name("txns"), name("txns-by-id"), name("customers"), name("joined"), name("joined-by-id")
	bk.CreateTopic(t, txns, 3, nil)
	bk.CreateTopic(t, txnsByID, 3, nil)
	bk.CreateTopic(t, customers, 3, map[string]string{"cleanup.policy": "compact"})
	rates, outRated := name("rates"), name("joined-rated")
	bk.CreateTopic(t, rates, 3, map[string]string{"cleanup.policy": "compact"})
	bk.CreateTopic(t, outRated, 1, nil)
	bk.CreateTopic(t, out, 1, nil)
	bk.CreateTopic(t, outByID, 1, nil)
	appID := name("app")

	b := topology.New()
	table := topology.TableOf(b, "customers", customers, serde.String(), serde.String())
	txnStream := topology.Stream(b, "txns", txns, serde.String(), serde.String())
	topology.Join(txnStream, table, "enrich", innerJoiner).
		To("to-joined", out, serde.String(), serde.String())
	// A versioned table: each transaction gets the rate of its own time.
	versioned := topology.TableOf(b, "rates", rates, serde.String(), serde.String(), topology.Versioned(24*time.Hour))
	topology.Join(txnStream, versioned, "rate", innerJoiner).
		To("to-joined-rated", outRated, serde.String(), serde.String())
	byID := topology.Stream(b, "txns-by-id", txnsByID, serde.String(), serde.String())
	byCustomer := topology.Map(byID, "by-customer", func(id, v string) (string, string, error) {
		c, amount, _ := strings.Cut(v, ":")
		return c, id + ":" + amount, nil
	})
	topology.LeftJoin(byCustomer, table, "by-id", leftJoiner).To("to-joined-by-id", outByID, serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}

	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	const nCustomers, nTxns = 12, 60
	var tableMsgs []*sarama.ProducerMessage
	for c := range nCustomers - 2 { // c10 and c11 are never in the table
		key := fmt.Sprint("c", c)
		tableMsgs = append(tableMsgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(key), Partition: partitionOf(t, key, 3),
			Value: sarama.StringEncoder(fmt.Sprint("name-", c)), Timestamp: base})
	}
	bk.Produce(t, customers, tableMsgs...)
	// Rates per customer key: r1 from base, then r2 from base+30s (all
	// r1 first: a task takes a partition's records in offset order, so an
	// r2 ahead of another key's r1 would hold that r1 back until the
	// transactions before base+30s had been joined).
	var rateMsgs []*sarama.ProducerMessage
	for _, rate := range []string{"r1", "r2"} {
		ts := base
		if rate == "r2" {
			ts = base.Add(30 * time.Second)
		}
		for c := range nCustomers {
			key := fmt.Sprint("c", c)
			rateMsgs = append(rateMsgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(key), Partition: partitionOf(t, key, 3),
				Value: sarama.StringEncoder(rate), Timestamp: ts})
		}
	}
	bk.Produce(t, rates, rateMsgs...)
	var wantRated []string
	var want, wantByID []string
	var txnMsgs, byIDMsgs []*sarama.ProducerMessage
	for i := range nTxns {
		c := fmt.Sprint("c", i%nCustomers)
		ts := base.Add(time.Duration(i+1) * time.Second)
		if i >= 35 && i%4 == 0 {
			// Late: processed after r2 took effect, but from before it.
			ts = base.Add(time.Duration(i-30) * time.Second)
		}
		nameOf := "none"
		if i%nCustomers < nCustomers-2 {
			nameOf = fmt.Sprint("name-", i%nCustomers)
			want = append(want, fmt.Sprintf("%s=%d|%s@%d", c, i, nameOf, ts.UnixMilli()))
		}
		rate := "r1"
		if !ts.Before(base.Add(30 * time.Second)) {
			rate = "r2"
		}
		wantRated = append(wantRated, fmt.Sprintf("%s=%d|%s@%d", c, i, rate, ts.UnixMilli()))
		wantByID = append(wantByID, fmt.Sprintf("%s=tx%d:%d|%s@%d", c, i, i, nameOf, ts.UnixMilli()))
		txnMsgs = append(txnMsgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(c), Partition: partitionOf(t, c, 3), Value: sarama.StringEncoder(fmt.Sprint(i)), Timestamp: ts})
		byIDMsgs = append(byIDMsgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(fmt.Sprint("tx", i)), Partition: int32(i % 3),
			Value: sarama.StringEncoder(fmt.Sprintf("%s:%d", c, i)), Timestamp: ts})
	}
	bk.Produce(t, txns, txnMsgs...)
	bk.Produce(t, txnsByID, byIDMsgs...)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, done := startApp(t, ctx, topo, topology.Config{
		ApplicationID: appID, Brokers: bk.Addrs(), StateDir: t.TempDir(), Guarantee: topology.ExactlyOnce,
		CommitInterval: 200 * time.Millisecond, Logger: testLogger(t),
	})
	const wait = 90 * time.Second
	render := func(ms []*sarama.ConsumerMessage) []string {
		var o []string
		for _, m := range ms {
			o = append(o, fmt.Sprintf("%s=%s@%d", m.Key, m.Value, m.Timestamp.UnixMilli()))
		}
		slices.Sort(o)
		return o
	}
	bk.WaitForRecords(t, out, len(want), true, wait)
	bk.WaitForRecords(t, outByID, len(wantByID), true, wait)
	bk.WaitForRecords(t, outRated, len(wantRated), true, wait)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Everything committed once the app stopped: duplicates would show.
	got, gotByID := render(bk.ConsumeAllCommitted(t, out)), render(bk.ConsumeAllCommitted(t, outByID))
	gotRated := render(bk.ConsumeAllCommitted(t, outRated))
	slices.Sort(wantRated)
	if !slices.Equal(gotRated, wantRated) {
		t.Errorf("versioned join output:\n  %s\nwant\n  %s", strings.Join(gotRated, "\n  "), strings.Join(wantRated, "\n  "))
	}
	slices.Sort(want)
	slices.Sort(wantByID)
	if !slices.Equal(got, want) {
		t.Errorf("inner join output:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if !slices.Equal(gotByID, wantByID) {
		t.Errorf("repartitioned left join output:\n  %s\nwant\n  %s", strings.Join(gotByID, "\n  "), strings.Join(wantByID, "\n  "))
	}
	// The repartition topic exists with the table topic's partition count.
	rt := appID + "-by-id-repartition"
	admin, err := sarama.NewClusterAdmin(bk.Addrs(), bk.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	md, err := admin.DescribeTopics([]string{rt})
	if err != nil || len(md) != 1 || md[0].Err != sarama.ErrNoError {
		t.Fatalf("describe %s: %v %v", rt, md, err)
	}
	if n := len(md[0].Partitions); n != 3 {
		t.Errorf("%s has %d partitions, want 3 (the table's)", rt, n)
	}
}
