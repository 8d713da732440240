package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/serde/avro"
	"github.com/brookstream/brook/testutil"
)

// Version 1 of the transaction and enriched schemas, as the example wrote
// them before the merchants table: the current ones must stay compatible
// with them in both directions.
const (
	txnSchemaV1 = `{
  "type": "record", "name": "Txn", "namespace": "example.payments",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "customer_id", "type": "string"},
    {"name": "amount_cents", "type": "long"},
    {"name": "currency", "type": "string"},
    {"name": "merchant", "type": "string"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
  ]
}`
	enrichedSchemaV1 = `{
  "type": "record", "name": "EnrichedTxn", "namespace": "example.payments",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "customer_id", "type": "string"},
    {"name": "amount_cents", "type": "long"},
    {"name": "currency", "type": "string"},
    {"name": "merchant", "type": "string"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "customer_name", "type": ["null", "string"], "default": null},
    {"name": "tier", "type": ["null", "string"], "default": null},
    {"name": "country", "type": ["null", "string"], "default": null}
  ]
}`
)

type txnV1 struct {
	ID          string    `avro:"id"`
	CustomerID  string    `avro:"customer_id"`
	AmountCents int64     `avro:"amount_cents"`
	Currency    string    `avro:"currency"`
	Merchant    string    `avro:"merchant"`
	At          time.Time `avro:"at"`
}

type enrichedV1 struct {
	ID           string    `avro:"id"`
	CustomerID   string    `avro:"customer_id"`
	AmountCents  int64     `avro:"amount_cents"`
	Currency     string    `avro:"currency"`
	Merchant     string    `avro:"merchant"`
	At           time.Time `avro:"at"`
	CustomerName *string   `avro:"customer_name"`
	Tier         *string   `avro:"tier"`
	Country      *string   `avro:"country"`
}

func ptr(s string) *string { return &s }

