package harness

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
)

// TestMergeRuns checks how repeats of one cell become the report's cell:
// the median run's figures, the median rate, every run's rate in order,
// the latency percentiles' medians over the runs with latency figures,
// and runs without figures named rather than averaged in.
func TestMergeRuns(t *testing.T) {
	c := mergeRuns([]Cell{
		{System: "brook", RecordsPerSec: 300, PeakRSSMB: 3, CPUUsPerRecord: 4, DurationSeconds: 1},
		{System: "brook", Missing: "timeout after 3m0s", DurationSeconds: 2},
		{System: "brook", RecordsPerSec: 100, PeakRSSMB: 1, CPUUsPerRecord: 9, DurationSeconds: 1},
		{System: "brook", RecordsPerSec: 200, PeakRSSMB: 2, CPUUsPerRecord: 8, DurationSeconds: 1},
	})
	if c.Missing != "" || c.RecordsPerSec != 200 || c.PeakRSSMB != 2 || c.DurationSeconds != 5 {
		t.Errorf("merged = %+v, want the median run (200 records/s, 2 MB) over 5 s", c)
	}
	if c.CPUUsPerRecord != 8 || !reflect.DeepEqual(c.CPURuns, []float64{4, 0, 9, 8}) {
		t.Errorf("CPU = %v of %v, want the median 8 of [4 0 9 8]", c.CPUUsPerRecord, c.CPURuns)
	}
	if want := []float64{300, 0, 100, 200}; !reflect.DeepEqual(c.Runs, want) {
		t.Errorf("runs = %v, want %v", c.Runs, want)
	}
	if !strings.Contains(c.Note, "median of 4 runs (300, –, 100, 200)") || !strings.Contains(c.Note, "1 of 4 runs without figures, first: timeout after 3m0s") {
		t.Errorf("note = %q", c.Note)
	}

	even := mergeRuns([]Cell{{RecordsPerSec: 100, P99Ms: 1, PeakRSSMB: 1}, {RecordsPerSec: 300, P99Ms: 3, PeakRSSMB: 3}})
	if even.RecordsPerSec != 200 || even.P99Ms != 2 || even.PeakRSSMB != 1 || !reflect.DeepEqual(even.P99Runs, []float64{1, 3}) {
		t.Errorf("even count: %+v, want the mean of the middle two (200 records/s, p99 2) and the lower run's other figures", even)
	}

	// Latency: each percentile the median over the runs with latency
	// figures, not the median run's; the largest latency of any.
	lat := mergeRuns([]Cell{
		{RecordsPerSec: 100, P50Ms: 10, P99Ms: 80, P999Ms: 200, MaxLatencyMs: 300, LatencySamples: 5},
		{RecordsPerSec: 300, P50Ms: 12, P99Ms: 40, P999Ms: 90, MaxLatencyMs: 100, LatencySamples: 5},
		{Missing: "timeout"},
		{RecordsPerSec: 200, LatencyMissing: "no output records in the latency phase"}, // the median run
		{RecordsPerSec: 250, P50Ms: 11, P99Ms: 60, P999Ms: 70, MaxLatencyMs: 120, LatencySamples: 5, LatencyMissing: "only 5 of 6 outputs arrived within 10s"},
	})
	if lat.RecordsPerSec != 225 || lat.P50Ms != 11 || lat.P99Ms != 60 || lat.P999Ms != 90 || lat.MaxLatencyMs != 300 || lat.LatencySamples != 15 {
		t.Errorf("latency merged = %+v, want p50 11, p99 60, p99.9 90, max 300 over 15 samples", lat)
	}
	if want := []float64{80, 40, 0, 0, 60}; !reflect.DeepEqual(lat.P99Runs, want) {
		t.Errorf("p99 runs = %v, want %v", lat.P99Runs, want)
	}
	if lat.LatencyMissing != "1 of 4 runs without latency figures" {
		t.Errorf("latency missing = %q, want the run without figures counted (not the median run's reason)", lat.LatencyMissing)
	}
	if !strings.Contains(lat.Note, "latency percentiles the medians over 3 runs") {
		t.Errorf("note = %q", lat.Note)
	}
	caveat := mergeRuns([]Cell{{RecordsPerSec: 2, P99Ms: 4}, {RecordsPerSec: 1, P99Ms: 2, LatencyMissing: "only 5 of 6 outputs arrived within 10s"}})
	if caveat.LatencyMissing != "only 5 of 6 outputs arrived within 10s" || caveat.P99Ms != 3 {
		t.Errorf("the median run's latency caveat: %+v, want it kept", caveat)
	}
	noLat := mergeRuns([]Cell{{RecordsPerSec: 1, LatencyMissing: "goka"}, {RecordsPerSec: 2, LatencyMissing: "goka"}})
	if noLat.P99Ms != 0 || noLat.P99Runs != nil || noLat.LatencyMissing != "goka" {
		t.Errorf("no run with latency: %+v, want no latency figures and the reason", noLat)
	}

	cold := mergeRuns([]Cell{{ColdKeysPerSec: 5}, {ColdKeysPerSec: 9}, {ColdKeysPerSec: 7, WarmKeysPerSec: 1}})
	if cold.ColdKeysPerSec != 7 || cold.WarmKeysPerSec != 1 || cold.RecordsPerSec != 0 {
		t.Errorf("restore cells: %+v, want the median cold rate 7", cold)
	}

	none := mergeRuns([]Cell{{Missing: "a"}, {Missing: "b"}})
	if none.Missing != "a" || len(none.Runs) != 2 {
		t.Errorf("all runs missing: %+v, want the first reason", none)
	}

	one := Cell{RecordsPerSec: 5, Note: "n"}
	if got := mergeRuns([]Cell{one}); !reflect.DeepEqual(got, one) {
		t.Errorf("one run: %+v, want it unchanged", got)
	}
}

