package harness

import (
	"reflect"
	"strings"
	"testing"

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
