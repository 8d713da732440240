package topology_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// TestAppDSLPipeline runs a DSL pipeline through the Kafka runtime:
// filter-not, split with a default branch, map-values, select-key, a
// per-record topic and a filtered table's tombstones, with timestamps and
// headers carried to the output topics.
func TestAppDSLPipeline(t *testing.T) {
	bk := testutil.NewBroker(t)
	name := func(s string) string { return testutil.TopicName(t, s) }
	in, limits, big, small, byAmount, high, dynA, dynB := name("in"), name("limits"), name("big"), name("small"),
		name("by-amount"), name("high"), name("dyn-a"), name("dyn-b")
	bk.CreateTopic(t, in, 3, nil)
	bk.CreateTopic(t, limits, 3, map[string]string{"cleanup.policy": "compact"})
	for _, tp := range []string{big, small, byAmount, high, dynA, dynB} {
		bk.CreateTopic(t, tp, 1, nil)
	}

	b := topology.New()
	s := topology.Stream(b, "in", in, serde.String(), serde.Int64())
	route := s.FilterNot("drop-zero", func(_ string, v int64) bool { return v == 0 }).Split("route")
	route.Branch("big", func(_ string, v int64) bool { return v >= 100 }).To("big-out", big, serde.String(), serde.Int64())
	topology.MapValues(route.Default("small"), "text", func(k string, v int64) (string, error) { return fmt.Sprintf("%s=%d", k, v), nil }).
		To("small-out", small, serde.String(), serde.String())
	topology.SelectKey(s, "key-by-amount", func(_ string, v int64) (int64, error) { return v, nil }).
		To("by-amount-out", byAmount, serde.Int64(), serde.Int64())
	s.ToTopicFunc("dyn-out", func(r processor.Record[string, int64]) (string, error) {
		if r.Value%2 == 0 {
			return dynA, nil
		}
		return dynB, nil
	}, serde.String(), serde.Int64())
	topology.TableOf(b, "limits", limits, serde.String(), serde.Int64()).
		Filter("high-limits", func(_ string, v int64) bool { return v >= 1000 }).
		ToStream("high-changes").To("high-out", high, serde.String(), topology.ChangeSerde(serde.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}

	ts := time.Now().Add(-time.Hour).Truncate(time.Millisecond).UTC() // recent: older records fall to retention
	var msgs []*sarama.ProducerMessage
	for i, v := range []int64{5, 0, 250, 7, 1000} {
		msgs = append(msgs, &sarama.ProducerMessage{
			Key: sarama.StringEncoder(fmt.Sprint("k", i)), Value: sarama.ByteEncoder(mustInt64(t, v)), Partition: 0,
			Timestamp: ts.Add(time.Duration(i) * time.Second),
			Headers:   []sarama.RecordHeader{{Key: []byte("trace"), Value: []byte(fmt.Sprint("t", i))}},
		})
	}
	bk.Produce(t, in, msgs...)
	// The table's records are in its topic before the app starts: the
	// table restores only up to the committed offset (none yet), so they
	// pass through the table's downstream nodes too.
	bk.Produce(t, limits,
		&sarama.ProducerMessage{Key: sarama.StringEncoder("c1"), Value: sarama.ByteEncoder(mustInt64(t, 5000)), Partition: 1},
		&sarama.ProducerMessage{Key: sarama.StringEncoder("c1"), Value: sarama.ByteEncoder(mustInt64(t, 10)), Partition: 1},
		&sarama.ProducerMessage{Key: sarama.StringEncoder("c2"), Value: sarama.ByteEncoder(mustInt64(t, 3000)), Partition: 1},
		&sarama.ProducerMessage{Key: sarama.StringEncoder("c2"), Partition: 1}, // tombstone
	)

	ctx, cancel := context.WithCancel(context.Background())
	_, done := startApp(t, ctx, topo, topology.Config{
		ApplicationID: name("app"), Brokers: bk.Addrs(), StateDir: t.TempDir(),
		CommitInterval: 200 * time.Millisecond, Logger: testLogger(t),
	})
	const wait = 60 * time.Second
	// Fail fast, with Run's error, if the app stops.
	result := make(chan error, 1)
	go func() {
		err := <-done
		if ctx.Err() == nil {
			t.Errorf("Run returned early: %v", err)
		}
		result <- err
	}()
	bigRecs := bk.WaitForRecords(t, big, 2, false, wait)
	smallRecs := bk.WaitForRecords(t, small, 2, false, wait)
	byAmountRecs := bk.WaitForRecords(t, byAmount, 5, false, wait)
	aRecs := bk.WaitForRecords(t, dynA, 3, false, wait)
	bRecs := bk.WaitForRecords(t, dynB, 2, false, wait)
	highRecs := bk.WaitForRecords(t, high, 4, false, wait)
	cancel()
	if err := <-result; err != nil {
		t.Fatalf("Run: %v", err)
	}

	type out struct {
		key, value, trace string
		ts                time.Time
	}
	decode := func(ms []*sarama.ConsumerMessage, key, value func([]byte) string) []out {
		var o []out
		for _, m := range ms {
			var trace string
			for _, h := range m.Headers {
				if string(h.Key) == "trace" {
					trace = string(h.Value)
				}
			}
			o = append(o, out{key(m.Key), value(m.Value), trace, m.Timestamp.UTC()})
		}
		return o
	}
	str := func(b []byte) string { return string(b) }
	i64 := func(b []byte) string {
		if b == nil {
			return "<tombstone>"
		}
		v, err := serde.Int64().Deserialize("", b)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(v)
	}
	at := func(i int) time.Time { return ts.Add(time.Duration(i) * time.Second) }
	check := func(topic string, got, want []out) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %+v, want %+v", topic, got, want)
		}
	}
	check("big", decode(bigRecs, str, i64), []out{{"k2", "250", "t2", at(2)}, {"k4", "1000", "t4", at(4)}})
	check("small", decode(smallRecs, str, str), []out{{"k0", "k0=5", "t0", at(0)}, {"k3", "k3=7", "t3", at(3)}})
	check("by-amount", decode(byAmountRecs, i64, i64), []out{
		{"5", "5", "t0", at(0)}, {"0", "0", "t1", at(1)}, {"250", "250", "t2", at(2)}, {"7", "7", "t3", at(3)}, {"1000", "1000", "t4", at(4)},
	})
	check("dyn-a", decode(aRecs, str, i64), []out{{"k1", "0", "t1", at(1)}, {"k2", "250", "t2", at(2)}, {"k4", "1000", "t4", at(4)}})
	check("dyn-b", decode(bRecs, str, i64), []out{{"k0", "5", "t0", at(0)}, {"k3", "7", "t3", at(3)}})
	var highGot []string
	for _, o := range decode(highRecs, str, i64) {
		highGot = append(highGot, o.key+":"+o.value)
	}
	if want := []string{"c1:5000", "c1:<tombstone>", "c2:3000", "c2:<tombstone>"}; !slices.Equal(highGot, want) {
		t.Errorf("high: got %v, want %v", highGot, want)
	}
}

