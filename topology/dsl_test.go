package topology_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// dslDriver builds b and returns a TestDriver for it.
func dslDriver(t *testing.T, b *topology.Builder) *testutil.TestDriver {
	t.Helper()
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// read returns every record sinks sent to topic, decoded.
func read[K, V any](t *testing.T, d *testutil.TestDriver, topic string, keys serde.Serde[K], values serde.Serde[V]) []processor.Record[K, V] {
	t.Helper()
	recs, err := testutil.NewOutputTopic(d, topic, keys, values).ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func hdr(k, v string) processor.Header { return processor.Header{Key: k, Value: []byte(v)} }

func rec[K, V any](k K, v V, ts time.Time, h ...processor.Header) processor.Record[K, V] {
	return processor.Record[K, V]{Key: k, Value: v, Timestamp: ts, Headers: processor.Headers(h)}
}

func checkRecords[K, V any](t *testing.T, topic string, got, want []processor.Record[K, V]) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d records %v, want %d %v", topic, len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !reflect.DeepEqual(g.Key, w.Key) || !reflect.DeepEqual(g.Value, w.Value) || !g.Timestamp.Equal(w.Timestamp) ||
			!reflect.DeepEqual([]processor.Header(g.Headers), []processor.Header(w.Headers)) {
			t.Errorf("%s[%d] = %+v, want %+v", topic, i, g, w)
		}
	}
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// Every stateless operation keeps each record's timestamp and headers and
// emits in input order.
func TestDSLStatelessOperations(t *testing.T) {
	b := topology.New()
	in := topology.Stream(b, "amounts", "amounts", serde.String(), serde.Int64())
	var peeked []string
	in.Filter("big", func(_ string, v int64) bool { return v >= 100 }).To("big-out", "big", serde.String(), serde.Int64())
	in.FilterNot("small", func(_ string, v int64) bool { return v >= 100 }).To("small-out", "small", serde.String(), serde.Int64())
	in.Peek("peek", func(k string, v int64) { peeked = append(peeked, fmt.Sprint(k, "=", v)) }).To("peek-out", "peeked", serde.String(), serde.Int64())
	topology.MapValues(in, "to-text", func(k string, v int64) (string, error) { return k + ":" + strconv.FormatInt(v, 10), nil }).
		To("text-out", "text", serde.String(), serde.String())
	topology.Map(in, "swap", func(k string, v int64) (int64, string, error) { return v, k, nil }).
		To("swap-out", "swapped", serde.Int64(), serde.String())
	topology.SelectKey(in, "by-parity", func(_ string, v int64) (bool, error) { return v%2 == 0, nil }).
		To("parity-out", "parity", serde.JSON[bool](), serde.Int64())
	// FlatMap: v copies of the record keyed k-1..k-v (zero copies for 0).
	topology.FlatMap(in, "copies", func(k string, v int64) ([]topology.KeyValue[string, int64], error) {
		var out []topology.KeyValue[string, int64]
		for i := int64(1); i <= v && i <= 3; i++ {
			out = append(out, topology.KV(k+"-"+strconv.FormatInt(i, 10), i))
		}
		return out, nil
	}).To("copies-out", "copies", serde.String(), serde.Int64())
	topology.FlatMapValues(in, "digits", func(_ string, v int64) ([]string, error) {
		if v == 0 {
			return nil, nil
		}
		return strings.Split(strconv.FormatInt(v, 10), ""), nil
	}).To("digits-out", "digits", serde.String(), serde.String())

	d := dslDriver(t, b)
	input := testutil.NewInputTopic(d, "amounts", serde.String(), serde.Int64())
	h1, h2 := hdr("trace", "t-1"), hdr("trace", "t-2")
	t1, t2, t3 := t0, t0.Add(time.Second), t0.Add(-time.Minute) // out of order on purpose
	for _, r := range []processor.Record[string, int64]{rec("a", int64(150), t1, h1), rec("b", int64(2), t2, h2), rec("c", int64(0), t3)} {
		if err := input.PipeRecord(r); err != nil {
			t.Fatal(err)
		}
	}
	checkRecords(t, "big", read(t, d, "big", serde.String(), serde.Int64()), []processor.Record[string, int64]{rec("a", int64(150), t1, h1)})
	checkRecords(t, "small", read(t, d, "small", serde.String(), serde.Int64()), []processor.Record[string, int64]{rec("b", int64(2), t2, h2), rec("c", int64(0), t3)})
	checkRecords(t, "peeked", read(t, d, "peeked", serde.String(), serde.Int64()),
		[]processor.Record[string, int64]{rec("a", int64(150), t1, h1), rec("b", int64(2), t2, h2), rec("c", int64(0), t3)})
	if want := []string{"a=150", "b=2", "c=0"}; !reflect.DeepEqual(peeked, want) {
		t.Errorf("peek saw %v, want %v", peeked, want)
	}
	checkRecords(t, "text", read(t, d, "text", serde.String(), serde.String()),
		[]processor.Record[string, string]{rec("a", "a:150", t1, h1), rec("b", "b:2", t2, h2), rec("c", "c:0", t3)})
	checkRecords(t, "swapped", read(t, d, "swapped", serde.Int64(), serde.String()),
		[]processor.Record[int64, string]{rec(int64(150), "a", t1, h1), rec(int64(2), "b", t2, h2), rec(int64(0), "c", t3)})
	checkRecords(t, "parity", read(t, d, "parity", serde.JSON[bool](), serde.Int64()),
		[]processor.Record[bool, int64]{rec(true, int64(150), t1, h1), rec(true, int64(2), t2, h2), rec(true, int64(0), t3)})
	checkRecords(t, "copies", read(t, d, "copies", serde.String(), serde.Int64()), []processor.Record[string, int64]{
		rec("a-1", int64(1), t1, h1), rec("a-2", int64(2), t1, h1), rec("a-3", int64(3), t1, h1),
		rec("b-1", int64(1), t2, h2), rec("b-2", int64(2), t2, h2),
	})
	checkRecords(t, "digits", read(t, d, "digits", serde.String(), serde.String()), []processor.Record[string, string]{
		rec("a", "1", t1, h1), rec("a", "5", t1, h1), rec("a", "0", t1, h1), rec("b", "2", t2, h2),
	})
}

// An error from a mapper is a processing error naming the node and the
// source record; the handler sees it as for any processor.
func TestDSLMapperErrorIsProcessingError(t *testing.T) {
	b := topology.New()
	in := topology.Stream(b, "in", "in", serde.String(), serde.String())
	topology.MapValues(in, "parse", func(_ string, v string) (int64, error) { return strconv.ParseInt(v, 10, 64) }).
		To("out", "out", serde.String(), serde.Int64())
	d := dslDriver(t, b)
	input := testutil.NewInputTopic(d, "in", serde.String(), serde.String())
	if err := input.Pipe("k", "12", t0); err != nil {
		t.Fatal(err)
	}
	err := input.Pipe("k", "twelve", t0)
	var pe *processor.ProcessingError
	if !errors.As(err, &pe) || pe.Node != "parse" || pe.Topic != "in" || pe.Offset != 1 {
		t.Fatalf("Pipe returned %v, want a ProcessingError of node parse at in@1", err)
	}
}

// Split routes each record to the first branch that accepts it, else to
// the default branch; without a default branch it drops the record.
func TestDSLSplit(t *testing.T) {
	b := topology.New()
	in := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
	sp := in.Split("route")
	sp.Branch("large", func(_ string, v int64) bool { return v >= 1000 }).To("large-out", "large", serde.String(), serde.Int64())
	// Every large amount is also even here: first match wins, so these
	// reach "large" only.
	sp.Branch("even", func(_ string, v int64) bool { return v%2 == 0 }).To("even-out", "even", serde.String(), serde.Int64())
	sp.Default("rest").To("rest-out", "rest", serde.String(), serde.Int64())

	noDefault := in.Split("only-neg")
	noDefault.Branch("neg", func(_ string, v int64) bool { return v < 0 }).To("neg-out", "neg", serde.String(), serde.Int64())

	d := dslDriver(t, b)
	input := testutil.NewInputTopic(d, "in", serde.String(), serde.Int64())
	h := hdr("h", "1")
	for i, v := range []int64{2000, 4, 7, -3, 1001} {
		if err := input.Pipe(fmt.Sprint("k", i), v, t0.Add(time.Duration(i)*time.Second), h); err != nil {
			t.Fatal(err)
		}
	}
	ts := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	checkRecords(t, "large", read(t, d, "large", serde.String(), serde.Int64()),
		[]processor.Record[string, int64]{rec("k0", int64(2000), ts(0), h), rec("k4", int64(1001), ts(4), h)})
	checkRecords(t, "even", read(t, d, "even", serde.String(), serde.Int64()), []processor.Record[string, int64]{rec("k1", int64(4), ts(1), h)})
	checkRecords(t, "rest", read(t, d, "rest", serde.String(), serde.Int64()),
		[]processor.Record[string, int64]{rec("k2", int64(7), ts(2), h), rec("k3", int64(-3), ts(3), h)})
	checkRecords(t, "neg", read(t, d, "neg", serde.String(), serde.Int64()), []processor.Record[string, int64]{rec("k3", int64(-3), ts(3), h)})
}

// Merge forwards the records of all inputs in the order they are
// processed.
func TestDSLMerge(t *testing.T) {
	b := topology.New()
	cards := topology.Stream(b, "cards", "cards", serde.String(), serde.Int64())
	wires := topology.Stream(b, "wires", "wires", serde.String(), serde.Int64())
	atm := topology.Stream(b, "atm", "atm", serde.String(), serde.Int64())
	cards.Merge("payments", wires, atm).To("out", "payments", serde.String(), serde.Int64())
	d := dslDriver(t, b)
	var want []processor.Record[string, int64]
	for i, topic := range []string{"wires", "cards", "atm", "cards", "wires"} {
		h := hdr("from", topic)
		ts := t0.Add(time.Duration(-i) * time.Second)
		if err := testutil.NewInputTopic(d, topic, serde.String(), serde.Int64()).Pipe(topic, int64(i), ts, h); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec(topic, int64(i), ts, h))
	}
	checkRecords(t, "payments", read(t, d, "payments", serde.String(), serde.Int64()), want)
}

