package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
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
// updates), also before its claim starts.
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
	if m, ok := q.popAt(t0.Add(time.Hour)); ok {
		t.Fatalf("popped %s@%d an hour later, the table's claim not started", m.Topic, m.Offset)
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
}

// probeCall is one question a queue asked its gap probe.
type probeCall struct {
	topic     string
	partition int32
	from      int64
}

// TestQueueHoldsWhileTheGapHoldsRecords: past probeDelay, an empty
// partition still behind its high watermark is probed (once, without
// blocking pop); while the probe has not answered, or answered that the
// unfetched offsets hold records (a fetch slower than the idle bound), or
// failed (an outage), the partition holds the others back without a time
// bound, a failed probe being asked again after probeRetry; once a probe
// finds only markers there, the merge goes on, until the partition's next
// record begins a new wait. An answer about an earlier wait changes
// nothing.
func TestQueueHoldsWhileTheGapHoldsRecords(t *testing.T) {
	ctx := context.Background()
	t0 := time.Unix(1000, 0)
	var calls []probeCall
	q := newRecordQueue(10, nil)
	q.probe = func(topic string, p int32, from int64) { calls = append(calls, probeCall{topic, p, from}) }
	q.addPartition("rates", 0)
	q.addPartition("txns", 0)
	q.track("rates", 0, 0, 3)
	q.track("txns", 0, 0, 10)
	q.pushAt(ctx, msg("rates", 0, 0, 10), 3)
	q.pushAt(ctx, msg("txns", 0, 0, 50), 10)
	q.pushAt(ctx, msg("txns", 0, 1, 60), 10)
	if m, ok := q.popAt(t0); !ok || m.Topic != "rates" {
		t.Fatalf("first pop: %v %v, want the rate", m, ok)
	}
	popped := func(at time.Duration) bool {
		_, ok := q.popAt(t0.Add(at))
		return ok
	}
	// rates: offset 1 onwards not fetched (fetched 1, high watermark 3).
	if popped(0) || popped(probeDelay-time.Millisecond) {
		t.Fatal("popped while the table has unfetched records")
	}
	if len(calls) != 0 {
		t.Fatalf("probed before probeDelay: %v", calls)
	}
	if popped(probeDelay) {
		t.Fatal("released at probeDelay, before any probe answered")
	}
	if want := []probeCall{{"rates", 0, 1}}; !slices.Equal(calls, want) {
		t.Fatalf("probes %v, want %v", calls, want)
	}
	if popped(time.Minute) || len(calls) != 1 {
		t.Fatalf("a minute on, with the probe out: released, or probed again (%v)", calls)
	}
	// The probe found records: they are on the broker, being fetched.
	if q.probed("rates", 0, 1, false, nil, t0.Add(time.Minute)) {
		t.Fatal("an answer reported as a failure")
	}
	if popped(time.Hour) {
		t.Fatal("released an hour on, while the gap holds records")
	}
	if len(calls) != 1 {
		t.Fatalf("probed again after the gap was found to hold records: %v", calls)
	}
	// The slow fetch delivers them.
	q.pushAt(ctx, msg("rates", 0, 1, 20), 4)
	q.pushAt(ctx, msg("rates", 0, 2, 30), 4)
	var got []string
	for {
		m, ok := q.popAt(t0.Add(time.Hour + time.Millisecond))
		if !ok {
			break
		}
		got = append(got, fmt.Sprintf("%s@%d", m.Topic, m.Offset))
	}
	if want := "[rates@1 rates@2]"; fmt.Sprint(got) != want {
		t.Fatalf("after the fetch: popped %v, want %s (a new wait: offset 3 not fetched)", got, want)
	}
	// A new wait (offset 3 left), probed after probeDelay; the probe fails.
	at := time.Hour + time.Millisecond + probeDelay
	if popped(at) || len(calls) != 2 || calls[1] != (probeCall{"rates", 0, 3}) {
		t.Fatalf("second wait: probes %v", calls)
	}
	if !q.probed("rates", 0, 3, false, errors.New("broker down"), t0.Add(at)) {
		t.Fatal("the first failure of a wait not reported as such")
	}
	if popped(at+probeRetry-time.Millisecond) || len(calls) != 2 {
		t.Fatalf("released, or probed again before probeRetry: %v", calls)
	}
	if popped(at+probeRetry) || len(calls) != 3 {
		t.Fatalf("released after a failed probe, or not probed again: %v", calls)
	}
	if q.probed("rates", 0, 3, false, errors.New("broker down"), t0.Add(at+probeRetry)) {
		t.Fatal("a second failure of the same wait reported again")
	}
	if popped(at + 2*probeRetry); len(calls) != 4 {
		t.Fatalf("not probed again: %v", calls)
	}
	// An answer about the first wait (from offset 1) changes nothing.
	q.probed("rates", 0, 1, true, nil, t0.Add(at+2*probeRetry))
	if popped(at + 2*probeRetry) {
		t.Fatal("released by an answer about an earlier wait")
	}
	// Only markers from offset 3 on: the merge goes on past the table.
	q.probed("rates", 0, 3, true, nil, t0.Add(at+2*probeRetry))
	if m, ok := q.popAt(t0.Add(at + 2*probeRetry)); !ok || m.Topic != "txns" || m.Offset != 0 {
		t.Fatalf("after a markers-only probe: %v %v, want txns@0", m, ok)
	}
	// The table's next record begins a new wait, which holds again.
	q.pushAt(ctx, msg("rates", 0, 5, 55), 8)
	if m, ok := q.popAt(t0.Add(at + 3*probeRetry)); !ok || m.Topic != "rates" {
		t.Fatalf("%v %v, want the rate", m, ok)
	}
	if popped(at + 3*probeRetry) {
		t.Fatal("popped while the table has unfetched records again")
	}
}

