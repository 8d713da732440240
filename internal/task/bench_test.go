package task_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/brookstream/brook/internal/meter"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/topology"
)

type nopCollector struct{ n int }

func (c *nopCollector) Send(processor.ProducedRecord, task.Origin) error { c.n++; return nil }
func (c *nopCollector) PartitionCount(string) (int32, error)             { return 1, nil }

func benchTask(b *testing.B, build func(*topology.Builder)) *task.Task {
	return benchTaskWith(b, build, false, nil)
}

func benchTaskLineage(b *testing.B, build func(*topology.Builder), lineage bool) *task.Task {
	return benchTaskWith(b, build, lineage, nil)
}

func benchTaskMeter(b *testing.B, build func(*topology.Builder), m *meter.Task) *task.Task {
	return benchTaskWith(b, build, false, m)
}

func benchTaskWith(b *testing.B, build func(*topology.Builder), lineage bool, m *meter.Task) *task.Task {
	tb := topology.New()
	build(tb)
	topo, err := tb.Build()
	if err != nil {
		b.Fatal(err)
	}
	g, _ := task.GraphOf(topo.InternalHandle())
	tk, err := task.New(task.Config{Graph: g, Collector: &nopCollector{}, ApplicationID: "bench-app", LineageHeaders: lineage, Meter: m,
		Stores: func(processor.TaskID, *task.StoreSpec) (store.Engine, []store.Option, error) {
			return store.NewMemoryEngine(), nil, nil
		}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tk.Close() })
	return tk
}

func runBench(b *testing.B, tk *task.Task, keys int) {
	recs := make([]task.RawRecord, keys)
	for i := range recs {
		recs[i] = task.RawRecord{Topic: "in", Key: []byte("key-" + strconv.Itoa(i)), Value: []byte("some value of a record"),
			Timestamp: time.UnixMilli(int64(i))}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := recs[i%keys]
		r.Offset = int64(i)
		if err := tk.Process(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessStateless measures source → map values → sink.
func BenchmarkProcessStateless(b *testing.B) {
	tk := benchTask(b, func(tb *topology.Builder) {
		in := topology.Source(tb, "src", "in", serde.String(), serde.String())
		n := topology.ProcessFunc(tb, "len", in, processor.MapValues(func(_ string, v string) (int64, error) { return int64(len(v)), nil }))
		topology.Sink(tb, "out", "out", n, serde.String(), serde.Int64())
	})
	runBench(b, tk, 1000)
}

// BenchmarkProcessLineage measures source → map values → sink with and
// without lineage headers: their cost per output record.
func BenchmarkProcessLineage(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run("lineage="+strconv.FormatBool(on), func(b *testing.B) {
			tk := benchTaskLineage(b, func(tb *topology.Builder) {
				in := topology.Source(tb, "src", "in", serde.String(), serde.String())
				n := topology.ProcessFunc(tb, "len", in, processor.MapValues(func(_ string, v string) (int64, error) { return int64(len(v)), nil }))
				topology.Sink(tb, "out", "out", n, serde.String(), serde.Int64())
			}, on)
			runBench(b, tk, 1000)
		})
	}
}

// BenchmarkProcessCount measures a count per key in an in-memory store.
func BenchmarkProcessCount(b *testing.B) {
	tk := benchTask(b, func(tb *topology.Builder) {
		in := topology.Source(tb, "src", "in", serde.String(), serde.String())
		topology.KeyValueStore(tb, "counts", serde.String(), serde.Int64())
		n := topology.ProcessFunc(tb, "count", in, func(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
			kv, err := processor.KeyValueStore[string, int64](ctx, "counts")
			if err != nil {
				return err
			}
			c, _, err := kv.Get(r.Key)
			if err != nil {
				return err
			}
			if err := kv.Put(r.Key, c+1); err != nil {
				return err
			}
			return ctx.Forward(processor.Revalue(r, c+1))
		}, topology.WithStores("counts"))
		topology.Sink(tb, "out", "out", n, serde.String(), serde.Int64())
	})
	runBench(b, tk, 10000)
}

// BenchmarkProcessMeter is BenchmarkProcessStateless with the task's
// measurements off and on: the difference is the core's per-record cost
// of measuring (a count per node, the sink's records and end-to-end
// latency).
func BenchmarkProcessMeter(b *testing.B) {
	build := func(tb *topology.Builder) {
		in := topology.Source(tb, "src", "in", serde.String(), serde.String())
		n := topology.ProcessFunc(tb, "len", in, processor.MapValues(func(_ string, v string) (int64, error) { return int64(len(v)), nil }))
		topology.Sink(tb, "out", "out", n, serde.String(), serde.Int64())
	}
	b.Run("metrics=false", func(b *testing.B) { runBench(b, benchTaskMeter(b, build, nil), 1000) })
	b.Run("metrics=true", func(b *testing.B) {
		tm := meter.NewApp().Task("0_0")
		tm.Begin(time.Now())
		runBench(b, benchTaskMeter(b, build, tm), 1000)
	})
}
