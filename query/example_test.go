package query_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
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

// A window store's view reads a key's windows from the instance that
// holds the key (Fetch, FetchRange) and this instance's windows of a time
// range (FetchAll); over HTTP, /stores/per-minute/windows/{key} and
// /stores/per-minute/windows answer for the whole application. (Compiled,
// not run: it needs a broker.) topology.QueryWindow is the same call.
func ExampleWindow() {
	b := topology.New()
	perMinute := topology.WindowStore(b, "per-minute", serde.String(), serde.Int64(),
		store.WindowOptions{Retention: 24 * time.Hour, Size: time.Minute})
	src := topology.Source(b, "in", "card-payments", serde.String(), serde.String())
	counts := topology.ProcessFunc(b, "count", src, func(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
		w, err := perMinute.From(ctx)
		if err != nil {
			return err
		}
		start := r.Timestamp.Truncate(time.Minute)
		n, _, err := w.Fetch(r.Key, start)
		if err != nil {
			return err
		}
		if err := w.Put(r.Key, start, n+1); err != nil {
			return err
		}
		return ctx.Forward(processor.Revalue(r, n+1))
	}, topology.WithStores(perMinute.Name()))
	topology.Sink(b, "out", "card-payments-per-minute", counts, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	app, err := topology.NewApp(topo, topology.Config{
		ApplicationID: "card-velocity", Brokers: []string{"localhost:9092"},
		QueryEndpoint: "card-velocity-0.internal:8080",
	})
	if err != nil {
		log.Fatal(err)
	}
	go app.Run(context.Background())
	defer app.Close()

	view, err := query.Window[string, int64](app, "per-minute")
	if err != nil {
		log.Fatal(err)
	}
	to := time.Now()
	it, err := view.FetchRange("card-1", to.Add(-time.Hour), to)
	var elsewhere *query.NotLocalError
	switch {
	case errors.As(err, &elsewhere):
		fmt.Printf("ask %s: GET /stores/per-minute/windows/card-1?from=%d\n", elsewhere.Endpoint, to.Add(-time.Hour).UnixMilli())
		return
	case err != nil:
		log.Fatal(err) // a *query.NotReadyError while restoring
	}
	defer it.Close()
	for it.Next() {
		fmt.Printf("card-1 [%s, %s): %d\n", it.Key().Format(time.RFC3339), it.Key().Add(view.WindowSize()).Format(time.RFC3339), it.Value())
	}
	if err := it.Err(); err != nil {
		log.Fatal(err) // query.ErrIteratorInvalidated after a rebalance
	}
}
