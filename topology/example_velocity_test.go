package topology_test

import (
	"fmt"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// Txn is a card transaction, keyed by card number. A payment retried by
// the acquirer arrives again with the same PaymentID.
type Txn struct {
	PaymentID   string `json:"payment_id"`
	Card        string `json:"card"`
	AmountCents int64  `json:"amount_cents"`
}

// Alert says a card made more than the limit of transactions between From
// and To (a window's bounds, or the first and last transaction's times).
type Alert struct {
	Card  string    `json:"card"`
	Count int64     `json:"count"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
}

// velocityTopology is the README's card-velocity check in the DSL: payments
// retried within a day count once; each card's transactions are counted in
// 10-minute tumbling windows that accept records up to one minute late;
// each window's final count (one per window, once it has closed) above 3
// becomes an alert. The README shows these lines verbatim
// (TestReadmeVelocityExample checks it).
func velocityTopology() (*topology.Topology, error) {
	b := topology.New()
	txns := topology.Stream(b, "transactions", "card-transactions", serde.String(), serde.JSON[Txn]()).
		DropDuplicates("dedup", func(_ string, t Txn) string { return t.PaymentID }, 24*time.Hour) // retried payments count once
	counts := topology.WindowedBy(txns.GroupByKey(), topology.Tumbling(10*time.Minute).Grace(time.Minute)).Count("card-counts")
	finals := counts.Suppress("card-finals", topology.UntilWindowCloses()).ToStream("finals") // one count per card and window, once it closed
	over := finals.Filter("over-limit", func(_ topology.Windowed[string], n topology.Change[int64]) bool { return n.Value > 3 })
	alerts := topology.Map(over, "to-alert", func(w topology.Windowed[string], n topology.Change[int64]) (string, Alert, error) {
		return w.Key, Alert{Card: w.Key, Count: n.Value, From: w.Start, To: w.End}, nil
	})
	alerts.To("alerts", "card-alerts", serde.String(), serde.JSON[Alert]())
	return b.Build()
}

// Card velocity in the DSL: more than 3 transactions on one card in a
// 10-minute window raise an alert once the window has closed; a retried
// payment counts once.
func Example_cardVelocity() {
	topo, err := velocityTopology()
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	in := testutil.NewInputTopic(d, "card-transactions", serde.String(), serde.JSON[Txn]())
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tx := range []struct {
		card, payment string
		at            time.Duration
	}{
		{"A", "p1", 0}, {"B", "p2", time.Minute}, {"A", "p3", 2 * time.Minute},
		{"B", "p4", 3 * time.Minute}, {"B", "p4", 3 * time.Minute}, // B's p4 retried: counted once
		{"A", "p5", 4 * time.Minute}, {"B", "p6", 5 * time.Minute},
		{"A", "p7", 10*time.Minute + 30*time.Second}, // 12:10-12:20; 12:00-12:10 stays open until 12:11 (grace)
		{"A", "p8", 9*time.Minute + 30*time.Second},  // out of order, within grace: A's 4th in 12:00-12:10
		{"C", "p9", 8 * time.Minute}, {"C", "p10", 9 * time.Minute}, {"C", "p11", 11 * time.Minute}, {"C", "p12", 13 * time.Minute},
		{"D", "p13", 21 * time.Minute}, // stream time 12:21: 12:00-12:10 and 12:10-12:20 have closed
	} {
		if err := in.Pipe(tx.card, Txn{PaymentID: tx.payment, Card: tx.card, AmountCents: 1999}, t0.Add(tx.at)); err != nil {
			fmt.Println(err)
			return
		}
	}
	alerts, err := testutil.NewOutputTopic(d, "card-alerts", serde.String(), serde.JSON[Alert]()).ReadRecords()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range alerts {
		fmt.Printf("alert: card %s made %d transactions from %s to %s\n",
			a.Value.Card, a.Value.Count, a.Value.From.Format("15:04"), a.Value.To.Format("15:04"))
	}
	// No alert for B: 4 records, but 3 distinct payments. None for C: 4
	// transactions within 5 minutes, but 2 in each of two windows (tumbling
	// windows count per fixed window; the Processor API version below
	// looks back from each transaction).

	// Output:
	// alert: card A made 4 transactions from 12:00 to 12:10
}

// velocityWindow is how far back the velocity check looks.
const velocityWindow = 10 * time.Minute

// velocity raises an Alert when a card makes more than maxTxns
// transactions within velocityWindow. The "card-activity" store keeps, per
// card, the timestamps (Unix ms) of its transactions in the window; a
// stream-time punctuator drops expired timestamps every minute, so cards
// that went quiet leave the store.
type velocity struct {
	maxTxns  int
	activity store.KeyValueStore[string, []int64]
}

func (v *velocity) Init(ctx processor.Context[string, Alert]) (err error) {
	if v.activity, err = processor.KeyValueStore[string, []int64](ctx, "card-activity"); err != nil {
		return err
	}
	_, err = ctx.Schedule(time.Minute, processor.StreamTime, v.evict)
	return err
}

// inWindow keeps the timestamps later than now minus the window.
func inWindow(times []int64, now time.Time) []int64 {
	cut := now.Add(-velocityWindow).UnixMilli()
	kept := times[:0]
	for _, t := range times {
		if t > cut {
			kept = append(kept, t)
		}
	}
	return kept
}

func (v *velocity) Process(ctx processor.Context[string, Alert], r processor.Record[string, Txn]) error {
	times, _, err := v.activity.Get(r.Key)
	if err != nil {
		return err
	}
	times = append(inWindow(times, r.Timestamp), r.Timestamp.UnixMilli())
	if err := v.activity.Put(r.Key, times); err != nil {
		return err
	}
	if len(times) != v.maxTxns+1 { // alert once, when the limit is first passed
		return nil
	}
	return ctx.Forward(processor.Record[string, Alert]{
		Key:       r.Key,
		Value:     Alert{Card: r.Key, Count: int64(len(times)), From: time.UnixMilli(times[0]).UTC(), To: r.Timestamp.UTC()},
		Timestamp: r.Timestamp,
	})
}

func (v *velocity) evict(now time.Time) error {
	it, err := v.activity.All()
	if err != nil {
		return err
	}
	changed := map[string][]int64{}
	for it.Next() {
		if kept := inWindow(it.Value(), now); len(kept) != len(it.Value()) {
			changed[it.Key()] = kept
		}
	}
	if err := it.Err(); err != nil {
		it.Close()
		return err
	}
	if err := it.Close(); err != nil {
		return err
	}
	for card, kept := range changed {
		if len(kept) == 0 {
			err = v.activity.Delete(card)
		} else {
			err = v.activity.Put(card, kept)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (v *velocity) Close() error { return nil }

// velocityProcessorTopology reads transactions keyed by card and writes
// alerts, with a hand-written processor.
func velocityProcessorTopology(maxTxns int) (*topology.Topology, error) {
	b := topology.New()
	txns := topology.Source(b, "transactions", "card-transactions", serde.String(), serde.JSON[Txn]())
	topology.KeyValueStore(b, "card-activity", serde.String(), serde.JSON[[]int64]())
	alerts := topology.Process(b, "velocity-check", txns,
		func() processor.Processor[string, Txn, string, Alert] { return &velocity{maxTxns: maxTxns} },
		topology.WithStores("card-activity"))
	topology.Sink(b, "alerts", "card-alerts", alerts, serde.String(), serde.JSON[Alert]())
	return b.Build()
}

// Card velocity with the Processor API: more than 3 transactions per card
// within any 10 minutes raise an alert at once, without waiting for a
// window to close. State lives in a store; a stream-time punctuator expires
// it. This is what the DSL version replaces: a store, a processor and a
// punctuator, about 90 lines, for what Count over windows declares.
func Example_cardVelocityProcessorAPI() {
	topo, err := velocityProcessorTopology(3)
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	in := testutil.NewInputTopic(d, "card-transactions", serde.String(), serde.JSON[Txn]())
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	pipe := func(card string, minute int) {
		if err := in.Pipe(card, Txn{PaymentID: fmt.Sprintf("%s-%d", card, minute), Card: card, AmountCents: 1999}, t0.Add(time.Duration(minute)*time.Minute)); err != nil {
			fmt.Println(err)
		}
	}
	// Card A: 4 transactions in 6 minutes. Card B: 4 in 24 minutes.
	for _, tx := range []struct {
		card   string
		minute int
	}{{"A", 0}, {"B", 0}, {"A", 2}, {"A", 4}, {"B", 8}, {"A", 6}, {"A", 7}, {"B", 16}, {"B", 24}} {
		pipe(tx.card, tx.minute)
	}
	out := testutil.NewOutputTopic(d, "card-alerts", serde.String(), serde.JSON[Alert]())
	alerts, err := out.ReadRecords()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range alerts {
		fmt.Printf("alert: card %s made %d transactions from %s to %s\n",
			a.Value.Card, a.Value.Count, a.Value.From.Format("15:04"), a.Value.To.Format("15:04"))
	}

	// Stream time 12:24: the punctuator has expired A's activity and B's
	// oldest transactions.
	activity, err := testutil.KeyValueStore[string, []int64](d, "card-activity")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, card := range []string{"A", "B"} {
		times, found, err := activity.Get(card)
		fmt.Printf("card %s: tracked=%v transactions in window=%d err=%v\n", card, found, len(times), err)
	}
	// Output:
	// alert: card A made 4 transactions from 12:00 to 12:06
	// card A: tracked=false transactions in window=0 err=<nil>
	// card B: tracked=true transactions in window=2 err=<nil>
}
