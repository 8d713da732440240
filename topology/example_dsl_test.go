package topology_test

import (
	"fmt"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// The DSL declares ordinary nodes: type-keeping operations are methods,
// type-changing ones are package functions. Split routes each payment to
// the first branch that accepts it; timestamps and headers travel with
// every record.
func Example_dsl() {
	b := topology.New()
	payments := topology.Stream(b, "payments", "payments", serde.String(), serde.Int64()) // cents by account
	valid := payments.FilterNot("drop-empty", func(_ string, cents int64) bool { return cents == 0 })
	route := valid.Split("route")
	route.Branch("refunds", func(_ string, cents int64) bool { return cents < 0 }).
		To("to-refunds", "refunds", serde.String(), serde.Int64())
	euros := topology.MapValues(route.Default("charges"), "to-euros", func(_ string, cents int64) (string, error) {
		return fmt.Sprintf("%d.%02d EUR", cents/100, cents%100), nil
	})
	euros.To("to-charges", "charges", serde.String(), serde.String())

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
	in := testutil.NewInputTopic(d, "payments", serde.String(), serde.Int64())
	at := time.Date(2024, 5, 1, 9, 30, 0, 0, time.UTC)
	for _, p := range []struct {
		account string
		cents   int64
	}{{"acc-1", 1250}, {"acc-2", 0}, {"acc-1", -500}, {"acc-3", 99}} {
		if err := in.Pipe(p.account, p.cents, at, processor.Header{Key: "channel", Value: []byte("web")}); err != nil {
			fmt.Println(err)
			return
		}
	}
	charges, _ := testutil.NewOutputTopic(d, "charges", serde.String(), serde.String()).ReadRecords()
	for _, r := range charges {
		ch, _ := r.Headers.Get("channel")
		fmt.Println("charge", r.Key, r.Value, r.Timestamp.Format(time.Kitchen), string(ch))
	}
	refunds, _ := testutil.NewOutputTopic(d, "refunds", serde.String(), serde.Int64()).ReadRecords()
	for _, r := range refunds {
		fmt.Println("refund", r.Key, r.Value)
	}
	// Output:
	// charge acc-1 12.50 EUR 9:30AM web
	// charge acc-3 0.99 EUR 9:30AM web
	// refund acc-1 -500
}
