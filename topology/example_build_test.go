package topology_test

import (
	"fmt"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
)

// Build reports every problem at once, each naming the node, topic or
// store concerned.
func ExampleBuilder_Build() {
	b := topology.New()
	txns := topology.Source(b, "txns", "transactions", serde.String(), serde.Int64())
	topology.Source(b, "txns-again", "transactions", serde.String(), serde.Int64())
	topology.KeyValueStore(b, "totals", serde.String(), serde.Int64())
	double := topology.ProcessFunc(b, "double", txns, processor.MapValues(func(_ string, v int64) (int64, error) { return 2 * v, nil }),
		topology.WithStores("limits"))
	topology.Sink(b, "double", "doubled", double, serde.String(), serde.Int64())

	_, err := b.Build()
	fmt.Println(err)
	// Output:
	// topology: duplicate name: node "double": node name used twice (first by a processor)
	// topology: unknown store: node "double": store "limits": store is not declared; declare it with topology.KeyValueStore or topology.Table
	// topology: unconnected store: store "totals": store is connected to no processor; connect it with topology.WithStores("totals") or remove it
	// topology: duplicate topic: node "txns-again": topic "transactions": topic is already read by source "txns"; read it once and fan out from one source
}
