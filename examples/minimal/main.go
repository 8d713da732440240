// Command minimal declares a small topology (JSON serdes, one in-memory
// store) and builds it, without running it. It is the program whose
// stripped size docs/DESIGN.md tracks to show what an embedding service
// links for brook's declaration API: no goavro, no goleveldb, no registry
// client.
//
//	go build -ldflags='-s -w' -o /tmp/minimal ./examples/minimal
package main

import (
	"fmt"
	"os"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
)

// Payment is the value read from and written to Kafka.
type Payment struct {
	ID    string `json:"id"`
	Cents int64  `json:"cents"`
}

func main() {
	b := topology.New()
	payments := topology.Source(b, "payments", "payments", serde.String(), serde.JSON[Payment]())
	topology.KeyValueStore(b, "seen", serde.String(), serde.JSON[Payment](), topology.InMemory())
	checked := topology.ProcessFunc(b, "check", payments,
		processor.MapValues(func(_ string, p Payment) (Payment, error) { return p, nil }),
		topology.WithStores("seen"))
	topology.Sink(b, "out", "payments-checked", checked, serde.String(), serde.JSON[Payment]())
	t, err := b.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(t.Describe())
}
