package topology_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// failingStrings is a string serde that refuses to serialize values
// containing "bad".
type failingStrings struct{ serde.Serde[string] }

func (s failingStrings) Serialize(topic string, v string) ([]byte, error) {
	if strings.Contains(v, "bad") {
		return nil, errors.New("refused")
	}
	return s.Serde.Serialize(topic, v)
}

// storedSessions lists key's sessions in a session store of strings as
// "start-end=value", times in ms after t0.
func storedSessions(t *testing.T, d *testutil.TestDriver, name, key string) []string {
	t.Helper()
	ss, err := testutil.SessionStore[string, string](d, name)
	if err != nil {
		t.Fatal(err)
	}
	it, err := ss.FindSessions(key, at(0), at(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var got []string
	for it.Next() {
		got = append(got, fmt.Sprintf("%d-%d=%s", it.Key().Start.Sub(t0).Milliseconds(), it.Key().End.Sub(t0).Milliseconds(), it.Value()))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// A bridging record whose merged aggregate cannot be stored (its serde
// fails) goes to the processing error handler and leaves the sessions it
// would have merged in place: none is deleted, downstream or in the
// store.
func TestDSLSessionFailedPutKeepsSessions(t *testing.T) {
	var handled []string
	b := topology.New(topology.WithProcessingHandler(func(ec processor.ErrorContext) processor.HandlerResponse {
		handled = append(handled, fmt.Sprint(ec.Node, "@", ec.Offset))
		return processor.Continue
	}))
	sw := topology.Stream(b, "in", "in", serde.String(), serde.String()).GroupByKey().
		SessionWindowedBy(topology.SessionWindows(10 * time.Second).Grace(time.Minute))
	topology.AggregateSessions(sw, "log", func() string { return "" },
		func(_ string, v string, agg string) (string, error) { return agg + "+" + v, nil },
		func(_ string, a, b string) (string, error) { return a + "|" + b, nil },
		failingStrings{serde.String()}).ToStream("log-changes").
		To("log-out", "log", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.String()))
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
	for _, r := range []struct {
		v  string
		ms int64
	}{{"1", 0}, {"2", 20000}, {"bad", 10000}} {
		if err := in.Pipe("a", r.v, at(r.ms)); err != nil {
			t.Fatal(err)
		}
	}
	checkStrings(t, "handled", handled, "log@2")
	checkStrings(t, "log", sessionChanges(t, d, "log", serde.String()), "a@0-1=+1@0", "a@20000-20001=+2@20000")
	checkStrings(t, "store", storedSessions(t, d, "log", "a"), "0-1=+1", "20000-20001=+2")
}

// lateDriver declares, over topic "in" grouped by key with session
// windows (gap, grace), the session count "counts" and sum "sums" and
// then LateRecords "late" to topic "late".
func lateDriver(t *testing.T, gap, grace time.Duration) *testutil.TestDriver {
	t.Helper()
	b := topology.New()
	sw := topology.Stream(b, "in", "in", serde.String(), serde.Int64()).GroupByKey().
		SessionWindowedBy(topology.SessionWindows(gap).Grace(grace))
	wk := topology.WindowedSerde(serde.String())
	topology.CountSessions(sw, "counts").ToStream("counts-changes").To("counts-out", "counts", wk, topology.ChangeSerde(serde.Int64()))
	topology.ReduceSessions(sw, "sums", func(agg, v int64) (int64, error) { return agg + v, nil }).
		ToStream("sums-changes").To("sums-out", "sums", wk, topology.ChangeSerde(serde.Int64()))
	sw.LateRecords("late").To("late-out", "late", serde.String(), serde.Int64())
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

// lateRecords renders the late stream as "key:value@ts trace reason
// start-end streamTime grace", times in ms after t0 but the grace.
func lateRecords(t *testing.T, d *testutil.TestDriver) []string {
	t.Helper()
	var out []string
	for _, r := range read(t, d, "late", serde.String(), serde.Int64()) {
		h := func(k string) string { v, _ := r.Headers.Get(k); return string(v) }
		rel := func(k string) string {
			ms, err := strconv.ParseInt(h(k), 10, 64)
			if err != nil {
				t.Fatalf("header %s = %q: %v", k, h(k), err)
			}
			return strconv.FormatInt(ms-t0.UnixMilli(), 10)
		}
		out = append(out, fmt.Sprintf("%s:%d@%d %s %s %s-%s %s %s", r.Key, r.Value, r.Timestamp.Sub(t0).Milliseconds(), h("trace"),
			h(topology.LateReasonHeader), rel(topology.LateWindowStartHeader), rel(topology.LateWindowEndHeader),
			rel(topology.LateStreamTimeHeader), h(topology.LateGraceHeader)))
	}
	return out
}

func pipeTraced(t *testing.T, d *testutil.TestDriver, k string, v, ms int64) {
	t.Helper()
	if err := testutil.NewInputTopic(d, "in", serde.String(), serde.Int64()).
		Pipe(k, v, at(ms), processor.Header{Key: "trace", Value: []byte("t" + strconv.FormatInt(ms, 10))}); err != nil {
		t.Fatal(err)
	}
}

// The late stream gets exactly the records the session aggregations drop
// as late, once each although two aggregations drop them, with their
// headers and the bounds of the session they would have made: not a
// record at the grace boundary, nor a late-arriving record that joins a
// session still open.
func TestDSLSessionLateRecords(t *testing.T) {
	d := lateDriver(t, 10*time.Second, 5*time.Second)
	pipeTraced(t, d, "d", 7, 86000)
	pipeTraced(t, d, "d", 8, 88000)  // d's session [86000, 88001), closed at 93001, kept until 103001
	pipeTraced(t, d, "a", 1, 100000) // stream time 100000
	pipeTraced(t, d, "b", 2, 95000)  // end 95001 + 5000 > 100000: on time (boundary)
	pipeTraced(t, d, "a", 3, 90000)  // joins a's open session [100000, 100001): on time
	checkStrings(t, "late before any late record", lateRecords(t, d))
	pipeTraced(t, d, "c", 4, 94999)  // end 95000 + 5000 <= 100000: late
	pipeTraced(t, d, "a", 5, 79999)  // alone (90000 - 79999 > gap): late
	pipeTraced(t, d, "b", 6, 85000)  // joins b's session: [85000, 95001), 95001 + 5000 > 100000: on time
	pipeTraced(t, d, "d", 9, 89000)  // joins d's closed session: [86000, 89001) ends too early: late
	pipeTraced(t, d, "d", 10, 95000) // joins it too, but [86000, 95001) is open: on time
	checkStrings(t, "late", lateRecords(t, d),
		"c:4@94999 t94999 late 94999-95000 100000 5000",
		"a:5@79999 t79999 late 79999-80000 100000 5000",
		"d:9@89000 t89000 late 86000-89001 100000 5000")
	// The aggregations took every other record, and none of these.
	checkStrings(t, "counts", sessionChanges(t, d, "counts", serde.Int64()),
		"d@86000-86001=1@86000", "d@86000-86001=<deleted>@86000", "d@86000-88001=2@88000",
		"a@100000-100001=1@100000",
		"b@95000-95001=1@95000",
		"a@100000-100001=<deleted>@100000", "a@90000-100001=2@100000",
		"b@95000-95001=<deleted>@95000", "b@85000-95001=2@95000",
		"d@86000-88001=<deleted>@88000", "d@86000-95001=3@95000")
	checkStrings(t, "sums", sessionChanges(t, d, "sums", serde.Int64()),
		"d@86000-86001=7@86000", "d@86000-86001=<deleted>@86000", "d@86000-88001=15@88000",
		"a@100000-100001=1@100000",
		"b@95000-95001=2@95000",
		"a@100000-100001=<deleted>@100000", "a@90000-100001=4@100000",
		"b@95000-95001=<deleted>@95000", "b@85000-95001=8@95000",
		"d@86000-88001=<deleted>@88000", "d@86000-95001=25@95000")
}

// Stream time is the aggregation's, from its store: a record with a null
// key, which the aggregation skips (late or not), advances the task's
// stream time but makes nothing late, before and after a restart (which restores the
// store's stream time from its newest session).
func TestDSLSessionLateRecordsUseTheAggregationsStreamTime(t *testing.T) {
	d := lateDriver(t, 10*time.Second, 5*time.Second)
	pipeTraced(t, d, "a", 1, 100000)
	v, err := serde.Int64().Serialize("in", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PipeRaw("in", nil, v, at(200000), nil); err != nil { // task stream time 200000
		t.Fatal(err)
	}
	if err := d.PipeRaw("in", nil, v, at(50000), nil); err != nil { // dropped for its null key, not late
		t.Fatal(err)
	}
	pipeTraced(t, d, "e", 2, 99000) // 99001 + 5000 > 100000: on time
	checkStrings(t, "late", lateRecords(t, d))
	d2, err := d.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	pipeTraced(t, d2, "f", 3, 99500) // on time
	pipeTraced(t, d2, "c", 4, 94000) // 94001 + 5000 <= 100000: late
	checkStrings(t, "late after restart", lateRecords(t, d2), "c:4@94000 t94000 late 94000-94001 100000 5000")
	checkStrings(t, "counts", sessionChanges(t, d2, "counts", serde.Int64()),
		"a@100000-100001=1@100000", "e@99000-99001=1@99000", "f@99500-99501=1@99500")
}

// LateRecords needs a session aggregation over the same grouped stream
// and session windows declared before it, and valid windows.
func TestDSLSessionLateRecordsBuildProblems(t *testing.T) {
	b := topology.New()
	g := topology.Stream(b, "in", "in", serde.String(), serde.Int64()).GroupByKey()
	sw := g.SessionWindowedBy(topology.SessionWindows(time.Second))
	sw.LateRecords("late-first") // before the aggregation
	topology.CountSessions(sw, "counts")
	g.SessionWindowedBy(topology.SessionWindows(time.Second).Grace(time.Second)).LateRecords("other-grace")
	g.SessionWindowedBy(topology.SessionWindows(2 * time.Second)).LateRecords("other-gap")
	topology.Stream(b, "in2", "in2", serde.String(), serde.Int64()).GroupByKey().
		SessionWindowedBy(topology.SessionWindows(time.Second)).LateRecords("other-stream")
	g.SessionWindowedBy(topology.SessionWindows(0)).LateRecords("zero-gap")
	g.SessionWindowedBy(topology.SessionWindows(time.Second).Grace(-time.Second)).LateRecords("neg-grace")
	g.SessionWindowedBy(topology.SessionWindows(time.Second)).LateRecords("late") // fine: the same session windows
	_, err := b.Build()
	var ve *topology.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Build: %v", err)
	}
	msg := fmt.Sprint(err)
	for _, want := range []string{
		`"late-first"`, `"other-grace"`, `"other-gap"`, `"other-stream"`,
		"need a session aggregation (CountSessions, ReduceSessions or AggregateSessions) over the same grouped stream",
		"declared before LateRecords",
		`"zero-gap"`, "gap 0s must be at least 1ms", `"neg-grace"`, "grace period -1s is negative",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Build error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(msg, `"late"`) {
		t.Errorf("Build refuses a valid LateRecords: %v", err)
	}
	if n := strings.Count(msg, "need a session aggregation"); n != 4 {
		t.Errorf("%d missing-aggregation problems, want 4: %v", n, err)
	}
}