// TestPipelineJoins runs the topology in the TestDriver and checks every
// enriched record and the spend store: the customer left join (profile
// found or not), the merchant global-table left join (found, unknown,
// renamed, deleted, and a version 1 transaction without a merchant id),
// and the retried transaction dropped.
func TestPipelineJoins(t *testing.T) {
	reg, err := avro.NewRegistry(testutil.StartRegistry(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	s, err := newSerdes(reg)
	if err != nil {
		t.Fatal(err)
	}
	tp := topics{customers: "customers", merchants: "merchants", transactions: "transactions", enriched: "enriched"}
	topo, err := buildTopology(s, tp)
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	customers := testutil.NewInputTopic(d, tp.customers, serde.String(), s.customer)
	merchants := testutil.NewInputTopic(d, tp.merchants, serde.String(), s.merchant)
	txns := testutil.NewInputTopic(d, tp.transactions, serde.String(), s.txn)
	v1serde, err := avro.NewAvro[txnV1](reg, txnSchemaV1, avro.AutoRegister())
	if err != nil {
		t.Fatal(err)
	}
	txnsV1 := testutil.NewInputTopic(d, tp.transactions, serde.String(), v1serde)

	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(merchants.Pipe("m-001", Merchant{ID: "m-001", Name: "Coffee Corner", Category: "Coffee shops", Country: "NL"}, at(0)))
	must(merchants.Pipe("m-002", Merchant{ID: "m-002", Name: "Book Nook", Category: "Bookstores", Country: "GB"}, at(0)))
	must(customers.Pipe("cust-1", Customer{ID: "cust-1", Name: "Ada Lovelace", Tier: "GOLD", Country: "GB"}, at(0)))

	txn := func(i int, customer, merchantID, descriptor string, cents int64) Txn {
		return Txn{ID: "txn-" + string(rune('a'+i)), CustomerID: customer, AmountCents: cents, Currency: "EUR",
			Merchant: descriptor, MerchantID: merchantID, At: at(i)}
	}
	in := []Txn{
		txn(1, "cust-1", "m-001", "COFFEE CORNER", 350),
		txn(2, "cust-1", "m-999", "NIGHT MARKET STALL", 1200),
		txn(3, "cust-404", "m-002", "BOOK NOOK", 2599),
	}
	for _, x := range in {
		must(txns.Pipe(x.CustomerID, x, x.At))
	}
	must(txns.Pipe(in[0].CustomerID, in[0], in[0].At)) // a retry: dropped
	// A transaction written with version 1 of the schema has no merchant
	// id: it reads as "", which no merchant has.
	must(txnsV1.Pipe("cust-1", txnV1{ID: "txn-e", CustomerID: "cust-1", AmountCents: 100, Currency: "EUR", Merchant: "OLD TERMINAL", At: at(4)}, at(4)))
	// The merchants table changes while the stream runs: a global table is
	// read at processing time.
	must(merchants.Pipe("m-001", Merchant{ID: "m-001", Name: "Coffee Corner Centraal", Category: "Coffee shops", Country: "NL"}, at(5)))
	must(d.PipeRaw(tp.merchants, []byte("m-002"), nil, at(5), nil)) // m-002 deleted
	late := []Txn{
		txn(6, "cust-1", "m-001", "COFFEE CORNER", 420),
		txn(7, "cust-1", "m-002", "BOOK NOOK", 1000),
	}
	for _, x := range late {
		must(txns.Pipe(x.CustomerID, x, x.At))
	}

	ada := func(e EnrichedTxn) EnrichedTxn {
		e.CustomerName, e.Tier, e.Country = ptr("Ada Lovelace"), ptr("GOLD"), ptr("GB")
		return e
	}
	enriched := func(x Txn) EnrichedTxn {
		return EnrichedTxn{ID: x.ID, CustomerID: x.CustomerID, AmountCents: x.AmountCents, Currency: x.Currency, Merchant: x.Merchant, At: x.At, MerchantID: x.MerchantID}
	}
	found := func(e EnrichedTxn, name, category, country string) EnrichedTxn {
		e.MerchantLookup, e.MerchantName, e.MerchantCategory, e.MerchantCountry = MerchantFound, ptr(name), ptr(category), ptr(country)
		return e
	}
	unknown := func(e EnrichedTxn) EnrichedTxn { e.MerchantLookup = MerchantUnknown; return e }
	want := []EnrichedTxn{
		found(ada(enriched(in[0])), "Coffee Corner", "Coffee shops", "NL"),
		unknown(ada(enriched(in[1]))),
		found(enriched(in[2]), "Book Nook", "Bookstores", "GB"), // no profile: customer fields null
		unknown(ada(EnrichedTxn{ID: "txn-e", CustomerID: "cust-1", AmountCents: 100, Currency: "EUR", Merchant: "OLD TERMINAL", At: at(4)})),
		found(ada(enriched(late[0])), "Coffee Corner Centraal", "Coffee shops", "NL"),
		unknown(ada(enriched(late[1]))),
	}
	got, err := testutil.NewOutputTopic(d, tp.enriched, serde.String(), s.enriched).ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d enriched records, want %d:\n%s", len(got), len(want), dump(t, s, got...))
	}
	for i, r := range got {
		if r.Key != want[i].CustomerID || !r.Timestamp.Equal(want[i].At) || dumpOne(t, s, r.Value) != dumpOne(t, s, want[i]) {
			t.Errorf("record %d: key %s at %s\n   %s\nwant key %s at %s\n   %s", i, r.Key, r.Timestamp, dumpOne(t, s, r.Value),
				want[i].CustomerID, want[i].At, dumpOne(t, s, want[i]))
		}
	}

	spend, err := testutil.KeyValueStore[string, Spend](d, spendStore)
	if err != nil {
		t.Fatal(err)
	}
	sp, ok, err := spend.Get("cust-1")
	if err != nil || !ok {
		t.Fatalf("spend of cust-1: %v %v", ok, err)
	}
	if sp.Count != 5 || sp.TotalCents != 350+1200+100+420+1000 || sp.LastTxn != "txn-h" || sp.CustomerName == nil || *sp.CustomerName != "Ada Lovelace" {
		t.Errorf("spend of cust-1: %+v", sp)
	}
	if sp, ok, err := spend.Get("cust-404"); err != nil || !ok || sp.Count != 1 || sp.TotalCents != 2599 || sp.CustomerName != nil {
		t.Errorf("spend of cust-404: %+v %v %v", sp, ok, err)
	}
}

func dumpOne(t *testing.T, s *serdes, v EnrichedTxn) string {
	t.Helper()
	j, err := s.enriched.ValueJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(j)
}

func dump(t *testing.T, s *serdes, rs ...processor.Record[string, EnrichedTxn]) string {
	t.Helper()
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("  " + r.Key + " " + dumpOne(t, s, r.Value) + "\n")
	}
	return b.String()
}

