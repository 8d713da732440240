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
// registry, or on KAFKA_BROKERS and SCHEMA_REGISTRY_URL when they are set:
// every enriched record holds its customer's profile and its merchant's
// data (or says the merchant is unknown), exactly as computed here from
// the input topics; enriched records are printed, a customer held by
// instance B is answered through instance A, a range through B holds
// every customer with transactions, once, in order.
func TestEnrichmentExample(t *testing.T) {
	o := options{customers: 12, transactions: 60, rate: 20, listenA: "127.0.0.1:0", listenB: "127.0.0.1:0", logger: testLogger(t)}
	if testutil.RealKafka() {
		o.brokers = os.Getenv("KAFKA_BROKERS")
	}
	o.registry = os.Getenv("SCHEMA_REGISTRY_URL")
	if o.brokers != "" || o.registry != "" {
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

	checkEnriched(t, o, st)

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
	for _, want := range []string{
		retries, "Enriched transactions", `"customer_name":`, `"merchant_lookup":"FOUND","merchant_name":"`,
		`"merchant_id":"m-999","merchant_lookup":"UNKNOWN_MERCHANT","merchant_name":null,"merchant_category":null,"merchant_country":null`,
		`at m-999 UNKNOWN MERCHANT ("NIGHT MARKET STALL" is not in the merchants table`,
		"curl http://" + st.Endpoints[0] + "/stores/spend/keys/" + st.RoutedCustomer, "/stores/merchants/keys/m-001", "Stopping.",
	} {
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

// checkEnriched reads the example's topics and checks the whole enriched
// output against a join computed here: it waits (read_committed) until
// every transaction of the start batch is enriched, then checks that each
// enriched record is its transaction with the customer's profile (null
// fields for an unknown customer) and the merchant's name, category and
// country (null fields and UNKNOWN_MERCHANT for an unknown merchant), key
// and timestamp kept; that no transaction is enriched twice (the retried
// ones were sent twice); and that the start batch has every sample
// merchant and the unknown one.
func checkEnriched(t *testing.T, o options, st started) {
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
	client, err := sarama.NewClient(st.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	readAll := func(topic string) []*sarama.ConsumerMessage {
		t.Helper()
		ps, err := client.Partitions(topic)
		if err != nil {
			t.Fatalf("partitions of %s: %v", topic, err)
		}
		var all []*sarama.ConsumerMessage
		for _, p := range ps {
			msgs, err := readPartition(consumer, topic, p, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, msgs...)
		}
		return all
	}
	if ps, err := client.Partitions(st.Topics.merchants); err != nil || len(ps) != merchantPartitions || merchantPartitions == partitions {
		t.Fatalf("merchants topic has %d partitions (%v), want %d, unlike the transactions' %d", len(ps), err, merchantPartitions, partitions)
	}

	// Wait until the start batch is enriched; read the enriched topic
	// before the transactions, so that every enriched record's
	// transaction is among those read.
	var enriched []*sarama.ConsumerMessage
	deadline := time.Now().Add(time.Minute)
	for {
		enriched = readAll(st.Topics.enriched)
		have := map[string]bool{}
		for _, m := range enriched {
			v, err := s.enriched.Deserialize(m.Topic, m.Value)
			if err != nil {
				t.Fatalf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)
			}
			have[v.ID] = true
		}
		missing := 0
		for i := 0; i < o.transactions; i++ {
			if !have[fmt.Sprintf("txn-%06d", i)] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d transactions of the start batch are not enriched after a minute", missing, o.transactions)
		}
		time.Sleep(200 * time.Millisecond)
	}

	merchants := map[string]Merchant{}
	for _, m := range readAll(st.Topics.merchants) {
		v, err := s.merchant.Deserialize(m.Topic, m.Value)
		if err != nil {
			t.Fatalf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)
		}
		merchants[string(m.Key)] = v
	}
	if len(merchants) != len(sampleMerchants) {
		t.Fatalf("merchants topic holds %d merchants, want %d", len(merchants), len(sampleMerchants))
	}
	customers := map[string]Customer{}
	for _, m := range readAll(st.Topics.customers) {
		v, err := s.customer.Deserialize(m.Topic, m.Value)
		if err != nil {
			t.Fatalf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)
		}
		customers[string(m.Key)] = v
	}
	txns := map[string]*sarama.ConsumerMessage{}
	for _, m := range readAll(st.Topics.transactions) {
		v, err := s.txn.Deserialize(m.Topic, m.Value)
		if err != nil {
			t.Fatalf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)
		}
		txns[v.ID] = m
	}

	seen := map[string]int{}
	lookups := map[string]int{}
	retried, wrong := 0, 0
	for _, m := range enriched {
		got, err := s.enriched.Deserialize(m.Topic, m.Value)
		if err != nil {
			t.Fatalf("%s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)
		}
		if seen[got.ID]++; seen[got.ID] > 1 {
			t.Errorf("transaction %s enriched %d times", got.ID, seen[got.ID])
			continue
		}
		var n int
		if _, err := fmt.Sscanf(got.ID, "txn-%d", &n); err == nil && n%retryEvery == 0 {
			retried++
		}
		src, ok := txns[got.ID]
		if !ok {
			t.Errorf("%s/%d@%d: enriched transaction %s is not in %s", m.Topic, m.Partition, m.Offset, got.ID, st.Topics.transactions)
			continue
		}
		in, err := s.txn.Deserialize(src.Topic, src.Value)
		if err != nil {
			t.Fatal(err)
		}
		// The expected join, computed from the inputs.
		want := EnrichedTxn{ID: in.ID, CustomerID: in.CustomerID, AmountCents: in.AmountCents, Currency: in.Currency,
			Merchant: in.Merchant, At: in.At, MerchantID: in.MerchantID, MerchantLookup: MerchantUnknown}
		if c, ok := customers[in.CustomerID]; ok {
			want.CustomerName, want.Tier, want.Country = &c.Name, &c.Tier, &c.Country
		}
		if mc, ok := merchants[in.MerchantID]; ok {
			want.MerchantLookup = MerchantFound
			want.MerchantName, want.MerchantCategory, want.MerchantCountry = &mc.Name, &mc.Category, &mc.Country
		}
		lookups[want.MerchantID+" "+want.MerchantLookup]++
		gj, wj := dumpOne(t, s, got), dumpOne(t, s, want)
		if gj != wj || string(m.Key) != in.CustomerID || !m.Timestamp.Equal(src.Timestamp) {
			if wrong++; wrong > 5 {
				continue // the first five say enough; the count comes below
			}
			t.Errorf("%s/%d@%d: key %s at %s\n   %s\nwant key %s at %s\n   %s", m.Topic, m.Partition, m.Offset,
				m.Key, m.Timestamp, gj, in.CustomerID, src.Timestamp, wj)
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d enriched records differ from the join of their inputs", wrong, len(seen))
	}
	if retried == 0 {
		t.Errorf("no retried transaction among the %d enriched", len(seen))
	}
	for _, mc := range sampleMerchants {
		if lookups[mc.ID+" "+MerchantFound] == 0 {
			t.Errorf("no enriched transaction at merchant %s: %v", mc.ID, lookups)
		}
	}
	if lookups[unknownMerchant.ID+" "+MerchantUnknown] == 0 {
		t.Errorf("no enriched transaction at the unknown merchant: %v", lookups)
	}
	t.Logf("%d enriched transactions checked; merchant lookups: %v", len(seen), lookups)
}