// TestQueueProbesOnlyWhatHoldsRecordsBack: a partition behind its high
// watermark is not probed while no other partition has a record for it to
// hold back (a task of one partition never is), and is once one has.
func TestQueueProbesOnlyWhatHoldsRecordsBack(t *testing.T) {
	ctx := context.Background()
	t0 := time.Unix(1000, 0)
	var calls []probeCall
	q := newRecordQueue(10, nil)
	q.probe = func(topic string, p int32, from int64) { calls = append(calls, probeCall{topic, p, from}) }
	q.addPartition("rates", 0)
	q.addPartition("txns", 0)
	q.track("rates", 0, 0, 3) // ends in markers, say
	q.track("txns", 0, 0, 0)
	q.popAt(t0)
	if q.popAt(t0.Add(time.Hour)); len(calls) != 0 {
		t.Fatalf("probed with nothing held back: %v", calls)
	}
	q.pushAt(ctx, msg("txns", 0, 0, 50), 1)
	if _, ok := q.popAt(t0.Add(time.Hour)); ok || !slices.Equal(calls, []probeCall{{"rates", 0, 0}}) {
		t.Fatalf("a record held back: popped %v, probes %v", ok, calls)
	}
}

// TestQueueMaxIdleSetting: a negative bound never holds a partition back;
// a positive one holds it at most that long, even while the gap is known
// to hold records; 0 (the default) holds it without a bound.
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
		{0, 24 * time.Hour, false},
	} {
		q := newRecordQueue(10, nil)
		q.maxIdle = tc.idle
		q.probe = func(topic string, p int32, from int64) {}
		q.addPartition("rates", 0)
		q.addPartition("txns", 0)
		q.track("txns", 0, 0, 1)
		q.track("rates", 0, 0, 2) // two records on the broker, none fetched
		q.pushAt(ctx, msg("txns", 0, 0, 50), 1)
		_, ok := q.popAt(t0) // starts the table's idle episode, unless never held
		if !ok {
			if _, ok = q.popAt(t0.Add(probeDelay)); !ok {
				q.probed("rates", 0, 0, false, nil, t0.Add(probeDelay)) // records
			}
		}
		if !ok {
			_, ok = q.popAt(t0.Add(tc.at))
		}
		if ok != tc.released {
			t.Errorf("maxIdle %v at +%v: released %v, want %v", tc.idle, tc.at, ok, tc.released)
		}
	}
}
