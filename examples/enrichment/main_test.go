package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/serde/avro"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe for the example's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEnrichmentExample runs the example on the embedded broker and
// registry (or on KAFKA_BROKERS): enriched records are printed, a
// customer held by instance B is answered through instance A, a range
// through B holds every customer with transactions, once, in order.
func TestEnrichmentExample(t *testing.T) {
	o := options{customers: 12, transactions: 60, rate: 20, listenA: "127.0.0.1:0", listenB: "127.0.0.1:0", logger: testLogger(t)}
	if testutil.RealKafka() {
		o.brokers = os.Getenv("KAFKA_BROKERS")
		o.prefix = testutil.TopicName(t, "enrichment")
	}
	checkExample(t, o)
}

// TestEnrichmentExampleOverSASLSSL runs the example with its --tls-* and
// --sasl-* flags against a broker that requires TLS with client
// certificates and SCRAM-SHA-512: its own admin, producer and consumer and
// both application instances connect through them.
func TestEnrichmentExampleOverSASLSSL(t *testing.T) {
	s := testutil.NewSecureKafka(t)
	o := options{
		customers: 12, transactions: 60, rate: 20, listenA: "127.0.0.1:0", listenB: "127.0.0.1:0", logger: testLogger(t),
		brokers: strings.Join(s.Brokers, ","), prefix: testutil.TopicName(t, "enrichment-secure"),
		tlsCA: s.CAFile, tlsCert: s.CertFile, tlsKey: s.KeyFile,
		saslMechanism: "SCRAM-SHA-512", saslUser: s.User, saslPassword: s.Password,
	}
	checkExample(t, o)
}

// checkExample runs the example with o and checks what it prints and
// serves.
func checkExample(t *testing.T, o options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	var st started
	startedCh := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, o, &out, func(s started) { st = s; close(startedCh) })
	}()
	select {
	case <-startedCh:
	case err := <-done:
		t.Fatalf("run ended before it started: %v\n%s", err, out.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("not started after 2 minutes:\n%s", out.String())
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	getJSON := func(u string, v any) int {
		t.Helper()
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		return resp.StatusCode
	}

	var ka struct {
		Key   string `json:"key"`
		Host  string `json:"host"`
		Value struct {
			CustomerID string `json:"customer_id"`
			Count      int64  `json:"count"`
			TotalCents int64  `json:"total_cents"`
		} `json:"value"`
	}
	if s := getJSON(fmt.Sprintf("http://%s/stores/spend/keys/%s", st.Endpoints[0], st.RoutedCustomer), &ka); s != http.StatusOK {
		t.Fatalf("routed get: %d", s)
	}
	if ka.Host != st.Endpoints[1] || ka.Value.CustomerID != st.RoutedCustomer || ka.Value.Count == 0 || ka.Value.TotalCents <= 0 {
		t.Fatalf("routed get answered %+v; want %s from %s", ka, st.RoutedCustomer, st.Endpoints[1])
	}

	var ra struct {
		Entries []struct {
			Key string `json:"key"`
		} `json:"entries"`
		Next string `json:"next"`
	}
	if s := getJSON(fmt.Sprintf("http://%s/stores/spend/range?limit=1000", st.Endpoints[1]), &ra); s != http.StatusOK {
		t.Fatalf("range: %d", s)
	}
	if len(ra.Entries) == 0 || len(ra.Entries) > o.customers || ra.Next != "" {
		t.Fatalf("range: %d entries (next %q)", len(ra.Entries), ra.Next)
	}
	for i := 1; i < len(ra.Entries); i++ {
		if ra.Entries[i].Key <= ra.Entries[i-1].Key {
			t.Fatalf("range out of order: %v", ra.Entries)
		}
	}
	var prof struct {
		Value struct {
			ID   string `json:"id"`
			Tier string `json:"tier"`
		} `json:"value"`
	}
	if s := getJSON(fmt.Sprintf("http://%s/stores/profiles/keys/cust-000", st.Endpoints[0]), &prof); s != http.StatusOK || prof.Value.ID != "cust-000" || prof.Value.Tier == "" {
		t.Fatalf("profile: %d %+v", s, prof)
	}

	checkNoDuplicates(t, o, st)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return after cancel")
	}
	text := out.String()
	retries := fmt.Sprintf(", %d of them twice (retries the application drops)", (o.transactions+retryEvery-1)/retryEvery)
	for _, want := range []string{retries, "Enriched transactions", `"customer_name":`, "curl http://" + st.Endpoints[0] + "/stores/spend/keys/" + st.RoutedCustomer, "Stopping."} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if o.registry == "" && !strings.Contains(text, "checks Avro compatibility") {
		t.Errorf("output does not say what the embedded registry checks:\n%s", text)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// checkNoDuplicates reads the enriched topic (read_committed) as it is now
// and checks that no transaction appears twice there: the retried ones
// were sent twice, and DropDuplicates let one copy through.
func checkNoDuplicates(t *testing.T, o options, st started) {
	t.Helper()
	tc, sasl, err := o.security()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := (topology.Config{ApplicationID: "enrichment-test-reader", Brokers: st.Brokers, TLS: tc, SASL: sasl}).SaramaConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	reg, err := avro.NewRegistry(st.Registry)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	s, err := newSerdes(reg)
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumer(st.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]int{}
	retried := 0
	for p := int32(0); p < partitions; p++ {
		msgs, err := readPartition(consumer, st.Enriched, p, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			v, err := s.enriched.Deserialize(st.Enriched, m.Value)
			if err != nil {
				t.Fatalf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)
			}
			seen[v.ID]++
			if seen[v.ID] > 1 {
				t.Errorf("transaction %s enriched %d times", v.ID, seen[v.ID])
			}
			var n int
			if _, err := fmt.Sscanf(v.ID, "txn-%d", &n); err == nil && n%retryEvery == 0 {
				retried++
			}
		}
	}
	if len(seen) < o.transactions || retried == 0 {
		t.Fatalf("enriched topic holds %d transactions, %d of them retried ones; want at least the %d of the start batch", len(seen), retried, o.transactions)
	}
}