// ToTopicFunc sends each record to its own topic; an empty topic or an
// error from the function is a production error naming the sink.
func TestDSLToTopicFunc(t *testing.T) {
	b := topology.New()
	in := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
	in.ToTopicFunc("route", func(r processor.Record[string, int64]) (string, error) {
		if r.Key == "bad" {
			return "", nil
		}
		return "payments-" + r.Key, nil
	}, serde.String(), serde.Int64())
	d := dslDriver(t, b)
	input := testutil.NewInputTopic(d, "in", serde.String(), serde.Int64())
	h := hdr("h", "x")
	for i, k := range []string{"eu", "us", "eu"} {
		if err := input.Pipe(k, int64(i), t0.Add(time.Duration(i)*time.Millisecond), h); err != nil {
			t.Fatal(err)
		}
	}
	checkRecords(t, "payments-eu", read(t, d, "payments-eu", serde.String(), serde.Int64()),
		[]processor.Record[string, int64]{rec("eu", int64(0), t0, h), rec("eu", int64(2), t0.Add(2*time.Millisecond), h)})
	checkRecords(t, "payments-us", read(t, d, "payments-us", serde.String(), serde.Int64()),
		[]processor.Record[string, int64]{rec("us", int64(1), t0.Add(time.Millisecond), h)})
	err := input.Pipe("bad", 9, t0)
	var pe *processor.ProductionError
	if !errors.As(err, &pe) || pe.Node != "route" || pe.Topic != "in" {
		t.Fatalf("Pipe returned %v, want a ProductionError of sink route", err)
	}
}

