package topology_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// update renders a windowed update as "key@start-end=value@ts" with
// times in seconds, to keep the expectations short.
func update[V any](r processor.Record[topology.Windowed[string], topology.Change[V]]) string {
	sec := func(t time.Time) string { return fmt.Sprint(t.UnixMilli() / 1000) }
	if r.Value.Deleted {
		return fmt.Sprintf("%s@%s-%s=deleted@%s", r.Key.Key, sec(r.Key.Start), sec(r.Key.End), sec(r.Timestamp))
	}
	return fmt.Sprintf("%s@%s-%s=%v@%s", r.Key.Key, sec(r.Key.Start), sec(r.Key.End), r.Value.Value, sec(r.Timestamp))
}

func updates[V any](t *testing.T, o *testutil.OutputTopic[topology.Windowed[string], topology.Change[V]]) string {
	t.Helper()
	recs, err := o.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, update(r))
	}
	return strings.Join(out, " ")
}

func secs(s int64) time.Time { return time.UnixMilli(s * 1000) }

type windowRig[V any] struct {
	d   *testutil.TestDriver
	in  *testutil.InputTopic[string, int64]
	out *testutil.OutputTopic[topology.Windowed[string], topology.Change[V]]
}

func (w windowRig[V]) pipe(t *testing.T, key string, v int64, at time.Time) {
	t.Helper()
	if err := w.in.Pipe(key, v, at); err != nil {
		t.Fatal(err)
	}
}

