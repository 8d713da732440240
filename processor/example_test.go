package processor_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// Stateless steps are plain functions: Filter drops records, MapValues
// changes values, and the TestDriver runs them with the real serdes.
func ExampleFilter() {
	b := topology.New()
	in := topology.Source(b, "in", "payments", serde.String(), serde.Int64())
	big := topology.ProcessFunc(b, "big-only", in, processor.Filter(func(r processor.Record[string, int64]) (bool, error) {
		return r.Value >= 1000, nil
	}))
	labels := topology.ProcessFunc(b, "label", big, processor.MapValues(func(card string, cents int64) (string, error) {
		return fmt.Sprintf("%s spent %d.%02d", strings.ToUpper(card), cents/100, cents%100), nil
	}))
	topology.Sink(b, "out", "big-payments", labels, serde.String(), serde.String())
	topo, err := b.Build()
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
	payments := testutil.NewInputTopic(d, "payments", serde.String(), serde.Int64())
	for _, cents := range []int64{250, 125000, 999, 1000} {
		if err := payments.Pipe("card-1", cents, time.Time{}); err != nil {
			fmt.Println(err)
		}
	}
	recs, _ := testutil.NewOutputTopic(d, "big-payments", serde.String(), serde.String()).ReadRecords()
	for _, r := range recs {
		fmt.Println(r.Value)
	}
	// Output:
	// CARD-1 spent 1250.00
	// CARD-1 spent 10.00
}
