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

// changes renders a table's output records as "key=value@ms" (or
// "key=<deleted>@ms").
func changes[K, V any](t *testing.T, d *testutil.TestDriver, topic string, keys serde.Serde[K], values serde.Serde[V]) []string {
	t.Helper()
	var out []string
	for _, r := range read(t, d, topic, keys, topology.ChangeSerde(values)) {
		v := fmt.Sprint(r.Value.Value)
		if r.Value.Deleted {
			v = "<deleted>"
		}
		out = append(out, fmt.Sprintf("%v=%s@%d", r.Key, v, r.Timestamp.Sub(t0).Milliseconds()))
	}
	return out
}

func checkStrings(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func kvStoreContent[K comparable, V any](t *testing.T, d *testutil.TestDriver, name string) map[K]V {
	t.Helper()
	s, err := testutil.KeyValueStore[K, V](d, name)
	if err != nil {
		t.Fatal(err)
	}
	it, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[K]V{}
	for it.Next() {
		out[it.Key()] = it.Value()
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func at(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// Count, Reduce and Aggregate of a grouped stream: one update per record,
// with the larger of the record's and the aggregate's timestamps (as Kafka
// Streams' timestamped aggregations), the aggregate in a store named by
// the user.
func TestDSLStreamAggregations(t *testing.T) {
	b := topology.New()
	g := topology.Stream(b, "payments", "payments", serde.String(), serde.Int64()).GroupByKey()
	topology.Count(g, "counts").ToStream("counts-changes").To("counts-out", "counts", serde.String(), topology.ChangeSerde(serde.Int64()))
	topology.Reduce(g, "sums", func(agg, v int64) (int64, error) { return agg + v, nil }).
		ToStream("sums-changes").To("sums-out", "sums", serde.String(), topology.ChangeSerde(serde.Int64()))
	topology.Aggregate(g, "lists", func() string { return "" }, func(k string, v int64, agg string) (string, error) {
		return agg + "+" + strconv.FormatInt(v, 10), nil
	}, serde.String(), topology.InMemory()).ToStream("lists-changes").To("lists-out", "lists", serde.String(), topology.ChangeSerde(serde.String()))
	d := dslDriver(t, b)
	in := testutil.NewInputTopic(d, "payments", serde.String(), serde.Int64())
	for _, r := range []struct {
		k  string
		v  int64
		ms int64
	}{{"a", 10, 100}, {"b", 5, 200}, {"a", 7, 50}, {"a", 1, 300}} {
		if err := in.Pipe(r.k, r.v, at(r.ms)); err != nil {
			t.Fatal(err)
		}
	}
	// The out-of-order record (a at 50) keeps a's output at 100.
	checkStrings(t, "counts", changes(t, d, "counts", serde.String(), serde.Int64()), "a=1@100", "b=1@200", "a=2@100", "a=3@300")
	checkStrings(t, "sums", changes(t, d, "sums", serde.String(), serde.Int64()), "a=10@100", "b=5@200", "a=17@100", "a=18@300")
	checkStrings(t, "lists", changes(t, d, "lists", serde.String(), serde.String()), "a=+10@100", "b=+5@200", "a=+10+7@100", "a=+10+7+1@300")
	if got := kvStoreContent[string, int64](t, d, "counts"); got["a"] != 3 || got["b"] != 1 || len(got) != 2 {
		t.Fatalf("counts store: %v", got)
	}
	if got := kvStoreContent[string, string](t, d, "lists"); got["a"] != "+10+7+1" {
		t.Fatalf("lists store: %v", got)
	}
}

// An error from the aggregator is a processing error and leaves the
// aggregate as it was.
func TestDSLAggregateErrorKeepsAggregate(t *testing.T) {
	b := topology.New()
	g := topology.Stream(b, "in", "in", serde.String(), serde.Int64()).GroupByKey()
	topology.Reduce(g, "sums", func(agg, v int64) (int64, error) {
		if v < 0 {
			return 0, fmt.Errorf("negative amount %d", v)
		}
		return agg + v, nil
	})
	d := dslDriver(t, b)
	in := testutil.NewInputTopic(d, "in", serde.String(), serde.Int64())
	if err := in.Pipe("a", 5, at(1)); err != nil {
		t.Fatal(err)
	}
	err := in.Pipe("a", -1, at(2))
	if !strings.Contains(fmt.Sprint(err), "negative amount -1") {
		t.Fatalf("error = %v", err)
	}
	if got := kvStoreContent[string, int64](t, d, "sums"); got["a"] != 5 {
		t.Fatalf("sums: %v", got)
	}
}

// Records with a null key (on the wire, or a nil pointer key) and nil
// values are dropped, with a warning that counts them.
func TestDSLAggregateDropsNullKeys(t *testing.T) {
	var logs bytes.Buffer
	b := topology.New()
	g := topology.Stream(b, "in", "in", serde.String(), serde.Int64()).GroupByKey()
	topology.Count(g, "counts")
	type amount struct{ N int64 }
	ptrs := topology.Stream(b, "ptrs", "ptrs", serde.String(), serde.JSON[*amount]()).GroupByKey()
	topology.Count(ptrs, "ptr-counts")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo, testutil.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.PipeRaw("in", nil, []byte{0, 0, 0, 0, 0, 0, 0, 1}, at(1), nil); err != nil {
		t.Fatal(err)
	}
	if err := d.PipeRaw("in", nil, []byte{0, 0, 0, 0, 0, 0, 0, 1}, at(2), nil); err != nil {
		t.Fatal(err)
	}
	// The empty key is a key: counted.
	if err := d.PipeRaw("in", []byte{}, []byte{0, 0, 0, 0, 0, 0, 0, 1}, at(3), nil); err != nil {
		t.Fatal(err)
	}
	if err := d.PipeRaw("ptrs", []byte("k"), []byte("null"), at(4), nil); err != nil {
		t.Fatal(err)
	}
	if got := kvStoreContent[string, int64](t, d, "counts"); len(got) != 1 || got[""] != 1 {
		t.Fatalf("counts: %v (null keys must not be counted under \"\")", got)
	}
	if got := kvStoreContent[string, int64](t, d, "ptr-counts"); len(got) != 0 {
		t.Fatalf("ptr-counts: %v", got)
	}
	l := logs.String()
	for _, want := range []string{"reason=\"null key\" dropped_total=1 topic=in partition=0 offset=0",
		"reason=\"null key\" dropped_total=2 topic=in partition=0 offset=1",
		"reason=\"null value\" dropped_total=1 topic=ptrs"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
}

// Map then GroupByKey goes through the repartition topic; the count is
// per new key.
func TestDSLCountThroughRepartition(t *testing.T) {
	b := topology.New()
	words := topology.FlatMap(topology.Stream(b, "lines", "lines", serde.String(), serde.String()), "split",
		func(_ string, line string) ([]topology.KeyValue[string, string], error) {
			var out []topology.KeyValue[string, string]
			for _, w := range strings.Fields(line) {
				out = append(out, topology.KV(w, w))
			}
			return out, nil
		})
	topology.Count(words.GroupByKey(topology.WithSerdes(serde.String(), serde.String()), topology.WithRepartitionName("words")), "word-counts").
		ToStream("changes").To("out", "word-counts", serde.String(), topology.ChangeSerde(serde.Int64()))
	d := dslDriver(t, b)
	in := testutil.NewInputTopic(d, "lines", serde.String(), serde.String())
	for i, l := range []string{"a b a", "b c"} {
		if err := in.Pipe("", l, at(int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(d.ReadRawOutput(testutil.DriverApplicationID + "-words-repartition")); n != 5 {
		t.Fatalf("repartition topic got %d records, want 5", n)
	}
	checkStrings(t, "word counts", changes(t, d, "word-counts", serde.String(), serde.Int64()), "a=1@0", "b=1@0", "a=2@0", "b=2@1", "c=1@1")
}

// A table re-grouped by a column: a row moving from group A to B is
// subtracted from A and added to B; a deletion subtracts; an update that
// stays in its group is one record that subtracts and adds.
func TestDSLTableAggregations(t *testing.T) {
	b := topology.New()
	accounts := topology.TableOf(b, "accounts", "accounts", serde.String(), serde.String())
	// value "<branch>:<balance>"
	byBranch := topology.GroupTableBy(accounts, "by-branch", func(_ string, v string) (string, int64, error) {
		branch, bal, ok := strings.Cut(v, ":")
		if !ok {
			return "", 0, fmt.Errorf("bad account %q", v)
		}
		n, err := strconv.ParseInt(bal, 10, 64)
		return branch, n, err
	}, serde.String(), serde.Int64())
	topology.CountTable(byBranch, "branch-counts").ToStream("counts-changes").To("counts-out", "branch-counts", serde.String(), topology.ChangeSerde(serde.Int64()))
	topology.ReduceTable(byBranch, "branch-sums",
		func(agg, v int64) (int64, error) { return agg + v, nil },
		func(agg, v int64) (int64, error) { return agg - v, nil }).
		ToStream("sums-changes").To("sums-out", "branch-sums", serde.String(), topology.ChangeSerde(serde.Int64()))
	topology.AggregateTable(byBranch, "branch-log", func() string { return "" },
		func(k string, v int64, agg string) (string, error) { return agg + "+" + strconv.FormatInt(v, 10), nil },
		func(k string, v int64, agg string) (string, error) { return agg + "-" + strconv.FormatInt(v, 10), nil },
		serde.String()).ToStream("log-changes").To("log-out", "branch-log", serde.String(), topology.ChangeSerde(serde.String()))
	d := dslDriver(t, b)
	in := testutil.NewInputTopic(d, "accounts", serde.String(), serde.String())
	pipe := func(k, v string, ms int64) {
		t.Helper()
		if err := in.Pipe(k, v, at(ms)); err != nil {
			t.Fatal(err)
		}
	}
	pipe("acc1", "A:100", 1)
	pipe("acc2", "A:50", 2)
	pipe("acc1", "A:120", 3) // same group: one record, -100 +120
	pipe("acc2", "B:50", 4)  // moves: -50 from A, +50 to B
	if err := d.PipeRaw("accounts", []byte("acc1"), nil, at(5), nil); err != nil {
		t.Fatal(err) // deletion: -120 from A
	}
	checkStrings(t, "counts", changes(t, d, "branch-counts", serde.String(), serde.Int64()),
		"A=1@1", "A=2@2", "A=2@3", "A=1@4", "B=1@4", "A=0@5")
	checkStrings(t, "sums", changes(t, d, "branch-sums", serde.String(), serde.Int64()),
		"A=100@1", "A=150@2", "A=170@3", "A=120@4", "B=50@4", "A=0@5")
	checkStrings(t, "log", changes(t, d, "branch-log", serde.String(), serde.String()),
		"A=+100@1", "A=+100+50@2", "A=+100+50-100+120@3", "A=+100+50-100+120-50@4", "B=+50@4", "A=+100+50-100+120-50-120@5")
	if got := kvStoreContent[string, int64](t, d, "branch-sums"); got["A"] != 0 || got["B"] != 50 {
		t.Fatalf("branch-sums store: %v", got)
	}
	if got := kvStoreContent[string, int64](t, d, "branch-counts"); got["A"] != 0 || got["B"] != 1 {
		t.Fatalf("branch-counts store: %v", got)
	}
}

// GroupTableBy and the aggregations refuse missing functions and serdes at
// Build.
func TestDSLAggregationBuildProblems(t *testing.T) {
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
	topology.Reduce(s.GroupByKey(), "r", nil)
	topology.Aggregate[string, int64, string](s.GroupByKey(), "a", nil, nil, serde.String())
	topology.Aggregate(s.GroupByKey(), "no-serde", func() string { return "" }, func(string, int64, string) (string, error) { return "", nil }, nil)
	tbl := topology.TableOf(b, "t", "t", serde.String(), serde.String())
	topology.GroupTableBy[string, string, string, string](tbl, "g", nil, serde.String(), serde.String())
	_, err := b.Build()
	for _, want := range []string{`"r"`, "reduce function is nil", `"a"`, "initializer function is nil", `"no-serde"`, "aggregate serde", `"g"`, "group-by selector function is nil"} {
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("Build error lacks %q: %v", want, err)
		}
	}
}
