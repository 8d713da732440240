package topology_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// updatesMs renders windowed updates as "key@start-end=value@ts" in
// milliseconds.
func updatesMs[V any](t *testing.T, o *testutil.OutputTopic[topology.Windowed[string], topology.Change[V]]) string {
	t.Helper()
	recs, err := o.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%s@%d-%d=%v@%d", r.Key.Key, r.Key.Start.UnixMilli(), r.Key.End.UnixMilli(), r.Value.Value, r.Timestamp.UnixMilli()))
	}
	return strings.Join(out, " ")
}

func ms(n int64) time.Time { return time.UnixMilli(n) }

// TestSlidingWindowsCreateWindowsAsKafkaStreams: with a time difference
// of 10 ms, each record gets its left window [t-10, t] and, once a later
// record falls within 10 ms, its right window [t+1, t+11]; an
// out-of-order record updates every window it falls into and creates its
// own. Ends print exclusive (Kafka Streams' [s, e] is s-(e+1) here). Each
// expectation is the Kafka Streams window set worked out by hand from
// KStreamSlidingWindowAggregate's rules and checked against the records.
func TestSlidingWindowsCreateWindowsAsKafkaStreams(t *testing.T) {
	w := newWindowRig(t, serde.Int64(), count, topology.Sliding(10*time.Millisecond).Grace(time.Second))
	for _, c := range []struct {
		at   int64
		want string
	}{
		{10, "a@0-11=1@10"},
		{15, "a@11-22=1@15 a@5-16=2@15"},
		{20, "a@11-22=2@20 a@16-27=1@20 a@10-21=3@20"},
		// Out of order: [5,15] [10,20] [11,21] take it, [2,12] is its left
		// window (10 and 12), [13,23] its right window (15 and 20).
		{12, "a@5-16=3@15 a@10-21=4@20 a@11-22=3@20 a@2-13=2@12 a@13-24=2@20"},
	} {
		w.pipe(t, "a", 1, ms(c.at))
		if got := updatesMs(t, w.out); got != c.want {
			t.Fatalf("after the record at %d:\n got %s\nwant %s", c.at, got, c.want)
		}
	}
}

// TestSlidingWindowsEarlyRecords: records before the time difference share
// the window [0, diff], as in Kafka Streams (no window starts before 0).
func TestSlidingWindowsEarlyRecords(t *testing.T) {
	w := newWindowRig(t, serde.Int64(), count, topology.Sliding(10*time.Millisecond).Grace(time.Second))
	for _, c := range []struct {
		at   int64
		want string
	}{
		{2, "a@0-11=1@2"},
		{5, "a@3-14=1@5 a@0-11=2@5"},
		{1, "a@2-13=2@5 a@0-11=3@5"}, // its right window holds 2 and 5
	} {
		w.pipe(t, "a", 1, ms(c.at))
		if got := updatesMs(t, w.out); got != c.want {
			t.Fatalf("after the record at %d:\n got %s\nwant %s", c.at, got, c.want)
		}
	}
}

// TestSlidingWindowsLateAndFinal: with grace 5 ms a window [s, e] takes
// records until stream time e+5 and closes at e+6 (its exclusive end +
// grace); a record whose last window [t, t+diff] has closed is dropped
// whole, one whose left window has closed goes to the late stream, and
// Suppress emits a window's final when it closes.
func TestSlidingWindowsLateAndFinal(t *testing.T) {
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
	ws := topology.WindowedBy(s.GroupByKey(), topology.Sliding(10*time.Millisecond).Grace(5*time.Millisecond))
	counts := ws.Count("counts")
	counts.ToStream("updates").To("out", "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	counts.Suppress("finals", topology.UntilWindowCloses()).ToStream("finals-stream").
		To("finals-out", "finals", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
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
	finals := testutil.NewOutputTopic(d, "finals", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	late := testutil.NewOutputTopic(d, "late", serde.String(), serde.Int64())
	step := func(at int64, want, wantFinals string) {
		t.Helper()
		if err := in.Pipe("a", 1, ms(at)); err != nil {
			t.Fatal(err)
		}
		if got := updatesMs(t, out); got != want {
			t.Fatalf("updates after %d:\n got %s\nwant %s", at, got, want)
		}
		if got := updatesMs(t, finals); got != wantFinals {
			t.Fatalf("finals after %d:\n got %s\nwant %s", at, got, wantFinals)
		}
	}
	step(100, "a@90-101=1@100", "")
	step(84, "", "")                                                           // [84,94] closed at 95 + 5: dropped whole
	step(85, "", "")                                                           // its left window [75,85] is closed, and no later record is within 10 ms
	step(95, "a@90-101=2@100 a@85-96=1@95 a@96-107=1@100", "")                 // [85,95] still open at stream time 100
	step(101, "a@96-107=2@101 a@101-112=1@101 a@91-102=3@101", "a@85-96=1@95") // [85,95] closes at 101
	recs, err := late.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		h := func(k string) string { v, _ := r.Headers.Get(k); return string(v) }
		got = append(got, fmt.Sprint(r.Timestamp.UnixMilli(), ":", h(topology.LateWindowStartHeader), "-", h(topology.LateWindowEndHeader), "@", h(topology.LateStreamTimeHeader)))
	}
	if g := strings.Join(got, " "); g != "84:74-85@100 85:75-86@100" {
		t.Fatalf("late records %s", g)
	}
}

// TestSlidingWindowsReduce: a reduction's first value is the aggregate of
// a new window; windows created from a neighbour's aggregate carry it.
func TestSlidingWindowsReduce(t *testing.T) {
	w := newWindowRig(t, serde.Int64(), func(ws topology.TimeWindowedKStream[string, int64]) topology.KTable[topology.Windowed[string], int64] {
		return ws.Reduce("sums", func(agg, v int64) (int64, error) { return agg + v, nil }).KTable
	}, topology.Sliding(10*time.Millisecond).Grace(time.Second))
	w.pipe(t, "a", 1, ms(10))
	w.pipe(t, "a", 2, ms(15))
	w.pipe(t, "a", 4, ms(20))
	w.pipe(t, "a", 8, ms(12))
	want := "a@0-11=1@10 " +
		"a@11-22=2@15 a@5-16=3@15 " +
		"a@11-22=6@20 a@16-27=4@20 a@10-21=7@20 " +
		"a@5-16=11@15 a@10-21=15@20 a@11-22=14@20 a@2-13=9@12 a@13-24=6@20"
	if got := updatesMs(t, w.out); got != want {
		t.Fatalf("updates\n got %s\nwant %s", got, want)
	}
}