// newWindowRig builds in → GroupByKey → WindowedBy(w) → agg → ToStream →
// out, with declare adding the aggregation (and more) between.
func newWindowRig[V any](t *testing.T, values serde.Serde[V], declare func(topology.TimeWindowedKStream[string, int64]) topology.KTable[topology.Windowed[string], V], w topology.Windows, opts ...testutil.DriverOption) windowRig[V] {
	t.Helper()
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
	declare(topology.WindowedBy(s.GroupByKey(), w)).ToStream("updates").
		To("out", "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(values))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return windowRig[V]{d: d, in: testutil.NewInputTopic(d, "in", serde.String(), serde.Int64()),
		out: testutil.NewOutputTopic(d, "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(values))}
}

func count(ws topology.TimeWindowedKStream[string, int64]) topology.KTable[topology.Windowed[string], int64] {
	return ws.Count("counts").KTable
}

// TestTumblingWindowBoundaries: windows are [start, end); a record exactly
// at a window's end opens the next window; updates carry the window's
// largest record timestamp.
func TestTumblingWindowBoundaries(t *testing.T) {
	w := newWindowRig(t, serde.Int64(), count, topology.Tumbling(10*time.Second).Grace(5*time.Second))
	w.pipe(t, "a", 1, secs(0))
	w.pipe(t, "a", 1, secs(9)) // last second of [0,10)
	w.pipe(t, "a", 1, secs(10))
	w.pipe(t, "a", 1, secs(3)) // out of order within grace: timestamp stays 9
	if got, want := updates(t, w.out), "a@0-10=1@0 a@0-10=2@9 a@10-20=1@10 a@0-10=3@9"; got != want {
		t.Fatalf("updates\n got %s\nwant %s", got, want)
	}
	// The exact millisecond before the end is still in the window.
	w.pipe(t, "b", 1, time.UnixMilli(19_999))
	w.pipe(t, "b", 1, time.UnixMilli(20_000))
	if got, want := updates(t, w.out), "b@10-20=1@19 b@20-30=1@20"; got != want {
		t.Fatalf("updates\n got %s\nwant %s", got, want)
	}
}

// TestTimeWindowGraceBoundary: with grace 5s, window [0,10) accepts
// records while stream time < 15s: at stream time 14.999s it takes a late
// record, at exactly 15s the record is late and dropped.
func TestTimeWindowGraceBoundary(t *testing.T) {
	w := newWindowRig(t, serde.Int64(), count, topology.Tumbling(10*time.Second).Grace(5*time.Second))
	w.pipe(t, "a", 1, secs(1))
	w.pipe(t, "x", 1, time.UnixMilli(14_999)) // stream time end+grace-1ms
	w.pipe(t, "a", 1, secs(2))                // accepted
	w.pipe(t, "x", 1, secs(15))               // stream time end+grace: [0,10) closed
	w.pipe(t, "a", 1, secs(3))                // late: dropped
	w.pipe(t, "a", 1, secs(10))               // the next window is open
	if got, want := updates(t, w.out), "a@0-10=1@1 x@10-20=1@14 a@0-10=2@2 x@10-20=2@15 a@10-20=1@10"; got != want {
		t.Fatalf("updates\n got %s\nwant %s", got, want)
	}
}

// TestHoppingWindowsOverlap: size 10s advancing by 5s puts each record in
// two windows; a record late for one of them still counts in the other,
// and only the closed window's copy goes to the late stream.
func TestHoppingWindowsOverlap(t *testing.T) {
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
	ws := topology.WindowedBy(s.GroupByKey(), topology.Hopping(10*time.Second, 5*time.Second))
	ws.Count("counts").ToStream("updates").To("out", "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	ws.LateRecords("late").To("late-out", "late", serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "in", serde.String(), serde.Int64())
	out := testutil.NewOutputTopic(d, "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	late := testutil.NewOutputTopic(d, "late", serde.String(), serde.Int64())
	for _, p := range []struct {
		k  string
		at int64
	}{{"a", 12}, {"a", 5}, {"a", 15}, {"a", 11}} {
		if err := in.Pipe(p.k, 1, secs(p.at), processor.Header{Key: "trace", Value: []byte(fmt.Sprint(p.at))}); err != nil {
			t.Fatal(err)
		}
	}
	// 12 → [5,15) [10,20); 5 → late for [0,10) (stream time 12, grace 0),
	// counts in [5,15); 15 (stream time 15 closes [5,15)) → [10,20)
	// [15,25); 11 → late for [5,15), counts in [10,20).
	want := "a@5-15=1@12 a@10-20=1@12 a@5-15=2@12 a@10-20=2@15 a@15-25=1@15 a@10-20=3@15"
	if got := updates(t, out); got != want {
		t.Fatalf("updates\n got %s\nwant %s", got, want)
	}
	recs, err := late.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		h := func(k string) string { v, _ := r.Headers.Get(k); return string(v) }
		got = append(got, fmt.Sprint(r.Key, "@", r.Timestamp.UnixMilli(), " ", h("trace"), " ", h(topology.LateReasonHeader), " ",
			h(topology.LateWindowStartHeader), "-", h(topology.LateWindowEndHeader), " ", h(topology.LateStreamTimeHeader), " ", h(topology.LateGraceHeader)))
	}
	if g, want := strings.Join(got, "; "), "a@5000 5 late 0-10000 12000 0; a@11000 11 late 5000-15000 15000 0"; g != want {
		t.Fatalf("late records\n got %s\nwant %s", g, want)
	}
}

// TestWindowedReduceAndAggregate: Reduce folds values (the first value is
// the aggregate), WindowedAggregate starts from init and may change the
// type.
func TestWindowedReduceAndAggregate(t *testing.T) {
	sum := newWindowRig(t, serde.Int64(), func(ws topology.TimeWindowedKStream[string, int64]) topology.KTable[topology.Windowed[string], int64] {
		return ws.Reduce("sums", func(agg, v int64) (int64, error) { return agg + v, nil }).KTable
	}, topology.Tumbling(time.Minute))
	sum.pipe(t, "a", 5, secs(1))
	sum.pipe(t, "a", 7, secs(2))
	sum.pipe(t, "b", 1, secs(3))
	if got, want := updates(t, sum.out), "a@0-60=5@1 a@0-60=12@2 b@0-60=1@3"; got != want {
		t.Fatalf("reduce\n got %s\nwant %s", got, want)
	}

	list := newWindowRig(t, serde.String(), func(ws topology.TimeWindowedKStream[string, int64]) topology.KTable[topology.Windowed[string], string] {
		return topology.WindowedAggregate(ws, "lists", func() string { return "[]" }, func(_ string, v int64, agg string) (string, error) {
			return agg + fmt.Sprint(v), nil
		}, serde.String()).KTable
	}, topology.Tumbling(time.Minute).Grace(time.Minute))
	list.pipe(t, "a", 1, secs(10))
	list.pipe(t, "a", 2, secs(70))
	list.pipe(t, "a", 3, secs(20)) // out of order, within grace
	if got, want := updates(t, list.out), "a@0-60=[]1@10 a@60-120=[]2@70 a@0-60=[]13@20"; got != want {
		t.Fatalf("aggregate\n got %s\nwant %s", got, want)
	}
}

// TestWindowedAggregateErrors: an error from the user's function and a
// record without a timestamp go to the processing error handler, naming
// the record.
func TestWindowedAggregateErrors(t *testing.T) {
	w := newWindowRig(t, serde.Int64(), func(ws topology.TimeWindowedKStream[string, int64]) topology.KTable[topology.Windowed[string], int64] {
		return ws.Reduce("sums", func(agg, v int64) (int64, error) {
			if v < 0 {
				return 0, errors.New("negative amount")
			}
			return agg + v, nil
		}).KTable
	}, topology.Tumbling(time.Minute))
	w.pipe(t, "a", 1, secs(1))
	if err := w.in.Pipe("a", -1, secs(2)); err == nil || !strings.Contains(err.Error(), "negative amount") {
		t.Fatalf("reduce error: %v", err)
	}
	var pe *processor.ProcessingError
	if err := w.in.Pipe("a", 1, time.UnixMilli(-5)); !errors.As(err, &pe) || !strings.Contains(err.Error(), "no valid timestamp") ||
		!strings.Contains(err.Error(), "in[0]@2") {
		t.Fatalf("negative timestamp: %v", err)
	}
}

// logCapture records log lines for assertions.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func debugLogger(c *logCapture) *slog.Logger {
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestWindowedDropsAreLogged: late records without a late stream, and
// records with a null key, are dropped with a log line carrying a running
// count; nothing is dropped silently.
func TestWindowedDropsAreLogged(t *testing.T) {
	logs := &logCapture{}
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.Bytes(), serde.Int64())
	topology.WindowedBy(s.GroupByKey(), topology.Tumbling(10*time.Second)).Count("counts").
		ToStream("updates").To("out", "out", topology.WindowedSerde(serde.Bytes()), topology.ChangeSerde(serde.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo, testutil.WithLogger(debugLogger(logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "in", serde.Bytes(), serde.Int64())
	out := testutil.NewOutputTopic(d, "out", topology.WindowedSerde(serde.Bytes()), topology.ChangeSerde(serde.Int64()))
	for _, p := range []struct {
		k  []byte
		at int64
	}{{[]byte("a"), 20}, {[]byte("a"), 5}, {[]byte("a"), 9}, {nil, 21}, {[]byte{}, 22}} {
		if err := in.Pipe(p.k, 1, secs(p.at)); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := out.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].Key.Key) != "a" || len(recs[1].Key.Key) != 0 {
		t.Fatalf("updates %+v: want a's and the empty key's (an empty key is not null)", recs)
	}
	l := logs.String()
	if !strings.Contains(l, "dropped a late record") || !strings.Contains(l, "dropped_late_total=2") ||
		!strings.Contains(l, "window_start_ms=0 window_end_ms=10000 stream_time_ms=20000") || !strings.Contains(l, "offset=2") {
		t.Fatalf("late drops not logged with their count:\n%s", l)
	}
	if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "null key") || !strings.Contains(l, "dropped_null_keys_total=1") ||
		!strings.Contains(l, "offset=3") {
		t.Fatalf("null key drop not logged with its count:\n%s", l)
	}
}

// TestSuppressEmitsFinals: Suppress holds updates back and emits each
// window's final value once, when stream time reaches end + grace, in
// the order of window ends then keys, with the timestamp and headers of
// the window's last update.
func TestSuppressEmitsFinals(t *testing.T) {
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
	topology.WindowedBy(s.GroupByKey(), topology.Tumbling(10*time.Second).Grace(2*time.Second)).
		Reduce("sums", func(agg, v int64) (int64, error) { return agg + v, nil }).
		Suppress("finals", topology.UntilWindowCloses()).ToStream("finals-stream").
		To("out", "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "in", serde.String(), serde.Int64())
	out := testutil.NewOutputTopic(d, "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	pipe := func(k string, v, at int64, tag string) {
		t.Helper()
		if err := in.Pipe(k, v, secs(at), processor.Header{Key: "tag", Value: []byte(tag)}); err != nil {
			t.Fatal(err)
		}
	}
	pipe("b", 1, 1, "b1")
	pipe("a", 10, 2, "a1")
	pipe("b", 2, 8, "b2")
	pipe("a", 20, 11, "a2")
	pipe("a", 30, 5, "a3") // out of order, within grace
	if n := out.Len(); n != 0 {
		t.Fatalf("%d records before any window closed", n)
	}
	pipe("c", 1, 12, "c1") // stream time 12 = end + grace of [0,10)
	recs, err := out.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		tag, _ := r.Headers.Get("tag")
		got = append(got, update(r)+"/"+string(tag))
	}
	if g, want := strings.Join(got, " "), "a@0-10=40@5/a3 b@0-10=3@8/b2"; g != want {
		t.Fatalf("finals\n got %s\nwant %s", g, want)
	}
	pipe("a", 1, 9, "late") // late: no final changes
	pipe("c", 1, 21, "c2")  // stream time 21: [10,20) not closed yet
	if n := out.Len(); n != 0 {
		t.Fatalf("%d records before [10,20) closed", n)
	}
	pipe("c", 1, 22, "c3")
	if g, want := updates(t, out), "a@10-20=20@11 c@10-20=1@12"; g != want {
		t.Fatalf("finals\n got %s\nwant %s", g, want)
	}
}

// TestSuppressEmitsOnStreamTimePunctuation: a record that advances stream
// time without reaching the suppression (a null key, dropped by the
// aggregation) still closes windows through the stream-time punctuator.
func TestSuppressEmitsOnStreamTimePunctuation(t *testing.T) {
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.Bytes(), serde.Int64())
	topology.WindowedBy(s.GroupByKey(), topology.Tumbling(10*time.Second)).Count("counts").
		Suppress("finals", topology.UntilWindowCloses()).ToStream("finals-stream").
		To("out", "out", topology.WindowedSerde(serde.Bytes()), topology.ChangeSerde(serde.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "in", serde.Bytes(), serde.Int64())
	out := testutil.NewOutputTopic(d, "out", topology.WindowedSerde(serde.Bytes()), topology.ChangeSerde(serde.Int64()))
	if err := in.Pipe([]byte("a"), 1, secs(1)); err != nil {
		t.Fatal(err)
	}
	if err := in.Pipe(nil, 1, secs(10)); err != nil {
		t.Fatal(err)
	}
	recs, err := out.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || string(recs[0].Key.Key) != "a" || recs[0].Value.Value != 1 {
		t.Fatalf("finals %+v, want a@0-10=1", recs)
	}
}

// TestSuppressBufferBound: over BufferMaxRecords the suppression fails
// with a typed error; a handler that continues keeps the window, so its
// final still comes out.
func TestSuppressBufferBound(t *testing.T) {
	build := func(h processor.ProcessingHandler) *testutil.TestDriver {
		b := topology.New(topology.WithProcessingHandler(h))
		s := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
		topology.WindowedBy(s.GroupByKey(), topology.Tumbling(10*time.Second)).Count("counts").
			Suppress("finals", topology.UntilWindowCloses(topology.BufferMaxRecords(2))).ToStream("finals-stream").
			To("out", "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
		topo, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		d, err := testutil.NewTestDriver(topo)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	d := build(nil)
	in := testutil.NewInputTopic(d, "in", serde.String(), serde.Int64())
	for _, k := range []string{"a", "b", "a"} {
		if err := in.Pipe(k, 1, secs(1)); err != nil {
			t.Fatal(err)
		}
	}
	err := in.Pipe("c", 1, secs(2))
	var full *topology.SuppressBufferFullError
	if !errors.As(err, &full) || full.Records != 3 || full.MaxRecords != 2 || full.Store != "finals" {
		t.Fatalf("third pending window: %v", err)
	}

	d = build(func(processor.ErrorContext) processor.HandlerResponse { return processor.Continue })
	in = testutil.NewInputTopic(d, "in", serde.String(), serde.Int64())
	out := testutil.NewOutputTopic(d, "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	for _, k := range []string{"a", "b", "c"} {
		if err := in.Pipe(k, 1, secs(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Pipe("a", 1, secs(10)); err != nil {
		t.Fatal(err)
	}
	if got := updates(t, out); got != "a@0-10=1@1 b@0-10=1@1 c@0-10=1@1" {
		t.Fatalf("finals %s: the window over the bound was lost", got)
	}
}

// TestWindowedDeclarationProblems: Build reports bad windows, missing
// names and an unlogged suppression buffer, naming the node.
func TestWindowedDeclarationProblems(t *testing.T) {
	cases := []struct {
		w       topology.Windows
		suppOpt []topology.StoreOption
		name    string
		want    string
	}{
		{topology.Tumbling(0), nil, "counts", "window size 0s must be a positive whole number of milliseconds"},
		{topology.Hopping(time.Second, 2*time.Second), nil, "counts", "window advance 2s must be"},
		{topology.Tumbling(time.Second).Grace(-time.Second), nil, "counts", "grace period -1s"},
		{topology.Tumbling(time.Second + time.Microsecond), nil, "counts", "whole number of milliseconds"},
		{nil, nil, "counts", "no windows"},
		{ptr(topology.Tumbling(time.Second)), nil, "counts", "unsupported window definition *topology.TimeWindows"},
		{topology.Tumbling(time.Second), nil, "", "empty name"},
		{topology.Tumbling(time.Second), []topology.StoreOption{topology.WithoutLogging()}, "counts", "cannot be WithoutLogging"},
	}
	for _, c := range cases {
		b := topology.New()
		s := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
		topology.WindowedBy(s.GroupByKey(), c.w).Count(c.name).Suppress("finals", topology.UntilWindowCloses(), c.suppOpt...).
			ToStream("x").To("out", "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
		_, err := b.Build()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %q: Build error %v, want %q", c.w, c.name, err, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestWindowedDescribe: the nodes and stores are named from the user's
// names only.
func TestWindowedDescribe(t *testing.T) {
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
	ws := topology.WindowedBy(s.GroupByKey(), topology.Tumbling(time.Minute))
	ws.Count("counts").Suppress("finals", topology.UntilWindowCloses()).ToStream("finals-stream").
		To("out", "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	ws.LateRecords("late").To("late-out", "late", serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	desc := topo.Describe()
	if !containsAll(desc, "counts: window[string, topology.ValueAndTimestamp[int64]]", "Processor: counts (stores: [counts])",
		"Processor: finals (stores: [finals])", "Processor: late", "Processor: finals-stream") {
		t.Fatalf("Describe:\n%s", desc)
	}
}