// A filtered table forwards a deletion when an update leaves the filter;
// deletions in the topic pass through; the source table's store holds
// every key; MapTableValues maps updates and passes deletions.
func TestDSLTableFilterTombstones(t *testing.T) {
	b := topology.New()
	limits := topology.TableOf(b, "limits", "card-limits", serde.String(), serde.Int64())
	high := limits.Filter("high", func(_ string, v int64) bool { return v >= 1000 })
	high.ToStream("high-changes").To("high-out", "high-limits", serde.String(), topology.ChangeSerde(serde.Int64()))
	low := limits.FilterNot("low", func(_ string, v int64) bool { return v >= 1000 })
	topology.MapTableValues(low, "low-text", func(k string, v int64) (string, error) { return k + "<" + strconv.FormatInt(v, 10), nil }).
		ToStream("low-changes").To("low-out", "low-limits", serde.String(), topology.ChangeSerde(serde.String()))
	if _, ok := limits.Store(); !ok {
		t.Error("TableOf has no store")
	}
	if _, ok := high.Store(); ok {
		t.Error("a filtered table claims a store")
	}

	d := dslDriver(t, b)
	h := hdr("src", "core")
	pipe := func(k string, v *int64, ts time.Time) {
		t.Helper()
		var vb []byte
		if v != nil {
			var err error
			if vb, err = serde.Int64().Serialize("card-limits", *v); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.PipeRaw("card-limits", []byte(k), vb, ts, processor.Headers{h}); err != nil {
			t.Fatal(err)
		}
	}
	n := func(v int64) *int64 { return &v }
	ts := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	pipe("a", n(5000), ts(0)) // high
	pipe("a", n(10), ts(1))   // leaves high: deletion
	pipe("b", n(20), ts(2))   // never high: deletion too (as Kafka Streams)
	pipe("c", n(2000), ts(3)) // high
	pipe("c", nil, ts(4))     // deleted in the topic
	del, upd := topology.Deletion[int64](), topology.Update[int64]
	checkRecords(t, "high-limits", read(t, d, "high-limits", serde.String(), topology.ChangeSerde(serde.Int64())),
		[]processor.Record[string, topology.Change[int64]]{
			rec("a", upd(5000), ts(0), h), rec("a", del, ts(1), h), rec("b", del, ts(2), h),
			rec("c", upd(2000), ts(3), h), rec("c", del, ts(4), h),
		})
	sdel, supd := topology.Deletion[string](), topology.Update[string]
	checkRecords(t, "low-limits", read(t, d, "low-limits", serde.String(), topology.ChangeSerde(serde.String())),
		[]processor.Record[string, topology.Change[string]]{
			rec("a", sdel, ts(0), h), rec("a", supd("a<10"), ts(1), h), rec("b", supd("b<20"), ts(2), h),
			rec("c", sdel, ts(3), h), rec("c", sdel, ts(4), h),
		})
	// Tombstones are null values on the wire.
	pipe("a", nil, ts(5))
	raw := d.ReadRawOutput("high-limits")
	if len(raw) != 1 || raw[0].Value != nil || string(raw[0].Key) != "a" {
		t.Fatalf("high-limits raw output %+v, want one tombstone for a", raw)
	}
	kv, err := testutil.KeyValueStore[string, int64](d, "limits")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := kv.Get("b"); err != nil || !ok || v != 20 {
		t.Errorf("store limits[b] = %v, %v, %v; want 20", v, ok, err)
	}
	for _, k := range []string{"a", "c"} {
		if v, ok, err := kv.Get(k); err != nil || ok {
			t.Errorf("store limits[%s] = %v, %v, %v; want deleted", k, v, ok, err)
		}
	}
}

// A DSL stream feeds a hand-written processor, whose node comes back into
// the DSL; key-changing operations and foreign nodes mark the stream.
func TestDSLProcessorAPIInterop(t *testing.T) {
	b := topology.New()
	in := topology.Stream(b, "in", "in", serde.String(), serde.String())
	if in.KeyChanged() {
		t.Error("a source stream is key-changed")
	}
	upper := topology.ProcessFunc(b, "upper", in.Filter("non-empty", func(_ string, v string) bool { return v != "" }).Node(),
		processor.MapValues(func(_ string, v string) (string, error) { return strings.ToUpper(v), nil }))
	back := topology.FromNode(upper)
	if !back.KeyChanged() {
		t.Error("a stream from a processor node is not key-changed")
	}
	back.Peek("seen", func(string, string) {}).To("out", "out", serde.String(), serde.String())
	if mv := topology.MapValues(in, "mv", func(_ string, v string) (string, error) { return v, nil }); mv.KeyChanged() {
		t.Error("MapValues marks the key changed")
	}
	sk := topology.SelectKey(in, "sk", func(_ string, v string) (string, error) { return v, nil })
	if !sk.KeyChanged() || !sk.Filter("sk-f", func(string, string) bool { return true }).KeyChanged() {
		t.Error("SelectKey (or a filter after it) is not key-changed")
	}
	if !in.Merge("m", sk).KeyChanged() {
		t.Error("a merge with a key-changed stream is not key-changed")
	}
	sk.To("sk-out", "sk", serde.String(), serde.String())
	topology.Map(in, "map", func(k, v string) (string, string, error) { return v, k, nil }).To("map-out", "map", serde.String(), serde.String())

	d := dslDriver(t, b)
	input := testutil.NewInputTopic(d, "in", serde.String(), serde.String())
	h := hdr("x", "y")
	if err := input.Pipe("k", "", t0); err != nil {
		t.Fatal(err)
	}
	if err := input.Pipe("k", "abc", t0, h); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, "out", read(t, d, "out", serde.String(), serde.String()), []processor.Record[string, string]{rec("k", "ABC", t0, h)})
}