// TestLineageCheck: brook-lineage's output must carry lineage headers
// naming the application, the sink and an input record; plain brook's
// none. A record that does not is refused, so a run without headers
// cannot pass the -verify check.
func TestLineageCheck(t *testing.T) {
	hdr := func(kv ...string) []*sarama.RecordHeader {
		var h []*sarama.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			h = append(h, &sarama.RecordHeader{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
		}
		return h
	}
	lin := func(v string) []*sarama.RecordHeader { return hdr(processor.HeaderLineage, v) }
	good := lin("in/2/41|out|app")
	for _, tc := range []struct {
		sys     string
		headers []*sarama.RecordHeader
		ok      bool
	}{
		{SysBrookLineage, good, true},
		{SysBrookLineage, nil, false},
		{SysBrookLineage, lin("|out|app"), false}, // no input record
		{SysBrookLineage, lin("other/2/41|out|app"), false},
		{SysBrookLineage, lin("in/2/41|out|other-app"), false},
		{SysBrook, nil, true},
		{SysBrookMetrics, nil, true},
		{SysBrook, good, false},
	} {
		err := lineageCheck(tc.sys, "in", "app")(&sarama.ConsumerMessage{Headers: tc.headers})
		if (err == nil) != tc.ok {
			t.Errorf("%s with %d headers: error %v, want ok=%v", tc.sys, len(tc.headers), err, tc.ok)
		}
	}
	if lineageCheck(SysGoka, "in", "app") != nil {
		t.Error("goka's output checked for brook's headers")
	}
}

// TestMaxGap checks the per-task gap arithmetic of the failover
// workloads: gaps are cut to the window, a window with no processing is
// one gap, and a task that stops before the window's end has the gap to
// it.
func TestMaxGap(t *testing.T) {
	tr := &outputTracker{times: [][]int64{{1000, 1100, 1900, 2000, 2050}, {}, {1000, 1200}}}
	at := func(ms int64) time.Time { return time.UnixMilli(ms) }
	for _, tc := range []struct {
		p        int32
		from, to int64
		gap      int64
		start    int64
	}{
		{0, 1000, 2050, 800, 1100},
		{0, 1500, 2050, 400, 1500}, // cut at the window's start
		{0, 1000, 1500, 400, 1100}, // cut at its end
		{0, 2000, 3000, 950, 2050}, // stopped processing at 2050
		{1, 1000, 3000, 2000, 1000},
		{2, 900, 1100, 100, 900},
	} {
		d, start := tr.maxGap(tc.p, at(tc.from), at(tc.to))
		if d != time.Duration(tc.gap)*time.Millisecond || start.UnixMilli() != tc.start {
			t.Errorf("task %d [%d, %d]: gap %v from %d, want %d ms from %d", tc.p, tc.from, tc.to, d, start.UnixMilli(), tc.gap, tc.start)
		}
	}
	if g := tr.worstGap([]int32{0, 2}, at(1000), at(1300)); g.task != 0 || g.gap != 200*time.Millisecond {
		t.Errorf("worst gap %v, want 200 ms on task 0 (found first)", g)
	}
}

// TestOutputTrackerCheck: every key's counts must be 1..n once; a
// repeated count is a duplicate, a skipped one or a short key a loss.
func TestOutputTrackerCheck(t *testing.T) {
	tr, err := newOutputTracker(3, 2, "in", true)
	if err != nil {
		t.Fatal(err)
	}
	out := func(key string, n int64) {
		tr.add(&sarama.ConsumerMessage{Key: []byte(key), Value: countBytes(n), Partition: tr.part[0]})
	}
	out("k0000000", 1)
	out("k0000000", 2)
	out("k0000000", 2) // duplicate
	out("k0000001", 2) // 1 skipped
	out("k0000002", 1)
	lost, dup, detail := tr.check([]int64{2, 2, 2}) // k0000002 one short
	if lost != 2 || dup != 1 || !strings.Contains(detail, "1 keys short") || !strings.Contains(detail, "1 skipped counts") || !strings.Contains(detail, "1 repeated counts") {
		t.Errorf("lost %d, duplicated %d (%s), want 2 and 1", lost, dup, detail)
	}
	if lost, dup, _ := tr.check([]int64{2, 2, 1}); lost != 1 || dup != 1 {
		t.Errorf("lost %d duplicated %d, want the skipped count and the repeat", lost, dup)
	}
}

// TestMergeFailoverRuns: repeats of a failover cell give the median
// failover time, every run's in Runs, the largest gaps over the runs and
// every loss summed.
func TestMergeFailoverRuns(t *testing.T) {
	c := mergeRuns([]Cell{
		{FailoverMs: 12000, FailoverRetainedGapMs: 600, ScaleOutGapMs: 900, Output: "ok"},
		{FailoverMs: 10000, FailoverRetainedGapMs: 800, ScaleOutGapMs: 100, Duplicated: 2},
		{FailoverMs: 11000, FailoverRetainedGapMs: 100, ScaleOutGapMs: 300, Output: "ok"},
	})
	if c.FailoverMs != 11000 || !reflect.DeepEqual(c.Runs, []float64{12000, 10000, 11000}) {
		t.Errorf("failover %v runs %v, want the median 11000 of all three", c.FailoverMs, c.Runs)
	}
	if c.FailoverRetainedGapMs != 800 || c.ScaleOutGapMs != 900 || c.Duplicated != 2 || c.Output != "" {
		t.Errorf("merged %+v, want the largest gaps (800, 900), 2 duplicates and no clean-output claim", c)
	}
}

// TestReportSpread: with repeats, a figure is shown with the smallest
// and largest run that has figures; a single run (or a single run with
// figures) as before.
func TestReportSpread(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		runs []float64
		f    func(float64) string
		want string
	}{
		{141082, nil, f0, "141082"},
		{141082, []float64{141082}, f0, "141082"},
		{141082, []float64{150000, 0, 120333, 141082}, f0, "141082 (120333–150000)"},
		{64.6, []float64{40.1, 64.6, 80.2}, f1, "64.6 (40.1–80.2)"},
		{5, []float64{0, 5, 0}, f0, "5"},
		{0, []float64{0, 0}, f0, "–"},
	} {
		if got := spread(tc.v, tc.runs, tc.f); got != tc.want {
			t.Errorf("spread(%v, %v) = %q, want %q", tc.v, tc.runs, got, tc.want)
		}
	}
}

