package task_test

import (
	"errors"
	"testing"
	"time"

	"github.com/brookstream/brook/internal/meter"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/topology"
)

// TestMeterCountsNodes runs records through source → processor → sink with
// a meter and checks every count: records per node, records produced and
// their end-to-end latency, records an error handler dead-lettered (wrote
// through ErrorContext.Produce) or dropped (Continue without writing), and
// records a processor dropped through task.DropCounter.
func TestMeterCountsNodes(t *testing.T) {
	b := topology.New(
		topology.WithDeserializationHandler(processor.DeadLetter("dlq", nil)),
		topology.WithProcessingHandler(func(ec processor.ErrorContext) processor.HandlerResponse { return processor.Continue }),
	)
	in := topology.Source(b, "src", "in", serde.String(), serde.Int64())
	p := topology.ProcessFunc(b, "proc", in, func(ctx processor.Context[string, int64], r processor.Record[string, int64]) error {
		switch r.Key {
		case "late":
			task.CountDropped(ctx, metrics.DropLate)
			return nil
		case "fail":
			return errors.New("refused")
		}
		return ctx.Forward(r)
	})
	topology.Sink(b, "out", "out", p, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	g, err := task.GraphOf(topo.InternalHandle())
	if err != nil {
		t.Fatal(err)
	}
	m := meter.NewApp()
	tm := m.Task("0_3")
	col := &collector{}
	tk, err := task.New(task.Config{
		ID: processor.TaskID{SubTopology: 0, Partition: 3}, Graph: g, Collector: col, WallClock: t0,
		Stores: func(processor.TaskID, *task.StoreSpec) (store.Engine, []store.Option, error) {
			return store.NewMemoryEngine(), nil, nil
		},
		Meter: tm,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	v := func(n int64) []byte { b, _ := serde.Int64().Serialize("in", n); return b }
	recs := []task.RawRecord{
		{Key: []byte("a"), Value: v(1)},
		{Key: []byte("b"), Value: v(2)},
		{Key: []byte("bad"), Value: []byte("not an int64")}, // dead-lettered
		{Key: []byte("late"), Value: v(3)},                  // dropped by the processor
		{Key: []byte("fail"), Value: v(4)},                  // dropped by the processing handler
	}
	now := time.Now()
	for i, r := range recs {
		r.Topic, r.Partition, r.Offset, r.Timestamp = "in", 3, int64(i), now.Add(-2*time.Second)
		tm.Begin(now)
		if err := tk.Process(r); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	var s metrics.AppSnapshot
	m.Fill(&s)
	nodes := map[string]metrics.NodeSnapshot{}
	for _, n := range s.Nodes {
		if n.Task != "0_3" {
			t.Errorf("node %s in task %s, want 0_3", n.Node, n.Task)
		}
		nodes[n.Node] = n
	}
	if got := nodes["src"]; got.Kind != "source" || got.RecordsProcessed != 5 || got.DeadLettered != 1 {
		t.Errorf("src = %+v; want source, 5 processed, 1 dead-lettered", got)
	}
	if got := nodes["proc"]; got.RecordsProcessed != 4 || got.Dropped != (metrics.Drops{Late: 1, Error: 1}) {
		t.Errorf("proc = %+v; want 4 processed, 1 late and 1 error dropped", got)
	}
	got := nodes["out"]
	if got.Kind != "sink" || got.RecordsProcessed != 2 || got.RecordsProduced != 2 {
		t.Errorf("out = %+v; want sink, 2 processed, 2 produced", got)
	}
	if h := got.EndToEndLatency; h.Count != 2 || h.Sum != 4*time.Second {
		t.Errorf("out end-to-end latency: count %d sum %v; want 2 and 4s (2s each)", h.Count, h.Sum)
	}
	// What the dead-letter handler sent went to the collector too.
	dlq := 0
	for _, r := range col.sent {
		if r.Topic == "dlq" {
			dlq++
		}
	}
	if dlq != 1 {
		t.Errorf("%d dead-letter records sent, want 1", dlq)
	}
}

// TestNoMeterCountsNothing checks that a task without a meter runs the same
// records (nil meter entries are no-ops) and that CountDropped on a
// context that is not the task's does nothing.
func TestNoMeterCountsNothing(t *testing.T) {
	var events []string
	b := topology.New()
	in := topology.Source(b, "src", "in", serde.String(), serde.String())
	p := topology.Process(b, "p", in, func() processor.Processor[string, string, string, string] {
		return &probe{events: &events}
	})
	topology.Sink(b, "out", "out", p, serde.String(), serde.String())
	h := newHarness(t, b, 0)
	if err := h.process("in", 0, "k", "v", t0); err != nil {
		t.Fatal(err)
	}
	if len(h.col.sent) != 1 {
		t.Fatalf("sent %d records, want 1", len(h.col.sent))
	}
	task.CountDropped(struct{}{}, metrics.DropLate) // not a task's context: nothing happens
}
