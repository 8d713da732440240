package testutil_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

var dt0 = time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)

func newDriver(t *testing.T, b *topology.Builder, opts ...testutil.DriverOption) *testutil.TestDriver {
	t.Helper()
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo, opts...)
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

func TestDriverKeepsValuesTimestampsAndHeaders(t *testing.T) {
	b := topology.New()
	in := topology.Source(b, "in", "names", serde.String(), serde.String())
	upper := topology.ProcessFunc(b, "upper", in, processor.MapValues(func(_ string, v string) (int64, error) {
		return int64(len(v)), nil
	}))
	topology.Sink(b, "out", "name-lengths", upper, serde.String(), serde.Int64())
	d := newDriver(t, b, testutil.WithStartTime(dt0))

	input := testutil.NewInputTopic(d, "names", serde.String(), serde.String())
	ts := dt0.Add(1500*time.Millisecond + 999*time.Microsecond) // sub-millisecond part is lost, as in Kafka
	if err := input.Pipe("k1", "alice", ts, processor.Header{Key: "trace", Value: []byte("t-1")}); err != nil {
		t.Fatal(err)
	}
	if err := input.Pipe("k2", "bob", time.Time{}); err != nil { // zero: the driver's wall clock
		t.Fatal(err)
	}
	out := testutil.NewOutputTopic(d, "name-lengths", serde.String(), serde.Int64())
	if out.Len() != 2 {
		t.Fatalf("Len = %d", out.Len())
	}
	r, err := out.ReadRecord()
	if err != nil {
		t.Fatal(err)
	}
	if r.Key != "k1" || r.Value != 5 || !r.Timestamp.Equal(dt0.Add(1500*time.Millisecond)) {
		t.Fatalf("first record = %+v", r)
	}
	if v, ok := r.Headers.Get("trace"); !ok || string(v) != "t-1" {
		t.Fatalf("headers = %v", r.Headers)
	}
	r, err = out.ReadRecord()
	if err != nil || r.Key != "k2" || r.Value != 3 || !r.Timestamp.Equal(dt0) || len(r.Headers) != 0 {
		t.Fatalf("second record = %+v, %v", r, err)
	}
	if _, err := out.ReadRecord(); !errors.Is(err, testutil.ErrNoRecord) {
		t.Fatalf("third ReadRecord err = %v", err)
	}
	if err := testutil.NewInputTopic(d, "unknown", serde.String(), serde.String()).Pipe("k", "v", dt0); err == nil ||
		!strings.Contains(err.Error(), `"unknown"`) {
		t.Fatalf("pipe to unknown topic: %v", err)
	}
}

// router sends even numbers to the child "evens" and odd ones to "odds";
// 13 goes to a child that does not exist.
func router(ctx processor.Context[string, int64], r processor.Record[string, int64]) error {
	switch {
	case r.Value == 13:
		return ctx.ForwardTo("unlucky", r)
	case r.Value%2 == 0:
		return ctx.ForwardTo("evens", r)
	default:
		return ctx.ForwardTo("odds", r)
	}
}

func TestDriverForwardToNamedChild(t *testing.T) {
	b := topology.New()
	in := topology.Source(b, "in", "numbers", serde.String(), serde.Int64())
	routed := topology.ProcessFunc(b, "route", in, router)
	topology.Sink(b, "evens", "even-numbers", routed, serde.String(), serde.Int64())
	topology.Sink(b, "odds", "odd-numbers", routed, serde.String(), serde.Int64())
	d := newDriver(t, b)

	input := testutil.NewInputTopic(d, "numbers", serde.String(), serde.Int64())
	for i := int64(1); i <= 5; i++ {
		if err := input.Pipe("k", i, dt0); err != nil {
			t.Fatal(err)
		}
	}
	values := func(topic string) []int64 {
		recs, err := testutil.NewOutputTopic(d, topic, serde.String(), serde.Int64()).ReadRecords()
		if err != nil {
			t.Fatal(err)
		}
		var vs []int64
		for _, r := range recs {
			vs = append(vs, r.Value)
		}
		return vs
	}
	if got := values("even-numbers"); !slices.Equal(got, []int64{2, 4}) {
		t.Fatalf("evens = %v", got)
	}
	if got := values("odd-numbers"); !slices.Equal(got, []int64{1, 3, 5}) {
		t.Fatalf("odds = %v", got)
	}
	err := input.Pipe("k", 13, dt0)
	var pe *processor.ProcessingError
	var uc *processor.UnknownChildError
	if !errors.As(err, &pe) || !errors.As(err, &uc) || pe.Node != "route" || pe.Offset != 5 || uc.Child != "unlucky" ||
		!slices.Equal(uc.Children, []string{"evens", "odds"}) {
		t.Fatalf("ForwardTo unknown child: %v", err)
	}
}

