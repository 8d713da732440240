package main

import (
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
)

// Txn is a card transaction, the value of the transactions topic; the key
// is the card. A payment the acquirer retries arrives again with the same
// PaymentID. The record's timestamp is the transaction's time (event
// time), which the windows go by.
type Txn struct {
	PaymentID   string `json:"payment_id"`
	Card        string `json:"card"`
	AmountCents int64  `json:"amount_cents"`
}

// Alert says a card made more than maxTxns transactions in one window.
type Alert struct {
	Card  string    `json:"card"`
	Count int64     `json:"count"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
}

// The velocity rule: more than maxTxns transactions on a card within one
// window raise an alert.
const (
	maxTxns     = 3
	windowSize  = 10 * time.Minute
	windowGrace = time.Minute
	dedupTTL    = 24 * time.Hour
)

// topics are the example's topic names.
type topics struct {
	transactions string // input, keyed by card
	counts       string // each card's final count per window
	alerts       string // windows over the limit
	late         string // transactions that came after their window closed
}

// buildTopology declares the velocity check with the DSL, as README.md
// shows it, plus two side outputs: the final count of every window, and
// the records too late for their window (LateRecords), so that a late
// transaction is set aside where it can be seen, not lost.
func buildTopology(t topics) (*topology.Topology, error) {
	b := topology.New()
	txns := topology.Stream(b, "transactions", t.transactions, serde.String(), serde.JSON[Txn]()).
		DropDuplicates("dedup", func(_ string, tx Txn) string { return tx.PaymentID }, dedupTTL) // retried payments count once
	windowed := topology.WindowedBy(txns.GroupByKey(), topology.Tumbling(windowSize).Grace(windowGrace))
	windowed.LateRecords("late").To("to-late", t.late, serde.String(), serde.JSON[Txn]())
	finals := windowed.Count("card-counts").Suppress("card-finals", topology.UntilWindowCloses()).ToStream("finals")
	finals.To("to-counts", t.counts, topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	over := finals.Filter("over-limit", func(_ topology.Windowed[string], n topology.Change[int64]) bool { return n.Value > maxTxns })
	alerts := topology.Map(over, "to-alert", func(w topology.Windowed[string], n topology.Change[int64]) (string, Alert, error) {
		return w.Key, Alert{Card: w.Key, Count: n.Value, From: w.Start, To: w.End}, nil
	})
	alerts.To("to-alerts", t.alerts, serde.String(), serde.JSON[Alert]())
	return b.Build()
}