// TestSchemasEvolveCompatibly checks that versions 1 and 2 of the
// transaction and enriched schemas read each other's records (FULL
// compatibility): by brook's resolution rules, and on a registry with the
// subjects set to FULL (the embedded one, and SCHEMA_REGISTRY_URL's when
// set), where version 1 is registered first and version 2 must be
// accepted after it. Version 2 reads a version 1 transaction with
// merchant_id "" and a version 1 enriched record with merchant_lookup
// NOT_LOOKED_UP.
func TestSchemasEvolveCompatibly(t *testing.T) {
	for _, p := range []struct{ name, v1, v2 string }{
		{"transaction", txnSchemaV1, txnSchema},
		{"enriched", enrichedSchemaV1, enrichedSchema},
	} {
		if err := avro.CheckAvroResolution(p.v2, p.v1); err != nil {
			t.Errorf("%s: version 2 cannot read version 1: %v", p.name, err)
		}
		if err := avro.CheckAvroResolution(p.v1, p.v2); err != nil {
			t.Errorf("%s: version 1 cannot read version 2: %v", p.name, err)
		}
	}
	registries := map[string]string{"embedded": testutil.StartRegistry(t).URL()}
	if u := os.Getenv("SCHEMA_REGISTRY_URL"); u != "" {
		registries["real"] = strings.TrimRight(u, "/")
	}
	for name, u := range registries {
		t.Run(name, func(t *testing.T) { checkEvolutionOnRegistry(t, u) })
	}
}

func checkEvolutionOnRegistry(t *testing.T, url string) {
	reg, err := avro.NewRegistry(url)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	setFull := func(subject string) {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPut, url+"/config/"+subject,
			bytes.NewReader([]byte(`{"compatibility":"FULL"}`)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT /config/%s: %s", subject, resp.Status)
		}
	}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

	topic := testutil.TopicName(t, "enrichment-txn")
	setFull(topic + "-value")
	oldTxn, err := avro.NewAvro[txnV1](reg, txnSchemaV1, avro.AutoRegister())
	if err != nil {
		t.Fatal(err)
	}
	newTxn, err := avro.NewAvro[Txn](reg, txnSchema, avro.AutoRegister())
	if err != nil {
		t.Fatal(err)
	}
	v1, err := oldTxn.Serialize(topic, txnV1{ID: "txn-1", CustomerID: "cust-1", AmountCents: 100, Currency: "EUR", Merchant: "OLD TERMINAL", At: at})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := newTxn.Serialize(topic, Txn{ID: "txn-2", CustomerID: "cust-1", AmountCents: 200, Currency: "EUR", Merchant: "GROCER", MerchantID: "m-004", At: at})
	if err != nil {
		t.Fatalf("the registry refused version 2 of the transaction schema under FULL: %v", err)
	}
	if got, err := newTxn.Deserialize(topic, v1); err != nil || got.ID != "txn-1" || got.MerchantID != "" {
		t.Errorf("version 2 read a version 1 transaction as %+v, %v", got, err)
	}
	if got, err := oldTxn.Deserialize(topic, v2); err != nil || got.ID != "txn-2" || got.Merchant != "GROCER" {
		t.Errorf("version 1 read a version 2 transaction as %+v, %v", got, err)
	}

	topic = testutil.TopicName(t, "enrichment-enriched")
	setFull(topic + "-value")
	oldEnriched, err := avro.NewAvro[enrichedV1](reg, enrichedSchemaV1, avro.AutoRegister())
	if err != nil {
		t.Fatal(err)
	}
	newEnriched, err := avro.NewAvro[EnrichedTxn](reg, enrichedSchema, avro.AutoRegister())
	if err != nil {
		t.Fatal(err)
	}
	v1, err = oldEnriched.Serialize(topic, enrichedV1{ID: "txn-1", CustomerID: "cust-1", AmountCents: 100, Currency: "EUR", Merchant: "OLD TERMINAL", At: at, CustomerName: ptr("Ada")})
	if err != nil {
		t.Fatal(err)
	}
	v2, err = newEnriched.Serialize(topic, EnrichedTxn{ID: "txn-2", CustomerID: "cust-1", AmountCents: 200, Currency: "EUR", Merchant: "GROCER", At: at,
		MerchantID: "m-004", MerchantLookup: MerchantFound, MerchantName: ptr("Grocer"), MerchantCategory: ptr("Groceries"), MerchantCountry: ptr("FR")})
	if err != nil {
		t.Fatalf("the registry refused version 2 of the enriched schema under FULL: %v", err)
	}
	if got, err := newEnriched.Deserialize(topic, v1); err != nil || got.ID != "txn-1" || got.MerchantLookup != MerchantNotLookedUp || got.MerchantName != nil || got.CustomerName == nil {
		t.Errorf("version 2 read a version 1 enriched record as %+v, %v", got, err)
	}
	if got, err := oldEnriched.Deserialize(topic, v2); err != nil || got.ID != "txn-2" || got.Merchant != "GROCER" {
		t.Errorf("version 1 read a version 2 enriched record as %+v, %v", got, err)
	}
}
