package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// gatedCounter is counter that stops at the first record whose key
// starts with "late-" until the gate opens (the lag it leaves behind is
// known exactly), and logs a warning with an action for the key
// "warn-me".
type gatedCounter struct {
	counter
	g *gate
}

type gate struct {
	once    sync.Once
	entered chan struct{}
	open    chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) release() {
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (c *gatedCounter) Process(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
	if r.Key == "warn-me" {
		ctx.Logger().Warn("status test warning", "action", "status test action", "key", r.Key)
	}
	if strings.HasPrefix(r.Key, "late-") {
		c.g.once.Do(func() { close(c.g.entered) })
		<-c.g.open
	}
	return c.counter.Process(ctx, r)
}

// gatedTopology is countTopology with a gatedCounter.
func gatedTopology(t testing.TB, in, out string, g *gate) *topology.Topology {
	t.Helper()
	b := topology.New()
	src := topology.Source(b, "in", in, serde.String(), serde.String())
	topology.KeyValueStore(b, "counts", serde.String(), serde.Int64())
	counts := topology.Process(b, "count", src, func() processor.Processor[string, string, string, int64] {
		return &gatedCounter{g: g}
	}, topology.WithStores("counts"))
	topology.Sink(b, "out", out, counts, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// getStatus fetches and decodes GET /status.
func getStatus(endpoint string, header map[string]string) (query.Status, error) {
	a, err := httpGetErr(endpoint, "/status", header)
	if err != nil {
		return query.Status{}, err
	}
	if a.status != http.StatusOK {
		return query.Status{}, fmt.Errorf("GET /status: %d %s", a.status, a.body)
	}
	var s query.Status
	if err := json.Unmarshal(a.body, &s); err != nil {
		return query.Status{}, fmt.Errorf("GET /status: %v: %s", err, a.body)
	}
	return s, nil
}

// partitionEnds returns the number of records per partition of topic
// (its end offsets: the test's topics are written without transactions
// and never deleted from).
func partitionEnds(t *testing.T, b *testutil.Broker, topic string) map[int32]int64 {
	t.Helper()
	out := map[int32]int64{}
	for _, m := range b.ConsumeAll(t, topic) {
		out[m.Partition] = max(out[m.Partition], m.Offset+1)
	}
	return out
}

func produceKeys(t *testing.T, b *testutil.Broker, topic string, keys ...string) {
	t.Helper()
	var msgs []*sarama.ProducerMessage
	for _, k := range keys {
		msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(k), Value: sarama.StringEncoder("v"), Partition: partitionOf(k, 2)})
	}
	b.Produce(t, topic, msgs...)
}

// checkCaughtUp says why s is not a running instance with both tasks of
// a 2-partition input fully processed and committed up to ends.
func checkCaughtUp(s query.Status, in string, ends map[int32]int64, endKind string) error {
	if s.State != "running" {
		return fmt.Errorf("state %s", s.State)
	}
	running := 0
	for _, ts := range s.Tasks {
		if ts.State == query.TaskRunning {
			running++
		}
	}
	if running != 2 || len(s.Partitions) != 2 {
		return fmt.Errorf("%d running tasks, %d partitions: %+v", running, len(s.Partitions), s.Tasks)
	}
	for _, p := range s.Partitions {
		want := ends[p.Partition]
		if p.Topic != in || p.End != want || p.Position != want || p.Committed != want || p.Lag != 0 || p.EndKind != endKind {
			return fmt.Errorf("partition %+v: want topic %s, end = position = committed = %d, lag 0, end kind %s", p, in, want, endKind)
		}
	}
	return nil
}

// TestStatus runs an App on the broker and checks its /status against
// what the test knows: the records of each partition, the lag a blocked
// task leaves, the restore of a fresh instance, the warnings it logged.
func TestStatus(t *testing.T) {
	for _, g := range []topology.Guarantee{topology.AtLeastOnce, topology.ExactlyOnce} {
		name := map[topology.Guarantee]string{topology.AtLeastOnce: "at-least-once", topology.ExactlyOnce: "exactly-once"}[g]
		t.Run(name, func(t *testing.T) { testStatus(t, g) })
	}
}

func testStatus(t *testing.T, guarantee topology.Guarantee) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	appID := testutil.TopicName(t, "app")
	endKind, wantGuarantee := "high_watermark", query.GuaranteeAtLeastOnce
	if guarantee == topology.ExactlyOnce {
		endKind, wantGuarantee = "last_stable_offset", query.GuaranteeExactlyOnce
	}
	var keys []string
	for k := 0; k < 30; k++ {
		keys = append(keys, fmt.Sprintf("key-%02d", k))
	}
	produceKeys(t, b, in, append(keys, "warn-me")...)

	g := newGate()
	defer g.release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t),
		CommitInterval: 100 * time.Millisecond, Guarantee: guarantee}
	token := map[string]string{"Authorization": "Bearer s3cret"}
	qi := startQueryInstance(t, ctx, gatedTopology(t, in, out, g), cfg, query.WithBearerToken("s3cret"))

	// Caught up: every partition processed and committed to its end.
	ends := partitionEnds(t, b, in)
	var s query.Status
	eventually(t, 60*time.Second, func() (err error) {
		if s, err = getStatus(qi.endpoint, token); err != nil {
			return err
		}
		return checkCaughtUp(s, in, ends, endKind)
	})
	if s.ApplicationID != appID || s.Endpoint != qi.endpoint || s.Guarantee != wantGuarantee || s.Generation < 1 {
		t.Fatalf("status header: %+v", s)
	}
	if len(s.Instances) != 1 || !s.Instances[0].Self || len(s.Instances[0].Tasks) != 2 {
		t.Fatalf("instances: %+v", s.Instances)
	}
	if len(s.Stores) != 2 {
		t.Fatalf("stores: %+v", s.Stores)
	}
	for _, z := range s.Stores {
		if z.Store != "counts" || z.Kind != "key-value" || z.Keys != nil || z.BytesOnDisk == nil || *z.BytesOnDisk <= 0 {
			t.Fatalf("store size %+v: want a key-value store with bytes on disk", z)
		}
	}
	if len(s.Restores) != 2 {
		t.Fatalf("restores: %+v", s.Restores)
	}
	for _, r := range s.Restores {
		if r.Store != "counts" || !r.Done || r.Restored != 0 || r.Total != 0 {
			t.Fatalf("restore %+v: want a finished empty restore of counts (first start)", r)
		}
	}
	if len(s.KeyValueStores) != 1 || s.KeyValueStores[0] != (query.LookupStore{Store: "counts", KeyFormat: "string"}) {
		t.Fatalf("key-value stores: %+v", s.KeyValueStores)
	}
	found := false
	for _, w := range s.RecentWarnings {
		if w.Message == "status test warning" && w.Action == "status test action" && w.Level == "WARN" &&
			len(w.Attrs) > 0 && w.Attrs[len(w.Attrs)-1] == (query.LogAttr{Key: "key", Value: "warn-me"}) {
			found = true
		}
	}
	if !found {
		t.Fatalf("the processor's warning is not among the recent warnings: %+v", s.RecentWarnings)
	}
	if direct := qi.app.Status(ctx); direct.ApplicationID != appID || len(direct.Partitions) != 2 {
		t.Fatalf("App.Status: %+v", direct)
	}

	// Auth: the data needs the token, the page does not (it holds none).
	for _, p := range []string{"/status", "/status/topology.svg"} {
		if a := httpGet(t, qi.endpoint, p, nil); a.status != http.StatusUnauthorized {
			t.Fatalf("%s without the token: %d %s", p, a.status, a.body)
		}
	}
	for _, p := range []string{"/status/ui", "/status/ui/app.js", "/status/ui/style.css"} {
		if a := httpGet(t, qi.endpoint, p, nil); a.status != http.StatusOK || !strings.Contains(a.header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("%s: %d, CSP %q", p, a.status, a.header.Get("Content-Security-Policy"))
		}
	}

	// Lag: the task stops at the first late record; the other nine wait.
	var late []string
	for k := 0; k < 10; k++ {
		late = append(late, fmt.Sprintf("late-%02d", k))
	}
	produceKeys(t, b, in, late...)
	select {
	case <-g.entered:
	case <-time.After(60 * time.Second):
		t.Fatal("the late records were not processed")
	}
	ends = partitionEnds(t, b, in)
	// The late records in the log: ten, unless the test's producer wrote
	// one twice on a retry (it is not idempotent; seen on a loaded Kafka).
	lateInLog := int64(0)
	for _, m := range b.ConsumeAll(t, in) {
		if strings.HasPrefix(string(m.Key), "late-") {
			lateInLog++
		}
	}
	if lateInLog != 10 {
		t.Logf("the input holds %d late records: the producer retried", lateInLog)
	}
	eventually(t, 30*time.Second, func() (err error) {
		if s, err = getStatus(qi.endpoint, token); err != nil {
			return err
		}
		total := int64(0)
		for _, p := range s.Partitions {
			if p.End != ends[p.Partition] || p.Lag != p.End-p.Position || p.Committed > p.Position {
				return fmt.Errorf("partition %+v: want end %d, lag = end - position, committed <= position", p, ends[p.Partition])
			}
			total += p.Lag
		}
		if total != lateInLog {
			return fmt.Errorf("total lag %d, want %d (the late records, the one being processed included: it is not done yet): %+v", total, lateInLog, s.Partitions)
		}
		for _, ts := range s.Tasks {
			sum := int64(0)
			for _, p := range s.Partitions {
				if p.Task == ts.Task {
					sum += p.Lag
				}
			}
			if ts.Lag != sum {
				return fmt.Errorf("task %s lag %d, its partitions' %d", ts.Task, ts.Lag, sum)
			}
		}
		return nil
	})
	g.release()
	eventually(t, 60*time.Second, func() (err error) {
		if s, err = getStatus(qi.endpoint, token); err != nil {
			return err
		}
		return checkCaughtUp(s, in, ends, endKind)
	})
	qi.stop()
	if err := <-qi.done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Restore: a fresh instance restores the whole changelog; hold it at
	// its first restore report to see the task restoring.
	changelog := store.ChangelogTopic(appID, "counts")
	var logged map[int32]int64
	if guarantee == topology.ExactlyOnce {
		logged = map[int32]int64{}
		for _, m := range b.ConsumeAllCommitted(t, changelog) {
			logged[m.Partition]++
		}
	} else {
		logged = map[int32]int64{}
		for _, m := range b.ConsumeAll(t, changelog) {
			logged[m.Partition]++
		}
	}
	hold, held := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cfg.StateDir = t.TempDir()
	cfg.RestoreListener = func(p store.RestoreProgress) {
		once.Do(func() {
			close(held)
			select {
			case <-hold:
			case <-ctx.Done():
			}
		})
	}
	qi = startQueryInstance(t, ctx, gatedTopology(t, in, out, g), cfg, query.WithBearerToken("s3cret"))
	select {
	case <-held:
	case <-time.After(60 * time.Second):
		t.Fatal("restore did not start")
	}
	eventually(t, 30*time.Second, func() (err error) {
		if s, err = getStatus(qi.endpoint, token); err != nil {
			return err
		}
		for _, ts := range s.Tasks {
			if ts.State == query.TaskRestoring {
				return nil
			}
		}
		return fmt.Errorf("no task restoring while the restore is held: %+v", s.Tasks)
	})
	close(hold)
	eventually(t, 60*time.Second, func() (err error) {
		if s, err = getStatus(qi.endpoint, token); err != nil {
			return err
		}
		if err := checkCaughtUp(s, in, ends, endKind); err != nil {
			return err
		}
		for _, ts := range s.Tasks {
			if ts.RestoredRecords != logged[ts.Partition] {
				return fmt.Errorf("task %s restored %d records, its changelog partition holds %d", ts.Task, ts.RestoredRecords, logged[ts.Partition])
			}
		}
		if len(s.Restores) != 2 {
			return fmt.Errorf("restores: %+v", s.Restores)
		}
		for _, r := range s.Restores {
			if !r.Done || r.Restored != r.Total || r.Total < logged[r.Partition] {
				return fmt.Errorf("restore %+v: want done, all of at least %d offsets", r, logged[r.Partition])
			}
		}
		return nil
	})
}

