package query_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// BenchmarkQuery measures local reads of a 1,000-key LevelDB store of a
// running App: the typed view's Get, and the HTTP handler's key and range
// answers (no network: httptest).
func BenchmarkQuery(b *testing.B) {
	br := testutil.NewBroker(b)
	in, out := testutil.TopicName(b, "in"), testutil.TopicName(b, "out")
	br.CreateTopic(b, in, 2, nil)
	br.CreateTopic(b, out, 2, nil)
	const keys = 1000
	produceKeysTB(b, br, in, 2, keys, 1)
	ctx, cancel := context.WithCancel(context.Background())
	app, err := topology.NewApp(countTopology(b, in, out), topology.Config{
		ApplicationID: testutil.TopicName(b, "app"), Brokers: br.Addrs(), StateDir: b.TempDir(), QueryEndpoint: "127.0.0.1:1",
		Logger: testLogger(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	view, err := topology.QueryKeyValue[string, int64](app, "counts")
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if n, err := view.ApproximateCount(); err == nil && n == keys {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("store not filled")
		}
		time.Sleep(100 * time.Millisecond)
	}
	h := app.QueryHandler()
	b.Run("view-get", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, found, err := view.Get(fmt.Sprintf("key-%03d", i%keys)); err != nil || !found {
				b.Fatal(err, found)
			}
		}
	})
	b.Run("http-get", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/stores/counts/keys/key-%03d", i%keys), nil))
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code, rec.Body.String())
			}
		}
	})
	b.Run("http-range-100", func(b *testing.B) {
		for b.Loop() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stores/counts/range?limit=100&from=key-400", nil))
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code, rec.Body.String())
			}
		}
	})
}
