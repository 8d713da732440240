package query_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// counter counts records per key in the "counts" store and forwards each
// new count.
type counter struct {
	counts store.KeyValueStore[string, int64]
}

func newCounter() processor.Processor[string, string, string, int64] { return &counter{} }

func (c *counter) Init(ctx processor.Context[string, int64]) (err error) {
	c.counts, err = processor.KeyValueStore[string, int64](ctx, "counts")
	return err
}

func (c *counter) Process(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
	n, _, err := c.counts.Get(r.Key)
	if err != nil {
		return err
	}
	n++
	if err := c.counts.Put(r.Key, n); err != nil {
		return err
	}
	return ctx.Forward(processor.Revalue(r, n))
}

func (c *counter) Close() error { return nil }

// countTopology counts records per key of in in a LevelDB store with a
// changelog ("counts") and writes every new count to out.
func countTopology(t testing.TB, in, out string) *topology.Topology {
	t.Helper()
	b := topology.New()
	src := topology.Source(b, "in", in, serde.String(), serde.String())
	topology.KeyValueStore(b, "counts", serde.String(), serde.Int64())
	counts := topology.Process(b, "count", src, newCounter, topology.WithStores("counts"))
	topology.Sink(b, "out", out, counts, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// lastCounts reads out and returns the last count per key.
func lastCounts(t *testing.T, b *testutil.Broker, topic string) map[string]int64 {
	t.Helper()
	last := map[string]int64{}
	for _, m := range b.ConsumeAll(t, topic) {
		v, err := serde.Int64().Deserialize(topic, m.Value)
		if err != nil {
			t.Fatalf("%s/%d@%d: %v", topic, m.Partition, m.Offset, err)
		}
		last[string(m.Key)] = v
	}
	return last
}

// waitCounts polls out until it holds keys keys, each counted at least
// want, within timeout.
func waitCounts(t *testing.T, b *testutil.Broker, topic string, keys int, want int64, timeout time.Duration) map[string]int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := lastCounts(t, b, topic)
		done := len(got) == keys
		for _, v := range got {
			if v < want {
				done = false
			}
		}
		if done {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d keys, counts %v; want %d keys at >= %d", timeout, len(got), got, keys, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startApp runs an App of topo until ctx ends; done receives Run's error.
func startApp(t *testing.T, ctx context.Context, topo *topology.Topology, cfg topology.Config) (*topology.App, <-chan error) {
	t.Helper()
	app, err := topology.NewApp(topo, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	return app, done
}

// testLogger sends logs to the test's log at warning level and above.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
