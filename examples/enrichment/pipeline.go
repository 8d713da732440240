package main

import (
	"fmt"
	"github.com/brookstream/brook/serde/avro"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/topology"
)

// Customer is a customer profile, the value of the customers topic.
type Customer struct {
	ID      string `avro:"id"`
	Name    string `avro:"name"`
	Tier    string `avro:"tier"`
	Country string `avro:"country"`
}

const customerSchema = `{
  "type": "record", "name": "Customer", "namespace": "example.payments",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "name", "type": "string"},
    {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["STANDARD", "GOLD", "PLATINUM"], "default": "STANDARD"}},
    {"name": "country", "type": "string", "default": ""}
  ]
}`

// Txn is a card transaction, the value of the transactions topic; the key
// is the customer id.
type Txn struct {
	ID          string    `avro:"id"`
	CustomerID  string    `avro:"customer_id"`
	AmountCents int64     `avro:"amount_cents"`
	Currency    string    `avro:"currency"`
	Merchant    string    `avro:"merchant"`
	At          time.Time `avro:"at"`
}

const txnSchema = `{
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

// EnrichedTxn is a transaction with its customer's profile; the profile
// fields are null when the customer is unknown.
type EnrichedTxn struct {
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

const enrichedSchema = `{
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

// Spend is a customer's running spend, the value of the spend store.
type Spend struct {
	CustomerID   string  `avro:"customer_id"`
	CustomerName *string `avro:"customer_name"`
	Count        int64   `avro:"count"`
	TotalCents   int64   `avro:"total_cents"`
	LastTxn      string  `avro:"last_txn"`
}

const spendSchema = `{
  "type": "record", "name": "Spend", "namespace": "example.payments",
  "fields": [
    {"name": "customer_id", "type": "string"},
    {"name": "customer_name", "type": ["null", "string"], "default": null},
    {"name": "count", "type": "long"},
    {"name": "total_cents", "type": "long"},
    {"name": "last_txn", "type": "string"}
  ]
}`

// serdes are the example's Avro serdes, sharing one registry client.
type serdes struct {
	customer *avro.Avro[Customer]
	txn      *avro.Avro[Txn]
	enriched *avro.Avro[EnrichedTxn]
	spend    *avro.Avro[Spend]
}

func newSerdes(reg *avro.Registry) (*serdes, error) {
	var s serdes
	var err error
	if s.customer, err = avro.NewAvro[Customer](reg, customerSchema, avro.AutoRegister()); err != nil {
		return nil, fmt.Errorf("customer serde: %w", err)
	}
	if s.txn, err = avro.NewAvro[Txn](reg, txnSchema, avro.AutoRegister()); err != nil {
		return nil, fmt.Errorf("transaction serde: %w", err)
	}
	if s.enriched, err = avro.NewAvro[EnrichedTxn](reg, enrichedSchema, avro.AutoRegister()); err != nil {
		return nil, fmt.Errorf("enriched serde: %w", err)
	}
	if s.spend, err = avro.NewAvro[Spend](reg, spendSchema, avro.AutoRegister()); err != nil {
		return nil, fmt.Errorf("spend serde: %w", err)
	}
	return &s, nil
}

// Store names.
const (
	profilesStore = "profiles"
	spendStore    = "spend"
)

// dedupTTL is how long a transaction id is remembered: a transaction
// the card network retries within it is enriched and counted once.
const dedupTTL = 24 * time.Hour

// buildTopology declares: the customers topic as a table; the transactions
// as a DSL stream without retried duplicates, turned into enriched records;
// their join with the table and the per-customer spend store; and the
// enriched stream to the output topic.
func buildTopology(s *serdes, customers, transactions, enriched string) (*topology.Topology, error) {
	b := topology.New()
	profiles := topology.Table(b, profilesStore, customers, serde.String(), s.customer)
	spend := topology.KeyValueStore(b, spendStore, serde.String(), s.spend)
	txns := topology.Stream(b, "transactions", transactions, serde.String(), s.txn).
		DropDuplicates("dedup", func(_ string, t Txn) string { return t.ID }, dedupTTL)
	unjoined := topology.MapValues(txns, "to-enriched", func(_ string, t Txn) (EnrichedTxn, error) {
		return EnrichedTxn{ID: t.ID, CustomerID: t.CustomerID, AmountCents: t.AmountCents, Currency: t.Currency, Merchant: t.Merchant, At: t.At}, nil
	})
	// Stream-table joins are not in the DSL yet (issue #16): the lookup of
	// the customer's profile, and the spend it updates, stay a Processor
	// API node, fed by the DSL stream through Node() and read back with
	// FromNode.
	joined := topology.Process(b, "enrich", unjoined.Node(), func() processor.Processor[string, EnrichedTxn, string, EnrichedTxn] {
		return &enricher{profilesRef: profiles, spendRef: spend}
	}, topology.WithStores(profiles.Name(), spend.Name()))
	topology.FromNode(joined).To("enriched", enriched, serde.String(), s.enriched)
	return b.Build()
}

// enricher adds the customer's profile to a transaction (the fields stay
// null when the customer is unknown) and adds the transaction to the
// customer's spend.
type enricher struct {
	profilesRef topology.KeyValueStoreRef[string, Customer]
	spendRef    topology.KeyValueStoreRef[string, Spend]
	profiles    store.KeyValueStore[string, Customer]
	spend       store.KeyValueStore[string, Spend]
}

func (e *enricher) Init(ctx processor.Context[string, EnrichedTxn]) (err error) {
	if e.profiles, err = e.profilesRef.From(ctx); err != nil {
		return err
	}
	e.spend, err = e.spendRef.From(ctx)
	return err
}

func (e *enricher) Process(ctx processor.Context[string, EnrichedTxn], r processor.Record[string, EnrichedTxn]) error {
	out := r.Value
	p, found, err := e.profiles.Get(r.Key)
	if err != nil {
		return err
	}
	if found {
		out.CustomerName, out.Tier, out.Country = &p.Name, &p.Tier, &p.Country
	}
	s, _, err := e.spend.Get(r.Key)
	if err != nil {
		return err
	}
	s.CustomerID, s.CustomerName = r.Key, out.CustomerName
	s.Count++
	s.TotalCents += out.AmountCents
	s.LastTxn = out.ID
	if err := e.spend.Put(r.Key, s); err != nil {
		return err
	}
	return ctx.Forward(processor.Record[string, EnrichedTxn]{Key: r.Key, Value: out, Timestamp: r.Timestamp, Headers: r.Headers})
}

func (e *enricher) Close() error { return nil }
