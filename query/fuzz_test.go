package query_test

import (
	"fmt"

	"context"
	"github.com/IBM/sarama"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// FuzzQueryHandler sends arbitrary paths, queries and headers to the
// handler of a running App: it must never panic nor answer a 5xx other
// than 502 and 503, and every answer that is not a success is a JSON
// error. Fuzz it with a count budget, for example
// -fuzztime=200000x: a duration budget can end in a spurious "context
// deadline exceeded" (Go toolchain race, golang/go#75804).
func FuzzQueryHandler(f *testing.F) {
	b := testutil.NewBroker(f)
	in, out := testutil.TopicName(f, "in"), testutil.TopicName(f, "out")
	b.CreateTopic(f, in, 3, nil)
	b.CreateTopic(f, out, 3, nil)
	produceKeysTB(f, b, in, 3, 30, 2)
	ctx, cancel := context.WithCancel(context.Background())
	appID := testutil.TopicName(f, "app")
	app, err := topology.NewApp(countTopology(f, in, out), topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: f.TempDir(),
		CommitInterval: 200 * time.Millisecond, QueryEndpoint: "127.0.0.1:2", Logger: testLogger(f),
	})
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Error(err)
		}
	})
	// A second instance whose endpoint nobody serves: forwarded keys and
	// ranges meet an unreachable owner (502).
	other, err := topology.NewApp(countTopology(f, in, out), topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: f.TempDir(),
		CommitInterval: 200 * time.Millisecond, QueryEndpoint: "127.0.0.1:1", Logger: testLogger(f),
	})
	if err != nil {
		f.Fatal(err)
	}
	otherDone := make(chan error, 1)
	go func() { otherDone <- other.Run(ctx) }()
	f.Cleanup(func() {
		cancel()
		if err := <-otherDone; err != nil {
			f.Error(err)
		}
	})
	h := app.QueryHandler(query.WithBearerToken("t"), query.WithForwardTimeout(time.Second))
	oh := other.QueryHandler()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rec, rec2 := httptest.NewRecorder(), httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
		oh.ServeHTTP(rec2, httptest.NewRequest(http.MethodGet, "/ready", nil))
		if rec.Code == http.StatusOK && rec2.Code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			f.Fatalf("not ready: %s", rec.Body.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	for _, s := range []struct{ path, query, hops, token string }{
		{"/stores", "", "", "t"},
		{"/stores/counts/keys/key-001", "", "", "t"},
		{"/stores/counts/keys/", "", "", "t"},
		{"/stores/counts/keys/a/b/c", "", "7", "t"},
		{"/stores/counts/range", "limit=3&token=a2V5LTAwMQ", "", "t"},
		{"/stores/counts/range", "prefix=key-0&limit=1000000", "", "t"},
		{"/stores/counts/range", "from=b&to=a", "", "t"},
		{"/stores/counts/range", "scope=local&from=key-010", "1", "t"},
		{"/stores/counts/metadata", "key=%ff%fe", "", "t"},
		{"/stores/counts", "", "", ""},
		{"/instances", "", "-1", "t"},
		{"/../stores", "", "", "t"},
	} {
		f.Add(s.path, s.query, s.hops, s.token)
	}
	f.Fuzz(func(t *testing.T, path, query, hops, token string) {
		req := &http.Request{
			Method: http.MethodGet, URL: &url.URL{Path: path, RawQuery: query},
			Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			RemoteAddr: "127.0.0.1:9", Host: "x", Body: http.NoBody,
		}
		req = req.WithContext(context.Background())
		if hops != "" {
			req.Header.Set("X-Brook-Hops", hops)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusBadGateway && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("GET %q ? %q (hops %q): %d %s", path, query, hops, rec.Code, rec.Body.String())
		}
		if rec.Code >= 300 {
			checkJSONError(t, fmt.Sprintf("GET %q ? %q (hops %q)", path, query, hops), rec)
		}
	})
}

// produceKeysTB writes perKey records for each of keys keys, each to the
// partition the default partitioner picks, as interactive queries route.
func produceKeysTB(t testing.TB, b *testutil.Broker, topic string, partitions, keys, perKey int) {
	t.Helper()
	var msgs []*sarama.ProducerMessage
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("key-%03d", k)
			msgs = append(msgs, &sarama.ProducerMessage{
				Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(fmt.Sprint(i)),
				Partition: partitionOf(key, int32(partitions)),
			})
		}
	}
	b.Produce(t, topic, msgs...)
}