func mustInt64(t *testing.T, v int64) []byte {
	t.Helper()
	b, err := serde.Int64().Serialize("", v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAppDSLPerRecordTopicMissing sends a record to a per-record topic
// that does not exist: the topic cannot be checked at start-up, so the
// send must fail, and Run must return an error naming the topic instead
// of dropping the record.
func TestAppDSLPerRecordTopicMissing(t *testing.T) {
	bk := testutil.NewBroker(t)
	in, missing := testutil.TopicName(t, "in"), testutil.TopicName(t, "nowhere")
	bk.CreateTopic(t, in, 1, nil)
	b := topology.New()
	topology.Stream(b, "in", in, serde.String(), serde.String()).
		ToTopicFunc("route", func(processor.Record[string, string]) (string, error) { return missing, nil }, serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	bk.Produce(t, in, &sarama.ProducerMessage{Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("v")})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, done := startApp(t, ctx, topo, topology.Config{
		ApplicationID: testutil.TopicName(t, "app"), Brokers: bk.Addrs(), StateDir: t.TempDir(),
		CommitInterval: 200 * time.Millisecond, Logger: testLogger(t),
	})
	err = <-done
	if err == nil || errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), missing) {
		t.Fatalf("Run returned %v; want an error naming topic %q", err, missing)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), missing) {
		t.Fatalf("Run error %q does not name topic %q", err, missing)
	}
}