// DSL names are the user's: a collision with a derived name is refused, as
// are nil functions and a second default branch.
func TestDSLBuildRefusesBadDeclarations(t *testing.T) {
	b := topology.New()
	in := topology.Stream(b, "in", "in", serde.String(), serde.String())
	sp := in.Split("route")
	sp.Branch("a", func(string, string) bool { return true })
	sp.Default("rest")
	sp.Default("other")
	in.Filter("route-a", func(string, string) bool { return true }) // collides with the branch node
	in.Filter("nil-filter", nil)
	topology.MapValues[string, string, int](in, "nil-map", nil)
	_, err := b.Build()
	if err == nil {
		t.Fatal("Build accepted bad declarations")
	}
	for _, want := range []string{
		`duplicate name: node "route-a"`,
		`node "route-other": split "route" already has the default branch "route-rest"`,
		`node "nil-filter": filter function is nil`,
		`node "nil-map": map-values function is nil`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Build error lacks %q:\n%v", want, err)
		}
	}
	// Zero handles declare nothing and are refused where used.
	var zero topology.KStream[string, string]
	zero.Filter("z", func(string, string) bool { return true }).To("z-out", "z", serde.String(), serde.String())
	b2 := topology.New()
	topology.Stream(b2, "in", "in", serde.String(), serde.String()).Merge("m", zero).To("out", "out", serde.String(), serde.String())
	if _, err := b2.Build(); err == nil || !strings.Contains(err.Error(), "zero Node handle") {
		t.Fatalf("Build with a zero stream returned %v", err)
	}
}

