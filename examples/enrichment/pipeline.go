package main

import (
	"fmt"
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/serde/avro"
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

// Merchant is a merchant's reference data, the value of the merchants
// topic (compacted); the key is the merchant id.
type Merchant struct {
	ID       string `avro:"id"`
	Name     string `avro:"name"`
	Category string `avro:"category"`
	Country  string `avro:"country"`
}

const merchantSchema = `{
  "type": "record", "name": "Merchant", "namespace": "example.payments",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "name", "type": "string"},
    {"name": "category", "type": "string"},
    {"name": "country", "type": "string"}
  ]
}`

// Txn is a card transaction, the value of the transactions topic; the key
// is the customer id. Merchant is the merchant's name as the acquirer sent
// it; MerchantID is the key of the merchants table.
type Txn struct {
	ID          string    `avro:"id"`
	CustomerID  string    `avro:"customer_id"`
	AmountCents int64     `avro:"amount_cents"`
	Currency    string    `avro:"currency"`
	Merchant    string    `avro:"merchant"`
	At          time.Time `avro:"at"`
	MerchantID  string    `avro:"merchant_id"`
}

// txnSchema is version 2 of the transaction schema: version 1 (before the
// merchants table) had no merchant_id. The new field has a default, so
// the schema stays compatible both ways: this version reads version 1
// records (merchant_id "", which no merchant has, so they are enriched as
// an unknown merchant) and version 1 readers read these records (they
// skip merchant_id). TestSchemasEvolveCompatibly checks it.
const txnSchema = `{
  "type": "record", "name": "Txn", "namespace": "example.payments",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "customer_id", "type": "string"},
    {"name": "amount_cents", "type": "long"},
    {"name": "currency", "type": "string"},
    {"name": "merchant", "type": "string"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "merchant_id", "type": "string", "default": ""}
  ]
}`

// MerchantLookup values: how the merchant join went for an enriched
// transaction.
const (
	// MerchantNotLookedUp is the default, for enriched records written
	// before the merchant join existed (version 1 of the schema).
	MerchantNotLookedUp = "NOT_LOOKED_UP"
	// MerchantFound: the merchant fields come from the merchants table.
	MerchantFound = "FOUND"
	// MerchantUnknown: the merchants table has no merchant with the
	// transaction's merchant id; the merchant fields are null.
	MerchantUnknown = "UNKNOWN_MERCHANT"
)

// EnrichedTxn is a transaction with its customer's profile and its
// merchant's reference data. The profile fields are null when the
// customer is unknown; the merchant fields are null when the merchant is
// unknown, and MerchantLookup says so (MerchantUnknown).
type EnrichedTxn struct {
	ID               string    `avro:"id"`
	CustomerID       string    `avro:"customer_id"`
	AmountCents      int64     `avro:"amount_cents"`
	Currency         string    `avro:"currency"`
	Merchant         string    `avro:"merchant"`
	At               time.Time `avro:"at"`
	CustomerName     *string   `avro:"customer_name"`
	Tier             *string   `avro:"tier"`
	Country          *string   `avro:"country"`
	MerchantID       string    `avro:"merchant_id"`
	MerchantLookup   string    `avro:"merchant_lookup"`
	MerchantName     *string   `avro:"merchant_name"`
	MerchantCategory *string   `avro:"merchant_category"`
	MerchantCountry  *string   `avro:"merchant_country"`
}

// enrichedSchema is version 2 of the enriched schema: version 1 ended at
// country. Every field added since has a default, so the schema stays
// compatible both ways (TestSchemasEvolveCompatibly).
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
    {"name": "country", "type": ["null", "string"], "default": null},
    {"name": "merchant_id", "type": "string", "default": ""},
    {"name": "merchant_lookup", "type": {"type": "enum", "name": "MerchantLookup",
      "symbols": ["NOT_LOOKED_UP", "FOUND", "UNKNOWN_MERCHANT"], "default": "NOT_LOOKED_UP"}, "default": "NOT_LOOKED_UP"},
    {"name": "merchant_name", "type": ["null", "string"], "default": null},
    {"name": "merchant_category", "type": ["null", "string"], "default": null},
    {"name": "merchant_country", "type": ["null", "string"], "default": null}
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
	merchant *avro.Avro[Merchant]
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
	if s.merchant, err = avro.NewAvro[Merchant](reg, merchantSchema, avro.AutoRegister()); err != nil {
		return nil, fmt.Errorf("merchant serde: %w", err)
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
	profilesStore  = "profiles"
	merchantsStore = "merchants"
	spendStore     = "spend"
)

// dedupTTL is how long a transaction id is remembered: a transaction
// the card network retries within it is enriched and counted once.
const dedupTTL = 24 * time.Hour

// topics are the example's topic names.
type topics struct {
	customers, merchants, transactions, enriched string
}

// buildTopology declares, in the Streams DSL: the customers topic as a
// table and the merchants topic as a global table; the transactions as a
// stream without retried duplicates, joined with the customer's profile
// (stream–table join, by the transaction's key) and then with the
// merchant (global-table join, by the transaction's merchant id); the
// enriched stream to the output topic; and each customer's spend,
// aggregated from the enriched stream into a queryable store.
func buildTopology(s *serdes, t topics) (*topology.Topology, error) {
	b := topology.New()
	// Co-partitioned with the transactions (both keyed by customer id,
	// same partition count): each task holds its partitions' customers.
	profiles := topology.TableOf(b, profilesStore, t.customers, serde.String(), s.customer)
	// Held whole by every instance: the merchants topic has its own
	// partition count and the transactions are not keyed by merchant,
	// so no co-partitioning and no repartition topic.
	merchants := topology.GlobalTable(b, merchantsStore, t.merchants, serde.String(), s.merchant)

	txns := topology.Stream(b, "transactions", t.transactions, serde.String(), s.txn).
		DropDuplicates("dedup", func(_ string, t Txn) string { return t.ID }, dedupTTL)
	// Both joins are left joins: a payment is never dropped because its
	// reference data is missing or late. An inner join would silently
	// lose a transaction whose customer profile or merchant has not
	// arrived (or never will): its amount would be missing from the
	// enriched topic and from the customer's spend, and nothing would
	// say so. The left joins emit it with the missing side null, and for
	// the merchant also with MerchantLookup = UNKNOWN_MERCHANT, so
	// downstream can hold, review or re-enrich it in plain sight.
	withCustomer := topology.LeftJoin(txns, profiles, "join-customer",
		func(_ string, t Txn, c Customer, found bool) (EnrichedTxn, error) {
			e := EnrichedTxn{ID: t.ID, CustomerID: t.CustomerID, AmountCents: t.AmountCents, Currency: t.Currency,
				Merchant: t.Merchant, At: t.At, MerchantID: t.MerchantID, MerchantLookup: MerchantNotLookedUp}
			if found {
				e.CustomerName, e.Tier, e.Country = &c.Name, &c.Tier, &c.Country
			}
			return e, nil
		})
	enriched := topology.LeftJoinGlobal(withCustomer, merchants, "join-merchant",
		func(_ string, e EnrichedTxn) (string, error) { return e.MerchantID, nil },
		func(_ string, e EnrichedTxn, m Merchant, found bool) (EnrichedTxn, error) {
			if !found {
				e.MerchantLookup = MerchantUnknown
				return e, nil
			}
			e.MerchantLookup = MerchantFound
			e.MerchantName, e.MerchantCategory, e.MerchantCountry = &m.Name, &m.Category, &m.Country
			return e, nil
		})
	enriched.To("enriched", t.enriched, serde.String(), s.enriched)

	// The joins keep the transactions' key (the customer id), so the
	// grouping needs no repartition topic.
	topology.Aggregate(enriched.GroupByKey(), spendStore,
		func() Spend { return Spend{} },
		func(customer string, e EnrichedTxn, s Spend) (Spend, error) {
			s.CustomerID, s.CustomerName = customer, e.CustomerName
			s.Count++
			s.TotalCents += e.AmountCents
			s.LastTxn = e.ID
			return s, nil
		}, s.spend)
	return b.Build()
}
