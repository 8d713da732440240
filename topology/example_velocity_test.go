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

// Txn is a card transaction, keyed by card number.
type Txn struct {
	Card        string `json:"card"`
	AmountCents int64  `json:"amount_cents"`
}

// Alert says a card made too many transactions within the window.
type Alert struct {
	Card  string    `json:"card"`
	Count int       `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
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
		Value:     Alert{Card: r.Key, Count: len(times), First: time.UnixMilli(times[0]).UTC(), Last: r.Timestamp.UTC()},
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

// velocityTopology reads transactions keyed by card and writes alerts.
func velocityTopology(maxTxns int) (*topology.Topology, error) {
	b := topology.New()
	txns := topology.Source(b, "transactions", "card-transactions", serde.String(), serde.JSON[Txn]())
	topology.KeyValueStore(b, "card-activity", serde.String(), serde.JSON[[]int64]())
	alerts := topology.Process(b, "velocity-check", txns,
		func() processor.Processor[string, Txn, string, Alert] { return &velocity{maxTxns: maxTxns} },
		topology.WithStores("card-activity"))
	topology.Sink(b, "alerts", "card-alerts", alerts, serde.String(), serde.JSON[Alert]())
	return b.Build()
}

// Card velocity: more than 3 transactions per card within 10 minutes raise
// an alert. State lives in a store; a stream-time punctuator expires it.
func Example_cardVelocity() {
	topo, err := velocityTopology(3)
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
		if err := in.Pipe(card, Txn{Card: card, AmountCents: 1999}, t0.Add(time.Duration(minute)*time.Minute)); err != nil {
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
			a.Value.Card, a.Value.Count, a.Value.First.Format("15:04"), a.Value.Last.Format("15:04"))
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
