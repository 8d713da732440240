package topology_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// counter counts records per key in the "counts" store and forwards each
// new count.
type counter struct {
	counts store.KeyValueStore[string, int64]
}

func newCounter() processor.Processor[string, string, string, int64] { return &counter{} }

func (c *counter) Init(ctx processor.Context[string, int64]) (err error) {
	c.counts, err = processor.KeyValueStore[string, int64](ctx, "counts")
	return err
}

func (c *counter) Process(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
	n, _, err := c.counts.Get(r.Key)
	if err != nil {
		return err
	}
	n++
	if err := c.counts.Put(r.Key, n); err != nil {
		return err
	}
	return ctx.Forward(processor.Revalue(r, n))
}

func (c *counter) Close() error { return nil }

// wordCountTopology splits lines into words, re-keys them by word through
// a repartition topic (so that one task sees every occurrence of a word)
// and counts them in a store.
func wordCountTopology() (*topology.Topology, error) {
	b := topology.New()
	lines := topology.Source(b, "lines", "text-lines", serde.String(), serde.String())
	words := topology.ProcessFunc(b, "split", lines, processor.FlatMap(
		func(r processor.Record[string, string]) ([]processor.Record[string, string], error) {
			var out []processor.Record[string, string]
			for _, w := range strings.Fields(strings.ToLower(r.Value)) {
				out = append(out, processor.Record[string, string]{Key: w, Value: w, Timestamp: r.Timestamp})
			}
			return out, nil
		}))
	topology.Sink(b, "to-words", "words-by-word", words, serde.String(), serde.String())

	byWord := topology.Source(b, "words", "words-by-word", serde.String(), serde.String())
	topology.KeyValueStore(b, "counts", serde.String(), serde.Int64())
	counts := topology.Process(b, "count", byWord, newCounter, topology.WithStores("counts"))
	topology.Sink(b, "out", "word-counts", counts, serde.String(), serde.Int64())
	return b.Build()
}

// Word count: a stateless split, a repartition topic, and a stateful count
// backed by a key-value store, run by the TestDriver.
func Example_wordCount() {
	topo, err := wordCountTopology()
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	in := testutil.NewInputTopic(d, "text-lines", serde.String(), serde.String())
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, line := range []string{"the quick brown fox", "The lazy dog", "the end"} {
		if err := in.Pipe("", line, t0.Add(time.Duration(i)*time.Second)); err != nil {
			fmt.Println(err)
			return
		}
	}
	out := testutil.NewOutputTopic(d, "word-counts", serde.String(), serde.Int64())
	recs, err := out.ReadRecords()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range recs {
		fmt.Printf("%s=%d at %s\n", r.Key, r.Value, r.Timestamp.Format(time.TimeOnly))
	}
	counts, err := testutil.KeyValueStore[string, int64](d, "counts")
	if err != nil {
		fmt.Println(err)
		return
	}
	n, _, _ := counts.Get("the")
	fmt.Println("store: the =", n)
	// Output:
	// the=1 at 12:00:00
	// quick=1 at 12:00:00
	// brown=1 at 12:00:00
	// fox=1 at 12:00:00
	// the=2 at 12:00:01
	// lazy=1 at 12:00:01
	// dog=1 at 12:00:01
	// the=3 at 12:00:02
	// end=1 at 12:00:02
	// store: the = 3
}
