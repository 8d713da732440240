package topology_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// logRecorder is a slog.Handler that keeps every record (and forwards it
// to the test log).
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
	t       testing.TB
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	if r.Level >= slog.LevelWarn {
		h.t.Logf("%s %s", r.Level, r.Message)
	}
	return nil
}

// find returns the attributes of the first record at level or above whose
// attributes include every pair in want.
func (h *logRecorder) find(level slog.Level, want map[string]string) (map[string]string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Level < level {
			continue
		}
		attrs := map[string]string{"msg": r.Message}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		ok := true
		for k, v := range want {
			if attrs[k] != v {
				ok = false
			}
		}
		if ok {
			return attrs, true
		}
	}
	return nil, false
}

// leakyTopology sums int64 values per key like sumTopology, but its
// processor opens an iterator over the store for every record and never
// closes it.
func leakyTopology(t testing.TB, in, out string) *topology.Topology {
	t.Helper()
	b := topology.New()
	src := topology.Source(b, "in", in, serde.String(), serde.Int64())
	topology.KeyValueStore(b, "sums", serde.String(), serde.Int64())
	sums := topology.ProcessFunc(b, "sum", src, func(ctx processor.Context[string, int64], r processor.Record[string, int64]) error {
		s, err := processor.KeyValueStore[string, int64](ctx, "sums")
		if err != nil {
			return err
		}
		if _, err := s.All(); err != nil { // leaked on purpose
			return err
		}
		v, _, err := s.Get(r.Key)
		if err != nil {
			return err
		}
		v += r.Value
		if err := s.Put(r.Key, v); err != nil {
			return err
		}
		return ctx.Forward(processor.Revalue(r, v))
	}, topology.WithStores("sums"))
	topology.Sink(b, "out", out, sums, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestAppLeakedIteratorIsReportedAndStoreCloses: a processor that leaks
// store iterators does not keep the task's LevelDB open. When the task
// closes, the leak is logged at error level with the task and the store,
// the store closes anyway, and the task reopens on this instance (a second
// Run in the same process, same state directory) and goes on.
func TestAppLeakedIteratorIsReportedAndStoreCloses(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	produce := func(values ...int64) {
		var msgs []*sarama.ProducerMessage
		for _, v := range values {
			msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder("acct"), Value: sarama.ByteEncoder(int64Bytes(v))})
		}
		b.Produce(t, in, msgs...)
	}
	waitSum := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if lastCounts(t, b, out)["acct"] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("sum = %v, want %d", lastCounts(t, b, out), want)
			}
		}
	}
	appID, dir := testutil.TopicName(t, "app"), t.TempDir()
	rec := &logRecorder{t: t}
	cfg := topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, CommitInterval: 50 * time.Millisecond, Logger: slog.New(rec)}

	produce(1, 2, 3)
	ctx, cancel := context.WithCancel(context.Background())
	_, done := startApp(t, ctx, leakyTopology(t, in, out), cfg)
	waitSum(6)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	attrs, ok := rec.find(slog.LevelError, map[string]string{"task": "0_0", "store": "sums"})
	if !ok {
		t.Fatal("no error-level log naming task 0_0 and store sums for the leaked iterators")
	}
	t.Logf("leak reported: %v", attrs)

	// The task reopens here: its LevelDB was closed despite the leak.
	produce(4)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	_, done2 := startApp(t, ctx2, leakyTopology(t, in, out), cfg)
	waitSum(10)
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("second Run: %v", err)
	}
}