// TestReportRatioOf: a ratio between two cells pairs their runs by round
// when it can, and says when it falls back to the medians' ratio.
func TestReportRatioOf(t *testing.T) {
	a := Cell{RecordsPerSec: 100, Runs: []float64{100, 80, 125}}
	b := Cell{RecordsPerSec: 100, Runs: []float64{90, 96, 120}}
	if v, how := ratioOf(b, a); fmt.Sprintf("%.2f", v) != "0.96" || how != "" {
		t.Errorf("paired: %v %q, want the median per-round ratio 0.96", v, how)
	}
	if v, how := ratioOf(Cell{RecordsPerSec: 50}, a); v != 0.5 || how != "ratio of medians: 1 and 3 runs, not paired by round" {
		t.Errorf("unpaired: %v %q", v, how)
	}
	if v, how := ratioOf(Cell{RecordsPerSec: 50, Runs: []float64{0, 0, 50}}, Cell{RecordsPerSec: 25, Runs: []float64{25, 25, 0}}); v != 2 || how != "ratio of medians: no round with figures for both" {
		t.Errorf("no common round: %v %q", v, how)
	}
	if v, how := ratioOf(Cell{ColdKeysPerSec: 9, Runs: []float64{9, 8}}, Cell{ColdKeysPerSec: 3, Runs: []float64{3, 4}}); v != 2.5 || how != "" {
		t.Errorf("restore rates: %v %q, want the median of 3 and 2", v, how)
	}
	if v, _ := ratioOf(Cell{Missing: "x", RecordsPerSec: 5}, a); v != 0 {
		t.Errorf("missing cell: %v, want 0", v)
	}
	if v, _ := ratioOf(Cell{RecordsPerSec: 5}, Cell{RecordsPerSec: 10}); v != 0.5 {
		t.Errorf("single runs: %v, want 0.5", v)
	}
}
