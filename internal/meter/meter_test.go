package meter

import (
	"testing"
	"time"

	"github.com/brookstream/brook/metrics"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHistogramBuckets(t *testing.T) {
	h := NewHistogram([]time.Duration{time.Millisecond, 10 * time.Millisecond})
	for _, d := range []time.Duration{-time.Second, 0, time.Millisecond, time.Millisecond + 1, 10 * time.Millisecond, time.Hour} {
		h.Observe(d)
	}
	s := h.Snapshot()
	if want := []uint64{3, 2, 1}; len(s.Counts) != 3 || s.Counts[0] != want[0] || s.Counts[1] != want[1] || s.Counts[2] != want[2] {
		t.Errorf("counts %v, want %v (bounds inclusive, negative as 0)", s.Counts, want)
	}
	if s.Count != 6 {
		t.Errorf("count %d, want 6", s.Count)
	}
	if want := 2*time.Millisecond + 1 + 10*time.Millisecond + time.Hour; s.Sum != want {
		t.Errorf("sum %v, want %v", s.Sum, want)
	}
}

func TestHistogramObserveDoesNotAllocate(t *testing.T) {
	h := NewHistogram(ProcessBounds)
	if n := testing.AllocsPerRun(1000, func() { h.Observe(3 * time.Microsecond) }); n != 0 {
		t.Errorf("Observe allocates %v times per call", n)
	}
	m := NewApp()
	tk := m.Task("0_0")
	node := tk.Node("sink", "sink")
	p := tk.Partition("in", 0)
	ts := time.Now()
	if n := testing.AllocsPerRun(1000, func() {
		tk.Begin(ts)
		node.Received()
		node.Produced(ts)
		p.Consumed()
		tk.Processed(time.Microsecond)
	}); n != 0 {
		t.Errorf("the per-record path allocates %v times per record", n)
	}
}

func TestNilEntriesRecordNothing(t *testing.T) {
	var m *App
	tk := m.Task("0_0")
	tk.Begin(time.Now())
	tk.Processed(time.Second)
	tk.Node("n", "sink").Produced(time.Now())
	tk.Node("n", "sink").Dropped(metrics.DropLate)
	tk.Partition("t", 0).Consumed()
	tk.Running()
	m.Restore("0_0", "s", 0).Progress(time.Now(), 1, 0)
	m.ObserveCommit(time.Second)
	m.ObserveQuery("/x", 200, time.Second)
	m.RebalanceStarted(time.Now())
	m.RebalanceDone(time.Now())
	var s metrics.AppSnapshot
	m.Fill(&s)
	if len(s.Tasks) != 0 {
		t.Errorf("nil App filled %+v", s)
	}
}

func TestRestoreProgress(t *testing.T) {
	m := NewApp()
	r := m.Restore("0_1", "counts", 1)
	t0 := time.Unix(1000, 0)
	r.Begin(t0)
	r.Progress(t0.Add(time.Second), 400, 600)
	var s metrics.AppSnapshot
	m.Fill(&s)
	got := s.Restores[0]
	if !got.Restoring || got.Records != 400 || got.Remaining != 600 || got.LastRecords != 400 || !got.Started.Equal(t0) {
		t.Errorf("mid-restore %+v", got)
	}
	r.Progress(t0.Add(2*time.Second), 1000, 0)
	// A second restore of the same partition (the task came back).
	r.Begin(t0.Add(time.Minute))
	r.Progress(t0.Add(time.Minute), 0, 50)
	r.Progress(t0.Add(time.Minute+time.Second), 50, 0)
	s = metrics.AppSnapshot{}
	m.Fill(&s)
	got = s.Restores[0]
	if got.Restoring || got.Records != 1050 || got.Remaining != 0 || got.LastRecords != 50 || !got.Done.Equal(t0.Add(time.Minute+time.Second)) {
		t.Errorf("after two restores %+v; want 1050 records in all, 50 in the last", got)
	}
	if got.Task != "0_1" || got.Store != "counts" || got.Partition != 1 {
		t.Errorf("labels %+v", got)
	}
}

func TestRebalanceAndQueries(t *testing.T) {
	m := NewApp()
	t0 := time.Unix(1000, 0)
	m.RebalanceStarted(t0)
	m.RebalanceStarted(t0.Add(time.Second)) // already in progress: kept
	m.RebalanceDone(t0.Add(3 * time.Second))
	m.RebalanceDone(t0.Add(9 * time.Second)) // none in progress: ignored
	m.ObserveQuery("/stores/{store}/keys/{key}", 404, time.Millisecond)
	m.ObserveQuery("/stores/{store}/keys/{key}", 200, time.Millisecond)
	m.ObserveQuery("/stores/{store}/keys/{key}", 200, time.Millisecond)
	var s metrics.AppSnapshot
	m.Fill(&s)
	if s.Rebalances.Count != 1 || s.Rebalances.Sum != 3*time.Second {
		t.Errorf("rebalances %+v; want one of 3s", s.Rebalances)
	}
	if len(s.Queries) != 2 || s.Queries[0].Status != 200 || s.Queries[0].Latency.Count != 2 || s.Queries[1].Status != 404 {
		t.Errorf("queries %+v", s.Queries)
	}
}

// BenchmarkPerRecord is what measuring adds per record of a
// source → processor → sink task: three node counts, the sink's produced
// count and end-to-end bucket, the task's processed count and latency
// bucket, the partition's consumed count.
func BenchmarkPerRecord(b *testing.B) {
	m := NewApp()
	tk := m.Task("0_0")
	src, proc, sink := tk.Node("src", "source"), tk.Node("proc", "processor"), tk.Node("out", "sink")
	p := tk.Partition("in", 0)
	now := time.Now()
	ts := now.Add(-20 * time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		p.Consumed()
		tk.Begin(now)
		src.Received()
		proc.Received()
		sink.Received()
		sink.Produced(ts)
		tk.Processed(4 * time.Microsecond)
	}
}
