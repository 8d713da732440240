package harness

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
)

// TestMergeRuns checks how repeats of one cell become the report's cell:
// the median run's figures, the median rate, every run's rate in order,
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

	even := mergeRuns([]Cell{{RecordsPerSec: 100, P99Ms: 1}, {RecordsPerSec: 300, P99Ms: 3}})
	if even.RecordsPerSec != 200 || even.P99Ms != 1 {
		t.Errorf("even count: %+v, want the mean of the middle two and the lower run's other figures", even)
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
