package runtime

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/changelog"
	"go.uber.org/goleak"
)

// TestMain fails the run if goroutines are left over, as
// testutil.VerifyTestMain does (which this package cannot import: testutil
// imports topology, which imports it): it ignores the same third-party
// goroutines and waits up to five seconds for those already ending (a
// closed LevelDB's pool drainer lingers after Close; the broker tests run
// Apps).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		opts := []goleak.Option{
			goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
			goleak.IgnoreAnyFunction("github.com/eapache/go-resiliency/breaker.(*Breaker).timer"),
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := goleak.Find(opts...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests: %v\n", err)
				code = 1
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	os.Exit(code)
}

func msg(topic string, p int32, off int64, ts int64) *sarama.ConsumerMessage {
	return &sarama.ConsumerMessage{Topic: topic, Partition: p, Offset: off, Timestamp: time.UnixMilli(ts)}
}

// TestQueueMergesPartitionsByTimestamp: records of a task's partitions come
// out in timestamp order, each partition's own order kept.
func TestQueueMergesPartitionsByTimestamp(t *testing.T) {
	q := newRecordQueue(10, nil)
	ctx := context.Background()
	q.addPartition("orders", 0)
	q.addPartition("payments", 0)
	for _, m := range []*sarama.ConsumerMessage{
		msg("orders", 0, 0, 10), msg("orders", 0, 1, 30), msg("orders", 0, 2, 50),
		msg("payments", 0, 0, 20), msg("payments", 0, 1, 40), msg("payments", 0, 2, 45),
	} {
		if !q.push(ctx, m) {
			t.Fatal("push refused")
		}
	}
	var got []int64
	for {
		m, ok := q.pop()
		if !ok {
			break
		}
		got = append(got, m.Timestamp.UnixMilli())
	}
	want := []int64{10, 20, 30, 40, 45, 50}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// TestQueueBackpressure: a full partition blocks its pusher until a record
// is taken; closing the queue releases it.
func TestQueueBackpressure(t *testing.T) {
	q := newRecordQueue(2, nil)
	ctx := context.Background()
	q.push(ctx, msg("t", 0, 0, 1))
	q.push(ctx, msg("t", 0, 1, 2))
	pushed := make(chan bool, 1)
	go func() { pushed <- q.push(ctx, msg("t", 0, 2, 3)) }()
	select {
	case <-pushed:
		t.Fatal("push into a full partition did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	if _, ok := q.pop(); !ok {
		t.Fatal("pop found nothing")
	}
	if ok := <-pushed; !ok {
		t.Fatal("push refused after space was made")
	}
	go func() { pushed <- q.push(ctx, msg("t", 0, 3, 4)) }()
	time.Sleep(20 * time.Millisecond)
	q.close()
	if ok := <-pushed; ok {
		t.Fatal("push into a closed queue succeeded")
	}
}

// TestQueuePushStopsWithContext: a pusher waiting on a full partition
// returns false when its context ends (after wake).
func TestQueuePushStopsWithContext(t *testing.T) {
	q := newRecordQueue(1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	q.push(ctx, msg("t", 0, 0, 1))
	stop := context.AfterFunc(ctx, q.wake)
	defer stop()
	done := make(chan bool, 1)
	go func() { done <- q.push(ctx, msg("t", 0, 1, 2)) }()
	cancel()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("push succeeded after its context ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("push still waiting after its context ended")
	}
}

// TestChangelogBufferKeepsLastValuePerKey: a commit's changelog holds one
// record per key with its last value (a tombstone included), in the order
// keys were first written.
func TestChangelogBufferKeepsLastValuePerKey(t *testing.T) {
	c := &collector{}
	send := func(p int32, k, v string) {
		var vb []byte
		if v != "" {
			vb = []byte(v)
		}
		if err := c.SendChangelog("app-s-changelog", p, []byte(k), vb); err != nil {
			t.Fatal(err)
		}
	}
	send(0, "a", "1")
	send(0, "b", "1")
	send(0, "a", "2")
	send(1, "a", "9") // another partition: another record
	send(0, "b", "")  // tombstone wins
	if len(c.records) != 3 {
		t.Fatalf("%d buffered records, want 3: %+v", len(c.records), c.records)
	}
	want := []struct {
		p    int32
		k, v string
		nilV bool
	}{{0, "a", "2", false}, {0, "b", "", true}, {1, "a", "9", false}}
	for i, w := range want {
		r := c.records[i]
		if r.partition != w.p || string(r.key) != w.k || (r.value == nil) != w.nilV || (!w.nilV && string(r.value) != w.v) {
			t.Fatalf("record %d = %+v, want %+v", i, r, w)
		}
	}
	c.dropChangelog()
	if len(c.records) != 0 || len(c.pending) != 0 {
		t.Fatal("drop left records behind")
	}
}

// TestPartitionerHonoursChosenPartition: a record with a chosen partition
// goes there; without one its key is hashed like Kafka's Java producer.
func TestPartitionerHonoursChosenPartition(t *testing.T) {
	p := newBrookPartitioner("t")
	m := &sarama.ProducerMessage{Topic: "t", Key: sarama.StringEncoder("foobar"), Metadata: &changelog.Meta{Partition: 3}}
	if got, err := p.Partition(m, 6); err != nil || got != 3 {
		t.Fatalf("chosen partition: got %d, %v", got, err)
	}
	if _, err := p.Partition(&sarama.ProducerMessage{Topic: "t", Metadata: &changelog.Meta{Partition: 7}}, 6); err == nil {
		t.Fatal("partition 7 of 6 accepted")
	}
	m = &sarama.ProducerMessage{Topic: "t", Key: sarama.StringEncoder("foobar"), Metadata: &changelog.Meta{Partition: -1}}
	// Kafka: toPositive(murmur2("foobar")) % 50 == 16 (UtilsTest vectors).
	if got, err := p.Partition(m, 50); err != nil || got != 16 {
		t.Fatalf("hashed partition: got %d, %v; want 16", got, err)
	}
}

// TestQueueWaitsForAPartitionWithUnfetchedRecords: a table partition whose
// claim knows of records not fetched yet holds back the stream's records
// (which would otherwise be joined against a table missing its earlier
// updates), also before its claim starts, for at most maxTaskIdle.
func TestQueueWaitsForAPartitionWithUnfetchedRecords(t *testing.T) {
	q := newRecordQueue(10, nil)
	ctx := context.Background()
	q.addPartition("rates", 0)
	q.addPartition("txns", 0)
	q.track("txns", 0, 0, 1)
	if !q.pushAt(ctx, msg("txns", 0, 0, 50), 1) {
		t.Fatal("push refused")
	}
	t0 := time.Unix(1000, 0)
	if m, ok := q.popAt(t0); ok {
		t.Fatalf("popped %s@%d before the table's claim started", m.Topic, m.Offset)
	}
	q.track("rates", 0, -2, 2) // from the log start; 2 records on the broker
	if m, ok := q.popAt(t0.Add(time.Millisecond)); ok {
		t.Fatalf("popped %s@%d while the table has unfetched records", m.Topic, m.Offset)
	}
	q.pushAt(ctx, msg("rates", 0, 0, 10), 2)
	q.pushAt(ctx, msg("rates", 0, 1, 20), 2)
	var got []string
	for {
		m, ok := q.popAt(t0.Add(2 * time.Millisecond))
		if !ok {
			break
		}
		got = append(got, m.Topic)
	}
	if want := "[rates rates txns]"; fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	// A partition that stays behind its high watermark (a transaction
	// marker at the end of its log) holds the others for maxTaskIdle only.
	q.track("rates", 0, 2, 3)
	q.pushAt(ctx, msg("txns", 0, 1, 60), 2)
	if _, ok := q.popAt(t0.Add(time.Second)); ok {
		t.Fatal("popped at once while the table is behind")
	}
	if _, ok := q.popAt(t0.Add(time.Second + maxTaskIdle)); !ok {
		t.Fatal("still held after maxTaskIdle")
	}
}

// TestQueueMaxIdleSetting: a negative bound never holds a partition back;
// a longer one holds it that long.
func TestQueueMaxIdleSetting(t *testing.T) {
	ctx := context.Background()
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		idle     time.Duration
		at       time.Duration
		released bool
	}{
		{-1, 0, true},
		{2 * time.Second, time.Second, false},
		{2 * time.Second, 2 * time.Second, true},
	} {
		q := newRecordQueue(10, nil)
		q.maxIdle = tc.idle
		q.addPartition("rates", 0)
		q.addPartition("txns", 0)
		q.track("txns", 0, 0, 1)
		q.track("rates", 0, 0, 2) // two records on the broker, none fetched
		q.pushAt(ctx, msg("txns", 0, 0, 50), 1)
		_, ok := q.popAt(t0) // starts the table's idle episode, unless never held
		if !ok {
			_, ok = q.popAt(t0.Add(tc.at))
		}
		if ok != tc.released {
			t.Errorf("maxIdle %v at +%v: released %v, want %v", tc.idle, tc.at, ok, tc.released)
		}
	}
}
