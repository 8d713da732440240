package topology_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// seenTopology remembers each key in the TTL store "seen" (ttl of event
// time) and writes "new" or "seen@<first ms>" for each record to out.
func seenTopology(t testing.TB, in, out string, ttl time.Duration, opts ...topology.StoreOption) *topology.Topology {
	t.Helper()
	b := topology.New()
	seen := topology.TTLStore(b, "seen", serde.String(), serde.Int64(), ttl, opts...)
	src := topology.Source(b, "in", in, serde.String(), serde.String())
	p := topology.ProcessFunc(b, "check", src, func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		s, err := seen.From(ctx)
		if err != nil {
			return err
		}
		if _, err := s.AdvanceTime(r.Timestamp); err != nil {
			return err
		}
		first, ok, err := s.Get(r.Key)
		if err != nil {
			return err
		}
		if ok {
			return ctx.Forward(processor.Revalue(r, fmt.Sprintf("seen@%d", first)))
		}
		if err := s.PutAt(r.Key, r.Timestamp.UnixMilli(), r.Timestamp); err != nil {
			return err
		}
		return ctx.Forward(processor.Revalue(r, "new"))
	}, topology.WithStores(seen.Name()))
	topology.Sink(b, "out", out, p, serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestDriverTTLStoreDeclared(t *testing.T) {
	d, err := testutil.NewTestDriver(seenTopology(t, "in", "out", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "in", serde.String(), serde.String())
	out := testutil.NewOutputTopic(d, "out", serde.String(), serde.String())
	t0 := time.UnixMilli(1_000_000)
	for _, p := range []struct {
		k  string
		at time.Time
	}{{"a", t0}, {"a", t0.Add(time.Minute - time.Millisecond)}, {"b", t0.Add(time.Minute)}, {"a", t0.Add(time.Minute)}} {
		if err := in.Pipe(p.k, "x", p.at); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := out.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Key+":"+r.Value)
	}
	want := fmt.Sprint([]string{"a:new", fmt.Sprintf("a:seen@%d", t0.UnixMilli()), "b:new", "a:new"})
	if fmt.Sprint(got) != want {
		t.Fatalf("outputs %v, want %v", got, want)
	}
	desc := seenTopology(t, "in", "out", time.Minute).Describe()
	if !containsAll(desc, "seen: ttl[string, int64]") {
		t.Fatalf("Describe does not show the TTL store:\n%s", desc)
	}
}

func TestDriverWindowStoreDeclared(t *testing.T) {
	b := topology.New()
	win := topology.WindowStore(b, "per-minute", serde.String(), serde.Int64(), store.WindowOptions{Retention: 2 * time.Minute})
	src := topology.Source(b, "in", "in", serde.String(), serde.String())
	p := topology.ProcessFunc(b, "count", src, func(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
		w, err := processor.WindowStore[string, int64](ctx, win.Name())
		if err != nil {
			return err
		}
		start := r.Timestamp.Truncate(time.Minute)
		n, _, err := w.Fetch(r.Key, start)
		if err != nil {
			return err
		}
		if err := w.Put(r.Key, start, n+1); err != nil {
			return err
		}
		return ctx.Forward(processor.Record[string, int64]{Key: r.Key, Value: n + 1, Timestamp: r.Timestamp})
	}, topology.WithStores(win.Name()))
	topology.Sink(b, "out", "out", p, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "in", serde.String(), serde.String())
	out := testutil.NewOutputTopic(d, "out", serde.String(), serde.Int64())
	t0 := time.UnixMilli(60_000 * 1000)
	for _, at := range []time.Time{t0, t0.Add(time.Second), t0.Add(time.Minute), t0.Add(2 * time.Second)} {
		if err := in.Pipe("k", "x", at); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := out.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range recs {
		got = append(got, r.Value)
	}
	if fmt.Sprint(got) != "[1 2 1 3]" {
		t.Fatalf("window counts %v, want [1 2 1 3]", got)
	}
}

// TestTypedStoreAccessorErrors: the window and TTL accessors fail as
// processor.KeyValueStore does.
func TestTypedStoreAccessorErrors(t *testing.T) {
	b := topology.New()
	topology.TTLStore(b, "ttl", serde.String(), serde.Int64(), time.Minute)
	topology.WindowStore(b, "win", serde.String(), serde.Int64(), store.WindowOptions{Retention: time.Minute})
	src := topology.Source(b, "in", "in", serde.String(), serde.String())
	var errs []error
	topology.ProcessFunc(b, "p", src, func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		_, e1 := processor.WindowStore[string, int64](ctx, "ttl")
		_, e2 := processor.TTLStore[string, string](ctx, "ttl")
		_, e3 := processor.TTLStore[string, int64](ctx, "win")
		_, e4 := processor.WindowStore[string, int64](ctx, "other")
		_, e5 := processor.TTLStore[string, int64](ctx, "ttl")
		_, e6 := processor.WindowStore[string, int64](ctx, "win")
		errs = []error{e1, e2, e3, e4, e5, e6}
		return nil
	}, topology.WithStores("ttl", "win"))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := testutil.NewInputTopic(d, "in", serde.String(), serde.String()).Pipe("k", "v", time.UnixMilli(1)); err != nil {
		t.Fatal(err)
	}
	var te *processor.StoreTypeError
	var ue *processor.UnknownStoreError
	for i, e := range errs[:3] {
		if !errors.As(e, &te) {
			t.Errorf("case %d: %v, want *StoreTypeError", i, e)
		}
	}
	if !errors.As(errs[3], &ue) {
		t.Errorf("unknown store: %v, want *UnknownStoreError", errs[3])
	}
	if errs[4] != nil || errs[5] != nil {
		t.Errorf("right types: %v, %v", errs[4], errs[5])
	}
}

func TestBuildRefusesBadWindowAndTTLOptions(t *testing.T) {
	b := topology.New()
	topology.TTLStore(b, "ttl", serde.String(), serde.Int64(), 0)
	topology.WindowStore(b, "win", serde.String(), serde.Int64(), store.WindowOptions{})
	_, err := b.Build()
	if err == nil || !containsAll(err.Error(), "ttl", "TTL", "win", "Retention") {
		t.Fatalf("Build = %v, want problems naming both stores", err)
	}
}

// TestAppTTLStoreRestoresFromChangelog runs seenTopology, stops it, and
// runs it again on an empty state directory: the TTL store restores from
// its changelog (through TTLStoreApply), so a key seen in the first run is
// still seen in the second.
func TestAppTTLStoreRestoresFromChangelog(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	appID := testutil.TopicName(t, "app")
	t0 := time.Now().Truncate(time.Millisecond)
	run := func(key string, at time.Time, wantOutputs int) []string {
		t.Helper()
		b.Produce(t, in, &sarama.ProducerMessage{Key: sarama.StringEncoder(key), Value: sarama.StringEncoder("x"), Timestamp: at})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, done := startApp(t, ctx, seenTopology(t, in, out, time.Hour), topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
		})
		deadline := time.Now().Add(60 * time.Second)
		var got []string
		for {
			got = got[:0]
			for _, m := range b.ConsumeAll(t, out) {
				got = append(got, string(m.Key)+":"+string(m.Value))
			}
			if len(got) >= wantOutputs {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("outputs %v, want %d", got, wantOutputs)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		return got
	}
	run("a", t0, 1)
	got := run("a", t0.Add(time.Second), 2)
	want := fmt.Sprint([]string{"a:new", fmt.Sprintf("a:seen@%d", t0.UnixMilli())})
	if fmt.Sprint(got) != want {
		t.Fatalf("outputs %v, want %v", got, want)
	}
}

// windowCountTopology counts records per key and minute in the window
// store "per-minute" and writes each new count to out.
func windowCountTopology(t testing.TB, in, out string) *topology.Topology {
	t.Helper()
	b := topology.New()
	win := topology.WindowStore(b, "per-minute", serde.String(), serde.Int64(), store.WindowOptions{Retention: time.Hour})
	src := topology.Source(b, "in", in, serde.String(), serde.String())
	p := topology.ProcessFunc(b, "count", src, func(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
		w, err := win.From(ctx)
		if err != nil {
			return err
		}
		start := r.Timestamp.Truncate(time.Minute)
		n, _, err := w.Fetch(r.Key, start)
		if err != nil {
			return err
		}
		if err := w.Put(r.Key, start, n+1); err != nil {
			return err
		}
		return ctx.Forward(processor.Record[string, int64]{Key: r.Key, Value: n + 1, Timestamp: r.Timestamp})
	}, topology.WithStores(win.Name()))
	topology.Sink(b, "out", out, p, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestAppWindowStoreRestoresFromChangelog: a declared window store's
// changelog is created "compact,delete" with retention.ms = retention + 1
// day, and a restart on an empty state directory restores the windows
// (through WindowStoreApply), so counting continues.
func TestAppWindowStoreRestoresFromChangelog(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	appID := testutil.TopicName(t, "app")
	t0 := time.Now().Truncate(time.Minute)
	run := func(at time.Time, wantOutputs int) []int64 {
		t.Helper()
		b.Produce(t, in, &sarama.ProducerMessage{Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("x"), Timestamp: at})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, done := startApp(t, ctx, windowCountTopology(t, in, out), topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
		})
		deadline := time.Now().Add(60 * time.Second)
		var got []int64
		for {
			got = got[:0]
			for _, m := range b.ConsumeAll(t, out) {
				v, err := serde.Int64().Deserialize(out, m.Value)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
			if len(got) >= wantOutputs {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("outputs %v, want %d", got, wantOutputs)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		return got
	}
	run(t0, 1)
	if got := fmt.Sprint(run(t0.Add(time.Second), 2)); got != "[1 2]" {
		t.Fatalf("counts %s, want [1 2]", got)
	}
	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	changelog := store.ChangelogTopic(appID, "per-minute")
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: changelog,
		ConfigNames: []string{"cleanup.policy", "retention.ms"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]string{}
	for _, e := range entries {
		cfg[e.Name] = e.Value
	}
	wantRet := fmt.Sprint((time.Hour + topology.WindowChangelogExtraRetention).Milliseconds())
	if cfg["cleanup.policy"] != "compact,delete" || cfg["retention.ms"] != wantRet {
		t.Fatalf("changelog %s config %v, want cleanup.policy=compact,delete retention.ms=%s", changelog, cfg, wantRet)
	}
}
