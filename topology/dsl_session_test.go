package topology_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// sessionChanges renders a session table's output as
// "key@start-end=value@ts" with times in ms after t0.
func sessionChanges[V any](t *testing.T, d *testutil.TestDriver, topic string, values serde.Serde[V]) []string {
	t.Helper()
	var out []string
	for _, r := range read(t, d, topic, topology.WindowedSerde(serde.String()), topology.ChangeSerde(values)) {
		v := fmt.Sprint(r.Value.Value)
		if r.Value.Deleted {
			v = "<deleted>"
		}
		out = append(out, fmt.Sprintf("%s@%d-%d=%s@%d", r.Key.Key, r.Key.Start.Sub(t0).Milliseconds(), r.Key.End.Sub(t0).Milliseconds(),
			v, r.Timestamp.Sub(t0).Milliseconds()))
	}
	return out
}

// sessionDriver declares the session count "counts", sum "sums" and a
// log of values "log" over topic "in", all with gap and grace.
func sessionDriver(t *testing.T, gap, grace time.Duration, logs *bytes.Buffer) *testutil.TestDriver {
	t.Helper()
	b := topology.New()
	sw := topology.Stream(b, "in", "in", serde.String(), serde.Int64()).GroupByKey().
		SessionWindowedBy(topology.SessionWindows(gap).Grace(grace))
	wk := topology.WindowedSerde(serde.String())
	topology.CountSessions(sw, "counts").ToStream("counts-changes").To("counts-out", "counts", wk, topology.ChangeSerde(serde.Int64()))
	topology.ReduceSessions(sw, "sums", func(agg, v int64) (int64, error) { return agg + v, nil }).
		ToStream("sums-changes").To("sums-out", "sums", wk, topology.ChangeSerde(serde.Int64()))
	topology.AggregateSessions(sw, "log", func() string { return "" },
		func(_ string, v int64, agg string) (string, error) { return agg + "+" + strconv.FormatInt(v, 10), nil },
		func(_ string, a, b string) (string, error) { return a + "|" + b, nil },
		serde.String(), topology.InMemory()).ToStream("log-changes").To("log-out", "log", wk, topology.ChangeSerde(serde.String()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	var opts []testutil.DriverOption
	if logs != nil {
		opts = append(opts, testutil.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	}
	d, err := testutil.NewTestDriver(topo, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func pipeAll(t *testing.T, d *testutil.TestDriver, topic string, recs ...string) {
	t.Helper()
	in := testutil.NewInputTopic(d, topic, serde.String(), serde.Int64())
	for _, r := range recs { // "key:value@ms"
		kv, ms, _ := strings.Cut(r, "@")
		k, v, _ := strings.Cut(kv, ":")
		n, _ := strconv.ParseInt(v, 10, 64)
		m, _ := strconv.ParseInt(ms, 10, 64)
		if err := in.Pipe(k, n, at(m)); err != nil {
			t.Fatal(err)
		}
	}
}

// Records within the gap (inclusive) merge into one session; the
// replaced session is forwarded as a deletion, then the merged one.
func TestDSLSessionMergeWithinGap(t *testing.T) {
	d := sessionDriver(t, 10*time.Second, time.Minute, nil)
	pipeAll(t, d, "in", "a:1@0", "a:2@10000", "b:5@3000", "a:4@20001")
	checkStrings(t, "counts", sessionChanges(t, d, "counts", serde.Int64()),
		"a@0-1=1@0",
		"a@0-1=<deleted>@0", "a@0-10001=2@10000", // exactly gap apart: one session
		"b@3000-3001=1@3000",
		"a@20001-20002=1@20001") // gap + 1ms: a new session
	checkStrings(t, "sums", sessionChanges(t, d, "sums", serde.Int64()),
		"a@0-1=1@0", "a@0-1=<deleted>@0", "a@0-10001=3@10000", "b@3000-3001=5@3000", "a@20001-20002=4@20001")
	ss, err := testutil.SessionStore[string, int64](d, "counts")
	if err != nil {
		t.Fatal(err)
	}
	it, err := ss.FindSessions("a", at(0), at(100_000))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var got []string
	for it.Next() {
		got = append(got, fmt.Sprintf("%d-%d=%d", it.Key().Start.Sub(t0).Milliseconds(), it.Key().End.Sub(t0).Milliseconds(), it.Value()))
	}
	checkStrings(t, "store", got, "0-10001=2", "20001-20002=1")
}

// A late-arriving record within the gap of two sessions merges them: both
// are deleted downstream, and their union is forwarded (merger for the
// aggregate, in time order, then the record's value).
func TestDSLSessionBridgingRecordMergesSessions(t *testing.T) {
	d := sessionDriver(t, 10*time.Second, time.Minute, nil)
	pipeAll(t, d, "in", "a:1@0", "a:2@20000", "a:3@10000")
	checkStrings(t, "counts", sessionChanges(t, d, "counts", serde.Int64()),
		"a@0-1=1@0", "a@20000-20001=1@20000",
		"a@0-1=<deleted>@0", "a@20000-20001=<deleted>@20000", "a@0-20001=3@20000")
	checkStrings(t, "log", sessionChanges(t, d, "log", serde.String()),
		"a@0-1=+1@0", "a@20000-20001=+2@20000",
		"a@0-1=<deleted>@0", "a@20000-20001=<deleted>@20000", "a@0-20001=|+1|+2+3@20000")
	// A record inside an existing session replaces it in place: no
	// deletion of the same window.
	pipeAll(t, d, "in", "a:4@5000")
	checkStrings(t, "counts", sessionChanges(t, d, "counts", serde.Int64()), "a@0-20001=4@20000")
}

// With grace g, a record is late when the stream time is at or after its
// merged session's end (last record + 1ms) plus g: dropped with a counted
// warning. At end + g - 1ms it still counts; a late record that joins a
// live session is not late.
func TestDSLSessionGraceBoundary(t *testing.T) {
	var logs bytes.Buffer
	d := sessionDriver(t, 10*time.Second, 5*time.Second, &logs)
	pipeAll(t, d, "in",
		"a:1@100000", // stream time 100000
		"b:1@95000",  // end 95001 + 5000 > 100000: on time (boundary)
		"c:1@94999",  // end 95000 + 5000 <= 100000: late
		"a:1@89000",  // alone: end 89001 + 5000 <= 100000: late
		"a:1@90000",  // joins a's session [90000, 100001): on time
	)
	checkStrings(t, "counts", sessionChanges(t, d, "counts", serde.Int64()),
		"a@100000-100001=1@100000",
		"b@95000-95001=1@95000",
		"a@100000-100001=<deleted>@100000", "a@90000-100001=2@100000")
	l := logs.String()
	for _, want := range []string{
		`reason=late dropped_total=1 topic=in partition=0 offset=2 timestamp_ms=` + strconv.FormatInt(at(94999).UnixMilli(), 10),
		`reason=late dropped_total=2 topic=in partition=0 offset=3`,
		"grace_ms=5000",
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	if strings.Count(l, "reason=late") != 6 { // three aggregations drop two late records each
		t.Errorf("late warnings: %d, want 6:\n%s", strings.Count(l, "reason=late"), l)
	}
}

// Expired sessions leave the store as stream time passes gap + grace
// beyond their end.
func TestDSLSessionStoreRetention(t *testing.T) {
	d := sessionDriver(t, 10*time.Second, 5*time.Second, nil)
	pipeAll(t, d, "in", "a:1@0", "b:1@15000")
	ss, err := testutil.SessionStore[string, int64](d, "counts")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ss.FetchSession("a", at(0), at(1)); err != nil || !ok {
		t.Fatalf("a's session at 15000: %v %v", ok, err)
	}
	pipeAll(t, d, "in", "b:1@15001") // 1 + 15000 <= 15001: a's session expired
	if _, ok, err := ss.FetchSession("a", at(0), at(1)); err != nil || ok {
		t.Fatalf("a's session at 15001: %v %v", ok, err)
	}
}

// Bad session windows are refused at Build.
func TestDSLSessionBuildProblems(t *testing.T) {
	b := topology.New()
	g := topology.Stream(b, "in", "in", serde.String(), serde.Int64()).GroupByKey()
	topology.CountSessions(g.SessionWindowedBy(topology.SessionWindows(0)), "zero-gap")
	topology.CountSessions(g.SessionWindowedBy(topology.SessionWindows(time.Second).Grace(-time.Second)), "neg-grace")
	topology.AggregateSessions[string, int64, string](g.SessionWindowedBy(topology.SessionWindows(time.Second)), "no-merger",
		func() string { return "" }, func(string, int64, string) (string, error) { return "", nil }, nil, serde.String())
	_, err := b.Build()
	for _, want := range []string{`"zero-gap"`, "gap 0s must be at least 1ms", `"neg-grace"`, "grace period -1s is negative", `"no-merger"`, "merger function is nil"} {
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("Build error lacks %q: %v", want, err)
		}
	}
}