func TestDriverDeserializationErrors(t *testing.T) {
	build := func(opts ...topology.Option) *topology.Builder {
		b := topology.New(opts...)
		in := topology.Source(b, "amounts", "amounts", serde.String(), serde.Int64())
		topology.Sink(b, "out", "amounts-copy", in, serde.String(), serde.Int64())
		return b
	}
	good := []byte{0, 0, 0, 0, 0, 0, 0, 42}

	t.Run("default fails naming topic and offset", func(t *testing.T) {
		d := newDriver(t, build())
		if err := d.PipeRaw("amounts", []byte("k"), good, dt0, nil); err != nil {
			t.Fatal(err)
		}
		err := d.PipeRaw("amounts", []byte("k"), []byte("not eight bytes"), dt0, nil)
		var de *processor.DeserializationError
		if !errors.As(err, &de) || de.Topic != "amounts" || de.Offset != 1 || de.Part != "value" || de.Node != "amounts" {
			t.Fatalf("err = %v", err)
		}
		if msg := err.Error(); !strings.Contains(msg, `topic "amounts"`) || !strings.Contains(msg, "offset 1") {
			t.Fatalf("message %q does not name topic and offset", msg)
		}
		var decode *serde.DecodeError
		if !errors.As(err, &decode) {
			t.Fatalf("serde error not wrapped: %v", err)
		}
	})
	t.Run("handler continues", func(t *testing.T) {
		var seen []processor.ErrorContext
		d := newDriver(t, build(topology.WithDeserializationHandler(func(ec processor.ErrorContext) processor.HandlerResponse {
			seen = append(seen, ec)
			return processor.Continue
		})))
		for _, v := range [][]byte{good, []byte("bad"), good} {
			if err := d.PipeRaw("amounts", []byte("k"), v, dt0, processor.Headers{{Key: "h", Value: []byte("1")}}); err != nil {
				t.Fatal(err)
			}
		}
		if len(seen) != 1 || seen[0].Topic != "amounts" || seen[0].Offset != 1 || string(seen[0].Value) != "bad" ||
			seen[0].Node != "amounts" || seen[0].Err == nil || len(seen[0].Headers) != 1 {
			t.Fatalf("handler saw %+v", seen)
		}
		if n := len(d.ReadRawOutput("amounts-copy")); n != 2 {
			t.Fatalf("%d records passed, want the 2 good ones", n)
		}
	})
}

