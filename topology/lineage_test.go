package topology_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// lineageTopology: in → upper → "out"; in → group by value (repartition)
// → count → "counts"; and a stream-time punctuator writing to "ticks".
func lineageTopology(t testing.TB, in, out, counts, ticks string) *topology.Topology {
	t.Helper()
	b := topology.New()
	s := topology.Stream(b, "in", in, serde.String(), serde.String())
	topology.MapValues(s, "upper", func(_ string, v string) (string, error) { return strings.ToUpper(v), nil }).
		To("out-sink", out, serde.String(), serde.String())
	byValue := topology.GroupBy(s, "by-value", func(_ string, v string) (string, error) { return v, nil }, serde.String())
	topology.Count(byValue, "counts").ToStream("count-changes").
		To("counts-sink", counts, serde.String(), topology.ChangeSerde(serde.Int64()))
	p := topology.Process(b, "ticker", topology.Source(b, "tick-src", ticks+"-in", serde.String(), serde.String()),
		func() processor.Processor[string, string, string, string] { return &ticker{} })
	topology.Sink(b, "ticks-sink", ticks, p, serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// ticker forwards nothing itself; its one-minute stream-time punctuator
// writes a "tick" record, produced while no input record is processed.
type ticker struct{}

func (*ticker) Init(ctx processor.Context[string, string]) error {
	_, err := ctx.Schedule(time.Minute, processor.StreamTime, func(ts time.Time) error {
		return ctx.Forward(processor.Record[string, string]{Key: "tick", Value: "tick", Timestamp: ts})
	})
	return err
}
func (*ticker) Process(processor.Context[string, string], processor.Record[string, string]) error {
	return nil
}
func (*ticker) Close() error { return nil }

func lineageOf(t *testing.T, h processor.Headers) processor.Lineage {
	t.Helper()
	l, ok := processor.LineageOf(h)
	if !ok {
		t.Fatalf("no lineage headers in %v", h)
	}
	return l
}

// TestLineageHeadersTestDriver: with lineage on, every sink record names
// the input record it came from (an upstream lineage header is replaced,
// other headers kept), the count behind the repartition topic names the
// repartition record, and a punctuator's record names only application
// and node; with lineage off, nothing is added.
func TestLineageHeadersTestDriver(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("lineage=%v", on), func(t *testing.T) {
			topo := lineageTopology(t, "in", "out", "counts", "ticks")
			var opts []testutil.DriverOption
			if on {
				opts = append(opts, testutil.WithLineageHeaders())
			}
			d, err := testutil.NewTestDriver(topo, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			in := testutil.NewInputTopic(d, "in", serde.String(), serde.String())
			upstream := processor.Lineage{ApplicationID: "upstream-app", Node: "up", Topic: "raw", Partition: 2, Offset: 99}.
				AppendTo(processor.Headers{hdr("trace", "t0")})
			for i, v := range []string{"x", "y", "x"} {
				if err := in.Pipe(fmt.Sprint("k", i), v, at(int64(i)), upstream...); err != nil {
					t.Fatal(err)
				}
			}
			ticks := testutil.NewInputTopic(d, "ticks-in", serde.String(), serde.String())
			if err := ticks.Pipe("a", "a", at(0)); err != nil {
				t.Fatal(err)
			}
			if err := ticks.Pipe("b", "b", at(2*60_000)); err != nil {
				t.Fatal(err)
			}

			outs := read(t, d, "out", serde.String(), serde.String())
			counts := d.ReadRawOutput("counts")
			tickRecs := d.ReadRawOutput("ticks")
			if len(outs) != 3 || len(counts) != 3 || len(tickRecs) == 0 {
				t.Fatalf("got %d out, %d counts, %d ticks records; want 3, 3, ≥1", len(outs), len(counts), len(tickRecs))
			}
			if !on {
				for _, r := range outs {
					// Headers pass through unchanged (as Kafka Streams
					// forwards them): the upstream lineage stays.
					if l := lineageOf(t, r.Headers); l.ApplicationID != "upstream-app" || len(r.Headers) != len(upstream) {
						t.Fatalf("lineage off changed headers: %v", r.Headers)
					}
				}
				for _, r := range tickRecs {
					if _, ok := processor.LineageOf(r.Headers); ok {
						t.Fatalf("lineage off added headers to a punctuator's record: %v", r.Headers)
					}
				}
				return
			}
			for i, r := range outs {
				want := processor.Lineage{ApplicationID: testutil.DriverApplicationID, Node: "out-sink", Topic: "in", Partition: 0, Offset: int64(i)}
				if got := lineageOf(t, r.Headers); got != want {
					t.Errorf("out[%d] lineage %+v, want %+v", i, got, want)
				}
				if v, _ := r.Headers.Get("trace"); string(v) != "t0" {
					t.Errorf("out[%d] lost its trace header: %v", i, r.Headers)
				}
				n := 0
				for _, h := range r.Headers {
					if h.Key == processor.HeaderLineage {
						n++
					}
				}
				if n != 1 {
					t.Errorf("out[%d] has %d lineage headers, want 1 (upstream's replaced): %v", i, n, r.Headers)
				}
			}
			for i, r := range counts {
				got := lineageOf(t, r.Headers)
				if got.Node != "counts-sink" || !strings.HasSuffix(got.Topic, "-by-value-repartition") || got.Offset != int64(i) {
					t.Errorf("counts[%d] lineage %+v, want node counts-sink, the repartition topic, offset %d", i, got, i)
				}
			}
			for _, r := range tickRecs {
				want := processor.Lineage{ApplicationID: testutil.DriverApplicationID, Node: "ticks-sink", Offset: -1}
				if got := lineageOf(t, r.Headers); got != want {
					t.Errorf("tick lineage %+v, want %+v (no input record during punctuation)", got, want)
				}
				if v, _ := r.Headers.Get(processor.HeaderLineage); !strings.HasPrefix(string(v), "|") {
					t.Errorf("a punctuator's record names a source record: %q", v)
				}
			}
		})
	}
}

// TestAppLineageHeaders runs the lineage topology in the Kafka runtime:
// every output names an input record that exists at that topic,
// partition and offset and holds the record the output came from.
func TestAppLineageHeaders(t *testing.T) {
	bk := testutil.NewBroker(t)
	name := func(s string) string { return testutil.TopicName(t, s) }
	in, out, counts, ticks := name("in"), name("out"), name("counts"), name("ticks")
	bk.CreateTopic(t, in, 3, nil)
	bk.CreateTopic(t, ticks+"-in", 3, nil)
	for _, tp := range []string{out, counts, ticks} {
		bk.CreateTopic(t, tp, 1, nil)
	}
	ts := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 30; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{
			Key: sarama.StringEncoder(fmt.Sprint("k", i)), Value: sarama.StringEncoder(fmt.Sprint("v", i%4)),
			Partition: int32(i % 3), Timestamp: ts.Add(time.Duration(i) * time.Millisecond),
		})
	}
	bk.Produce(t, in, msgs...)

	appID := name("app")
	ctx, cancel := context.WithCancel(context.Background())
	_, done := startApp(t, ctx, lineageTopology(t, in, out, counts, ticks), topology.Config{
		ApplicationID: appID, Brokers: bk.Addrs(), StateDir: t.TempDir(),
		CommitInterval: 100 * time.Millisecond, Logger: testLogger(t), LineageHeaders: true,
	})
	outs := bk.WaitForRecords(t, out, 30, false, 60*time.Second)
	cs := bk.WaitForRecords(t, counts, 30, false, 60*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	inputs := map[string]*sarama.ConsumerMessage{}
	for _, m := range bk.ConsumeAll(t, in) {
		inputs[fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)] = m
	}
	headersOf := func(m *sarama.ConsumerMessage) processor.Headers {
		var h processor.Headers
		for _, x := range m.Headers {
			h = append(h, processor.Header{Key: string(x.Key), Value: x.Value})
		}
		return h
	}
	seen := map[string]bool{}
	for _, m := range outs {
		l := lineageOf(t, headersOf(m))
		if l.ApplicationID != appID || l.Node != "out-sink" || l.Topic != in {
			t.Fatalf("out lineage %+v, want application %s, node out-sink, topic %s", l, appID, in)
		}
		src, ok := inputs[fmt.Sprintf("%s/%d/%d", l.Topic, l.Partition, l.Offset)]
		if !ok {
			t.Fatalf("out record %s names %s[%d]@%d, which does not exist", m.Key, l.Topic, l.Partition, l.Offset)
		}
		if string(src.Key) != string(m.Key) || strings.ToUpper(string(src.Value)) != string(m.Value) {
			t.Fatalf("out record %s=%s names input %s=%s", m.Key, m.Value, src.Key, src.Value)
		}
		seen[string(m.Key)] = true
	}
	if len(seen) != 30 {
		t.Fatalf("outputs named %d distinct inputs, want 30", len(seen))
	}
	// Follow each count back through the repartition record to the input
	// record: the chain of lineage headers is an audit trail.
	reparts := map[string]*sarama.ConsumerMessage{}
	for _, m := range bk.ConsumeAll(t, appID+"-by-value-repartition") {
		reparts[fmt.Sprintf("%d/%d", m.Partition, m.Offset)] = m
	}
	for _, m := range cs {
		l := lineageOf(t, headersOf(m))
		if l.Node != "counts-sink" || l.Topic != appID+"-by-value-repartition" || l.Offset < 0 {
			t.Fatalf("count lineage %+v, want node counts-sink and topic %s-by-value-repartition", l, appID)
		}
		rp, ok := reparts[fmt.Sprintf("%d/%d", l.Partition, l.Offset)]
		if !ok {
			t.Fatalf("count %s names repartition record %d@%d, which does not exist", m.Key, l.Partition, l.Offset)
		}
		if string(rp.Key) != string(m.Key) {
			t.Fatalf("count for %s names a repartition record keyed %s", m.Key, rp.Key)
		}
		rl := lineageOf(t, headersOf(rp))
		src, ok := inputs[fmt.Sprintf("%s/%d/%d", rl.Topic, rl.Partition, rl.Offset)]
		if rl.Node != "by-value-repartition-sink" || !ok || string(src.Value) != string(m.Key) {
			t.Fatalf("repartition record %d@%d: lineage %+v does not name an input with value %s", rp.Partition, rp.Offset, rl, m.Key)
		}
	}
}
