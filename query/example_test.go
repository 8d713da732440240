package query_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
)

// An App serves its stores over HTTP on its QueryEndpoint, and reads them
// from Go through a typed view. (Compiled, not run: it needs a broker.)
// app.QueryHandler(opts...) and topology.QueryKeyValue are the same calls
// spelled on the App.
func ExampleNewHandler() {
	b := topology.New()
	src := topology.Source(b, "in", "words", serde.String(), serde.String())
	topology.KeyValueStore(b, "counts", serde.String(), serde.Int64())
	counts := topology.Process(b, "count", src, newCounter, topology.WithStores("counts"))
	topology.Sink(b, "out", "word-counts", counts, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	app, err := topology.NewApp(topo, topology.Config{
		ApplicationID: "word-count", Brokers: []string{"localhost:9092"},
		QueryEndpoint: "word-count-0.internal:8080", // how the other instances reach this one
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: ":8080", Handler: query.NewHandler(app, query.WithBearerToken("s3cret"))}
	go srv.ListenAndServe() // GET /stores/counts/keys/brook, /stores/counts/range?prefix=b, ...
	defer srv.Close()
	go app.Run(context.Background())
	defer app.Close()

	view, err := query.KeyValue[string, int64](app, "counts")
	if err != nil {
		log.Fatal(err)
	}
	n, found, err := view.Get("brook")
	var elsewhere *query.NotLocalError
	var notReady *query.NotReadyError
	switch {
	case errors.As(err, &elsewhere):
		fmt.Println("ask", elsewhere.Endpoint)
	case errors.As(err, &notReady):
		fmt.Println("restoring; ask again soon")
	case err != nil:
		log.Fatal(err)
	case found:
		fmt.Println("brook:", n)
	}
}