// TestStatusWhenEndOffsetsHang: while the brokers do not answer the
// end-offset requests, GET /status still answers within its time-out,
// with the last fetch's high watermarks and the reason in problems, and
// asks the brokers once, not once per refresh; once they answer again,
// the listed offsets come back. (The embedded broker holds the requests:
// real Kafka cannot be made to.)
func TestStatusWhenEndOffsetsHang(t *testing.T) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	c := b.Embedded()
	if c == nil {
		t.Skip("needs the embedded broker, which can hold ListOffsets requests back; real Kafka cannot")
	}
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	var keys []string
	for k := 0; k < 20; k++ {
		keys = append(keys, fmt.Sprintf("key-%02d", k))
	}
	produceKeys(t, b, in, keys...)
	g := newGate()
	defer g.release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	qi := startQueryInstance(t, ctx, gatedTopology(t, in, out, g), topology.Config{ApplicationID: testutil.TopicName(t, "app"),
		Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t), CommitInterval: 100 * time.Millisecond},
		query.WithForwardTimeout(time.Second))
	ends := partitionEnds(t, b, in)
	eventually(t, 60*time.Second, func() error {
		s, err := getStatus(qi.endpoint, nil)
		if err != nil {
			return err
		}
		return checkCaughtUp(s, in, ends, "high_watermark")
	})

	var armed atomic.Bool
	var held atomic.Int32
	release := make(chan struct{})
	var releaseOnce sync.Once
	open := func() { armed.Store(false); releaseOnce.Do(func() { close(release) }) }
	defer open()
	c.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if armed.Load() {
			held.Add(1)
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	armed.Store(true)
	// Once the listed offsets are older than the half second they are
	// reused, the next status lists them again, and the request hangs.
	eventually(t, 10*time.Second, func() error {
		s, err := getStatus(qi.endpoint, nil)
		if err != nil {
			return err
		}
		if len(s.Problems) == 0 {
			return fmt.Errorf("still the listed offsets: %+v", s.Partitions)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		start := time.Now()
		s, err := getStatus(qi.endpoint, nil)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if took > 4*time.Second {
			t.Fatalf("GET /status took %v with a 1s time-out while the brokers hold the end-offset request", took)
		}
		if len(s.Problems) != 1 || !strings.Contains(s.Problems[0], "did not finish in time") {
			t.Fatalf("problems %q, want the listing that did not finish", s.Problems)
		}
		for _, p := range s.Partitions {
			if p.EndKind != "last_fetch" || p.End != ends[p.Partition] || p.Lag != 0 {
				t.Fatalf("partition %+v: want the last fetch's high watermark %d", p, ends[p.Partition])
			}
		}
	}
	if n := held.Load(); n != 1 {
		t.Fatalf("%d end-offset requests held, want 1: one listing at a time, however often the status is asked", n)
	}
	open()
	eventually(t, 30*time.Second, func() error {
		s, err := getStatus(qi.endpoint, nil)
		if err != nil {
			return err
		}
		if len(s.Problems) != 0 {
			return fmt.Errorf("problems %q", s.Problems)
		}
		return checkCaughtUp(s, in, ends, "high_watermark")
	})
}

// produceTransactions writes batches of keys to topic (2 partitions) in
// one transaction each, committed, and then abortedKeys in a transaction
// it aborts: the topic then ends with an abort marker after records that
// read_committed consumers never see, and holds commit markers between.
func produceTransactions(t *testing.T, b *testutil.Broker, topic string, batches [][]string, abortedKeys []string) {
	t.Helper()
	cfg := b.SaramaConfig()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Idempotent = true
	cfg.Producer.Transaction.ID = testutil.TopicName(t, "txn")
	cfg.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer(b.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(keys []string, commit bool) {
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		var msgs []*sarama.ProducerMessage
		for _, k := range keys {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(k), Value: sarama.StringEncoder("v"), Partition: partitionOf(k, 2)})
		}
		if err := p.SendMessages(msgs); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, keys := range batches {
		send(keys, true)
	}
	if len(abortedKeys) > 0 {
		send(abortedKeys, false)
	}
}

// TestStatusTransactionalInput: an input written by transactions (the
// output of an exactly-once application, a repartition topic under
// exactly-once) ends with transaction markers, which take offsets but
// are no records. Once every record is processed, the lag is 0 and the
// position is the end, under both guarantees, although the last record
// processed is below the end.
func TestStatusTransactionalInput(t *testing.T) {
	for _, g := range []topology.Guarantee{topology.AtLeastOnce, topology.ExactlyOnce} {
		name := map[topology.Guarantee]string{topology.AtLeastOnce: "at-least-once", topology.ExactlyOnce: "exactly-once"}[g]
		t.Run(name, func(t *testing.T) { testStatusTransactionalInput(t, g) })
	}
}

func testStatusTransactionalInput(t *testing.T, guarantee topology.Guarantee) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	var batches [][]string
	for i := 0; i < 3; i++ {
		var keys []string
		for k := 0; k < 6; k++ {
			keys = append(keys, fmt.Sprintf("key-%d-%d", i, k))
		}
		batches = append(batches, keys)
	}
	produceTransactions(t, b, in, batches, []string{"gone-1", "gone-2", "gone-3", "gone-4"})
	// The records the App processes: all 18 committed ones, and under
	// at-least-once (read_uncommitted) the aborted ones too.
	want := 18
	if guarantee == topology.AtLeastOnce {
		want += 4
	}
	g := newGate()
	defer g.release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	qi := startQueryInstance(t, ctx, gatedTopology(t, in, out, g), topology.Config{ApplicationID: testutil.TopicName(t, "app"),
		Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t), CommitInterval: 100 * time.Millisecond, Guarantee: guarantee})
	if guarantee == topology.ExactlyOnce {
		b.WaitForRecords(t, out, want, true, 60*time.Second)
	} else {
		b.WaitForRecords(t, out, want, false, 60*time.Second)
	}
	ends := partitionEnds(t, b, in) // the last offset of each partition is its abort marker
	eventually(t, 30*time.Second, func() error {
		s, err := getStatus(qi.endpoint, nil)
		if err != nil {
			return err
		}
		if len(s.Partitions) != 2 {
			return fmt.Errorf("partitions %+v", s.Partitions)
		}
		for _, p := range s.Partitions {
			// kfake and Kafka put each marker at the offset after its
			// transaction's records: the end is past every record read.
			if p.End <= ends[p.Partition] || p.Lag != 0 || p.Position != p.End || p.Committed >= p.End {
				return fmt.Errorf("partition %+v: want lag 0 and position = end > %d (the last record), committed below the end (markers follow it)", p, ends[p.Partition]-1)
			}
		}
		return nil
	})
}