// dslTopology is a small fraud-routing pipeline of every kind of DSL node.
func dslTopology() *topology.Builder {
	b := topology.New()
	txns := topology.Stream(b, "txns", "card-transactions", serde.String(), serde.Int64(), topology.WithTopics("wire-transactions"))
	cents := txns.FilterNot("drop-zero", func(_ string, v int64) bool { return v == 0 })
	route := cents.Split("route")
	route.Branch("large", func(_ string, v int64) bool { return v >= 100_000 }).To("to-review", "manual-review", serde.String(), serde.Int64())
	topology.MapValues(route.Default("normal"), "format", func(k string, v int64) (string, error) { return fmt.Sprintf("%s:%d", k, v), nil }).
		ToTopicFunc("to-region", func(r processor.Record[string, string]) (string, error) { return "ledger-" + r.Key[:2], nil }, serde.String(), serde.String())
	blocked := topology.TableOf(b, "blocked", "blocked-cards", serde.String(), serde.String())
	blocked.Filter("active-blocks", func(_ string, reason string) bool { return reason != "" }).
		ToStream("block-changes").To("to-blocks", "block-changes", serde.String(), topology.ChangeSerde(serde.String()))
	return b
}

func TestDSLDescribeGolden(t *testing.T) {
	topo, err := dslTopology().Build()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "dsl-describe.txt"), topo.Describe())
	checkGolden(t, filepath.Join("testdata", "dsl-mermaid.txt"), topo.DescribeMermaid())
}