func TestDriverProcessingErrors(t *testing.T) {
	build := func(opts ...topology.Option) *topology.Builder {
		b := topology.New(opts...)
		in := topology.Source(b, "in", "words", serde.String(), serde.String())
		fragile := topology.ProcessFunc(b, "fragile", in, func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
			if r.Value == "boom" {
				return errors.New("cannot handle boom")
			}
			return ctx.Forward(r)
		})
		topology.Sink(b, "fragile-out", "fragile-out", fragile, serde.String(), serde.String())
		topology.Sink(b, "all-out", "all-out", in, serde.String(), serde.String())
		return b
	}
	t.Run("default fails", func(t *testing.T) {
		d := newDriver(t, build())
		err := testutil.NewInputTopic(d, "words", serde.String(), serde.String()).Pipe("k", "boom", dt0)
		var pe *processor.ProcessingError
		if !errors.As(err, &pe) || pe.Node != "fragile" || pe.Topic != "words" || pe.Offset != 0 || pe.Punctuation ||
			!strings.Contains(err.Error(), "cannot handle boom") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("handler continues with the other branch", func(t *testing.T) {
		var seen []string
		d := newDriver(t, build(topology.WithProcessingHandler(func(ec processor.ErrorContext) processor.HandlerResponse {
			seen = append(seen, fmt.Sprintf("%s@%s/%d: %v", ec.Node, ec.Topic, ec.Offset, ec.Err))
			return processor.Continue
		})))
		in := testutil.NewInputTopic(d, "words", serde.String(), serde.String())
		for _, w := range []string{"a", "boom", "b"} {
			if err := in.Pipe("k", w, dt0); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(seen, []string{"fragile@words/1: cannot handle boom"}) {
			t.Fatalf("handler saw %v", seen)
		}
		if n := len(d.ReadRawOutput("fragile-out")); n != 2 {
			t.Fatalf("fragile-out got %d records, want 2", n)
		}
		if n := len(d.ReadRawOutput("all-out")); n != 3 { // the sibling branch still got "boom"
			t.Fatalf("all-out got %d records, want 3", n)
		}
	})
}

// picky fails to serialize negative numbers.
type picky struct{}

func (picky) Serialize(topic string, v int64) ([]byte, error) {
	if v < 0 {
		return nil, fmt.Errorf("negative %d not allowed", v)
	}
	return serde.Int64().Serialize(topic, v)
}

func (picky) Deserialize(topic string, b []byte) (int64, error) {
	return serde.Int64().Deserialize(topic, b)
}

func TestDriverProductionErrors(t *testing.T) {
	build := func(opts ...topology.Option) *topology.Builder {
		b := topology.New(opts...)
		in := topology.Source(b, "in", "numbers", serde.String(), serde.Int64())
		topology.DynamicSink(b, "out", func(r processor.Record[string, int64]) (string, error) {
			return "numbers-" + r.Key, nil
		}, in, serde.String(), picky{})
		return b
	}
	t.Run("default fails", func(t *testing.T) {
		d := newDriver(t, build())
		in := testutil.NewInputTopic(d, "numbers", serde.String(), serde.Int64())
		if err := in.Pipe("eu", 1, dt0); err != nil {
			t.Fatal(err)
		}
		err := in.Pipe("us", -1, dt0)
		var pe *processor.ProductionError
		if !errors.As(err, &pe) || pe.Node != "out" || pe.OutputTopic != "numbers-us" || pe.Topic != "numbers" || pe.Offset != 1 ||
			!strings.Contains(err.Error(), "negative -1") {
			t.Fatalf("err = %v", err)
		}
		if got := d.OutputTopics(); !slices.Equal(got, []string{"numbers-eu"}) {
			t.Fatalf("output topics = %v", got)
		}
	})
	t.Run("handler continues", func(t *testing.T) {
		var seen []string
		d := newDriver(t, build(topology.WithProductionHandler(func(ec processor.ErrorContext, out processor.ProducedRecord) processor.HandlerResponse {
			seen = append(seen, fmt.Sprintf("%s->%s key=%v offset=%d", ec.Node, out.Topic, out.Key, ec.Offset))
			return processor.Continue
		})))
		in := testutil.NewInputTopic(d, "numbers", serde.String(), serde.Int64())
		for _, v := range []int64{1, -2, 3} {
			if err := in.Pipe("eu", v, dt0); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(seen, []string{"out->numbers-eu key=[] offset=1"}) {
			t.Fatalf("handler saw %v", seen)
		}
		if n := len(d.ReadRawOutput("numbers-eu")); n != 2 {
			t.Fatalf("%d records produced, want 2", n)
		}
	})
}

// ticker counts records in a store and emits the running total on each
// punctuation of either kind.
type ticker struct {
	typ   processor.PunctuationType
	every time.Duration
	ctx   processor.Context[string, string]
	seen  int
}

func (p *ticker) Init(ctx processor.Context[string, string]) error {
	p.ctx = ctx
	_, err := ctx.Schedule(p.every, p.typ, func(ts time.Time) error {
		return ctx.Forward(processor.Record[string, string]{Key: p.typ.String(), Value: strconv.Itoa(p.seen), Timestamp: ts})
	})
	return err
}

func (p *ticker) Process(_ processor.Context[string, string], _ processor.Record[string, string]) error {
	p.seen++
	return nil
}

func (p *ticker) Close() error { return nil }

func tickerTopology(typ processor.PunctuationType, every time.Duration) *topology.Builder {
	b := topology.New()
	in := topology.Source(b, "in", "events", serde.String(), serde.String())
	ticks := topology.Process(b, "ticker", in, func() processor.Processor[string, string, string, string] {
		return &ticker{typ: typ, every: every}
	})
	topology.Sink(b, "out", "ticks", ticks, serde.String(), serde.String())
	return b
}

func readTicks(t *testing.T, d *testutil.TestDriver) []string {
	t.Helper()
	recs, err := testutil.NewOutputTopic(d, "ticks", serde.String(), serde.String()).ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Value+"@"+r.Timestamp.Format("15:04:05"))
	}
	return out
}

func TestDriverWallClockPunctuation(t *testing.T) {
	d := newDriver(t, tickerTopology(processor.WallClockTime, 10*time.Second), testutil.WithStartTime(dt0))
	in := testutil.NewInputTopic(d, "events", serde.String(), serde.String())
	if err := in.Pipe("k", "v", dt0.Add(time.Hour)); err != nil { // record time does not matter
		t.Fatal(err)
	}
	if got := readTicks(t, d); len(got) != 0 {
		t.Fatalf("ticks before the clock moved: %v", got)
	}
	if err := d.AdvanceWallClock(9 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.AdvanceWallClock(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := in.Pipe("k", "v", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := d.AdvanceWallClock(25 * time.Second); err != nil { // 12:30:35: fires once for :20 and :30
		t.Fatal(err)
	}
	if got, want := readTicks(t, d), []string{"1@09:30:10", "2@09:30:35"}; !slices.Equal(got, want) {
		t.Fatalf("ticks = %v, want %v", got, want)
	}
	if !d.WallClock().Equal(dt0.Add(35 * time.Second)) {
		t.Fatalf("WallClock = %v", d.WallClock())
	}
	if err := d.AdvanceWallClock(-time.Second); err == nil {
		t.Fatal("moving the clock back succeeded")
	}
}

func TestDriverStreamTimePunctuation(t *testing.T) {
	d := newDriver(t, tickerTopology(processor.StreamTime, time.Minute))
	in := testutil.NewInputTopic(d, "events", serde.String(), serde.String())
	for _, at := range []time.Duration{0, 30 * time.Second, 10 * time.Second, 61 * time.Second, 3 * time.Minute} {
		if err := in.Pipe("k", "v", dt0.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AdvanceWallClock(time.Hour); err != nil { // wall clock does not drive stream time
		t.Fatal(err)
	}
	if got, want := readTicks(t, d), []string{"1@09:30:00", "4@09:31:01", "5@09:33:00"}; !slices.Equal(got, want) {
		t.Fatalf("ticks = %v, want %v", got, want)
	}
}

func TestDriverTableWithTombstones(t *testing.T) {
	b := topology.New()
	profiles := topology.Table(b, "profiles", "customer-profiles", serde.String(), serde.String())
	pay := topology.Source(b, "payments", "payments", serde.String(), serde.Int64())
	enriched := topology.Process(b, "enrich", pay, func() processor.Processor[string, int64, string, string] {
		var ctx processor.Context[string, string]
		return processor.Func[string, int64, string, string](func(c processor.Context[string, string], r processor.Record[string, int64]) error {
			ctx = c
			kv, err := profiles.From(ctx)
			if err != nil {
				return err
			}
			name, found, err := kv.Get(r.Key)
			if err != nil {
				return err
			}
			if !found {
				name = "unknown"
			}
			return ctx.Forward(processor.Revalue(r, fmt.Sprintf("%s paid %d", name, r.Value)))
		})
	}, topology.WithStores(profiles.Name()))
	topology.Sink(b, "out", "payments-enriched", enriched, serde.String(), serde.String())
	d := newDriver(t, b)

	prof := testutil.NewInputTopic(d, "customer-profiles", serde.String(), serde.String())
	payIn := testutil.NewInputTopic(d, "payments", serde.String(), serde.Int64())
	steps := []error{
		prof.Pipe("c1", "Ada", dt0),
		payIn.Pipe("c1", 100, dt0),
		d.PipeRaw("customer-profiles", []byte("c1"), nil, dt0, nil), // tombstone
		payIn.Pipe("c1", 200, dt0),
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	recs, err := testutil.NewOutputTopic(d, "payments-enriched", serde.String(), serde.String()).ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Value)
	}
	if want := []string{"Ada paid 100", "unknown paid 200"}; !slices.Equal(got, want) {
		t.Fatalf("enriched = %v, want %v", got, want)
	}
	kv, err := testutil.KeyValueStore[string, string](d, "profiles")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := kv.ApproximateCount(); n != 0 || err != nil {
		t.Fatalf("profiles count = %d, %v", n, err)
	}
	if _, err := testutil.KeyValueStore[string, int64](d, "profiles"); err == nil {
		t.Fatal("store fetched with the wrong value type")
	}
}

func TestDriverFeedbackLoopIsBounded(t *testing.T) {
	b := topology.New()
	in := topology.Source(b, "in", "loop", serde.String(), serde.String())
	topology.Sink(b, "out", "loop", in, serde.String(), serde.String())
	d := newDriver(t, b)
	err := testutil.NewInputTopic(d, "loop", serde.String(), serde.String()).Pipe("k", "v", dt0)
	if err == nil || !strings.Contains(err.Error(), "feed its own input") {
		t.Fatalf("err = %v", err)
	}
}

func TestDriverClose(t *testing.T) {
	b := topology.New()
	topology.Source(b, "in", "a", serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(d.Close(), d.Close()); err != nil {
		t.Fatal(err)
	}
	if err := d.PipeRaw("a", nil, nil, dt0, nil); err == nil {
		t.Fatal("PipeRaw after Close succeeded")
	}
	if _, err := testutil.NewTestDriver(nil); err == nil {
		t.Fatal("NewTestDriver(nil) succeeded")
	}
}

// A Topology that Builder.Build did not make is refused with an error, not
// a panic: the driver reaches the graph through topology's opaque handle.
func TestNewTestDriverRefusesUnbuiltTopology(t *testing.T) {
	for _, topo := range []*topology.Topology{nil, {}} {
		if d, err := testutil.NewTestDriver(topo); err == nil {
			d.Close()
			t.Fatalf("NewTestDriver(%v) = nil error, want one", topo)
		}
	}
}
