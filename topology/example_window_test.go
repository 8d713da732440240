package topology_test

import (
	"fmt"
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// Transactions per card in 10-minute tumbling windows with one minute of
// grace, one final count per window once it has closed.
func Example_windowedCountFinal() {
	b := topology.New()
	txns := topology.Stream(b, "txns", "card-transactions", serde.String(), serde.String())
	counts := topology.WindowedBy(txns.GroupByKey(), topology.Tumbling(10*time.Minute).Grace(time.Minute)).Count("card-counts")
	counts.Suppress("card-finals", topology.UntilWindowCloses()).ToStream("finals").
		To("to-counts", "card-counts", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))

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
	in := testutil.NewInputTopic(d, "card-transactions", serde.String(), serde.String())
	t0 := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	for _, tx := range []struct {
		card string
		at   time.Duration
	}{
		{"card-1", 1 * time.Minute}, {"card-2", 2 * time.Minute}, {"card-1", 9 * time.Minute},
		{"card-1", 10 * time.Minute},               // next window
		{"card-2", 9*time.Minute + 30*time.Second}, // out of order, within grace
		{"card-1", 11 * time.Minute},               // 9:00-9:10 closes (end + grace)
		{"card-2", 5 * time.Minute},                // late: dropped
		{"card-1", 21 * time.Minute},               // 9:10-9:20 closes
	} {
		if err := in.Pipe(tx.card, "txn", t0.Add(tx.at)); err != nil {
			fmt.Println(err)
			return
		}
	}
	finals, _ := testutil.NewOutputTopic(d, "card-counts", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64())).ReadRecords()
	for _, r := range finals {
		fmt.Printf("%s %s-%s: %d\n", r.Key.Key, r.Key.Start.Format("15:04"), r.Key.End.Format("15:04"), r.Value.Value)
	}
	// Output:
	// card-1 09:00-09:10: 2
	// card-2 09:00-09:10: 2
	// card-1 09:10-09:20: 2
}
