package topology_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// payment is "merchant:amount": the key selector picks the merchant.
func merchantOf(_ string, v string) (string, error) {
	m, _, ok := strings.Cut(v, ":")
	if !ok {
		return "", errors.New("no merchant in " + v)
	}
	return m, nil
}

// globalJoinTopology enriches payments (keyed by card) with a global
// table of merchants (keyed by merchant id): inner join to "enriched",
// left join to "enriched-left".
func globalJoinTopology(opts ...topology.Option) *topology.Builder {
	b := topology.New(opts...)
	merchants := topology.GlobalTable(b, "merchants", "merchants", serde.String(), serde.String())
	payments := topology.Stream(b, "payments", "payments", serde.String(), serde.String())
	topology.JoinGlobal(payments, merchants, "enrich", merchantOf, func(card, payment, merchant string) (string, error) {
		return payment + "@" + merchant, nil
	}).To("to-enriched", "enriched", serde.String(), serde.String())
	topology.LeftJoinGlobal(payments, merchants, "enrich-left", merchantOf, func(card, payment, merchant string, found bool) (string, error) {
		if !found {
			return payment + "@?", nil
		}
		return payment + "@" + merchant, nil
	}).To("to-enriched-left", "enriched-left", serde.String(), serde.String())
	return b
}

// Inner and left joins look the merchant up as the payment is processed:
// an update or a deletion (tombstone) of the global table's topic shows in
// the very next join, records keep key, timestamp and headers, and the
// inner join drops payments whose merchant is unknown.
func TestGlobalTableJoinInnerLeft(t *testing.T) {
	d := dslDriver(t, globalJoinTopology())
	merchants := testutil.NewInputTopic(d, "merchants", serde.String(), serde.String())
	payments := testutil.NewInputTopic(d, "payments", serde.String(), serde.String())
	pipe := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pipe(payments.Pipe("card-1", "m1:10", t0)) // before the merchant exists
	pipe(merchants.Pipe("m1", "Coffee", t0))
	pipe(payments.Pipe("card-1", "m1:20", t0.Add(1*time.Millisecond), hdr("h", "1")))
	pipe(merchants.Pipe("m1", "Coffee Ltd", t0))
	pipe(payments.Pipe("card-2", "m1:30", t0.Add(2*time.Millisecond)))
	// A tombstone deletes the merchant.
	pipe(d.PipeRaw("merchants", []byte("m1"), nil, t0, nil))
	pipe(payments.Pipe("card-2", "m1:40", t0.Add(3*time.Millisecond)))

	checkRecords(t, "enriched", read(t, d, "enriched", serde.String(), serde.String()), []processor.Record[string, string]{
		rec("card-1", "m1:20@Coffee", t0.Add(1*time.Millisecond), hdr("h", "1")),
		rec("card-2", "m1:30@Coffee Ltd", t0.Add(2*time.Millisecond)),
	})
	checkRecords(t, "enriched-left", read(t, d, "enriched-left", serde.String(), serde.String()), []processor.Record[string, string]{
		rec("card-1", "m1:10@?", t0),
		rec("card-1", "m1:20@Coffee", t0.Add(1*time.Millisecond), hdr("h", "1")),
		rec("card-2", "m1:30@Coffee Ltd", t0.Add(2*time.Millisecond)),
		rec("card-2", "m1:40@?", t0.Add(3*time.Millisecond)),
	})
}

// The global store is readable in tests, updates at once when its topic
// is piped, refuses writes from tests and processors alike, and survives
// a Restart (restored from its topic).
func TestGlobalTableStoreInTestDriver(t *testing.T) {
	b := globalJoinTopology()
	var writeErr error
	payments := topology.Stream(b, "audit", "audit", serde.String(), serde.String())
	topology.ProcessFunc(b, "writer", payments.Node(), func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		// Not connected with WithStores: a global store is readable
		// from every processor.
		s, err := processor.KeyValueStore[string, string](ctx, "merchants")
		if err != nil {
			return err
		}
		if _, _, err := s.Get(r.Key); err != nil {
			return err
		}
		writeErr = s.Put(r.Key, r.Value)
		return nil
	})
	d := dslDriver(t, b)
	merchants := testutil.NewInputTopic(d, "merchants", serde.String(), serde.String())
	if err := merchants.Pipe("m1", "Coffee", t0); err != nil {
		t.Fatal(err)
	}
	if err := merchants.Pipe("m2", "Books", t0); err != nil {
		t.Fatal(err)
	}
	s, err := testutil.KeyValueStore[string, string](d, "merchants")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get("m2"); err != nil || !ok || v != "Books" {
		t.Fatalf("Get(m2) = %q, %v, %v; want Books", v, ok, err)
	}
	if err := s.Put("m3", "x"); !errors.Is(err, topology.ErrGlobalStoreReadOnly) {
		t.Fatalf("Put on a global store from a test: %v, want ErrGlobalStoreReadOnly", err)
	}
	if err := testutil.NewInputTopic(d, "audit", serde.String(), serde.String()).Pipe("m1", "hijack", t0); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(writeErr, topology.ErrGlobalStoreReadOnly) || !strings.Contains(writeErr.Error(), `"merchants"`) {
		t.Fatalf("Put from a processor: %v, want ErrGlobalStoreReadOnly naming the store", writeErr)
	}
	if v, _, _ := s.Get("m1"); v != "Coffee" {
		t.Fatalf("m1 = %q after a refused write, want Coffee", v)
	}

	d2, err := d.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d2.Close() })
	s2, err := testutil.KeyValueStore[string, string](d2, "merchants")
	if err != nil {
		t.Fatal(err)
	}
	it, err := s2.All()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var got []string
	for it.Next() {
		got = append(got, it.Key()+"="+it.Value())
	}
	if strings.Join(got, ",") != "m1=Coffee,m2=Books" {
		t.Fatalf("after Restart the global store holds %v, want m1=Coffee,m2=Books", got)
	}
	var _ store.KeyValueStore[string, string] = s2
}

// An error from the key selector is a processing error for the handler,
// naming the join node and the stream record; a handler that continues
// drops the record and the next one joins.
func TestGlobalJoinKeySelectorErrorGoesToHandler(t *testing.T) {
	var seen []processor.ErrorContext
	b := globalJoinTopology(topology.WithProcessingHandler(func(ec processor.ErrorContext) processor.HandlerResponse {
		seen = append(seen, ec)
		return processor.Continue
	}))
	d := dslDriver(t, b)
	if err := testutil.NewInputTopic(d, "merchants", serde.String(), serde.String()).Pipe("m1", "Coffee", t0); err != nil {
		t.Fatal(err)
	}
	payments := testutil.NewInputTopic(d, "payments", serde.String(), serde.String())
	if err := payments.Pipe("card-1", "no-merchant", t0); err != nil {
		t.Fatal(err)
	}
	if err := payments.Pipe("card-1", "m1:5", t0); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0].Node != "enrich" || seen[1].Node != "enrich-left" ||
		seen[0].Topic != "payments" || seen[0].Offset != 0 || !strings.Contains(seen[0].Err.Error(), "key selector: no merchant in no-merchant") {
		t.Fatalf("handler saw %+v, want the key selector's error at enrich and enrich-left for payments offset 0", seen)
	}
	checkRecords(t, "enriched", read(t, d, "enriched", serde.String(), serde.String()), []processor.Record[string, string]{
		rec("card-1", "m1:5@Coffee", t0),
	})

	// Without a handler the error stops processing, naming node and record.
	d2 := dslDriver(t, globalJoinTopology())
	err := testutil.NewInputTopic(d2, "payments", serde.String(), serde.String()).Pipe("card-1", "no-merchant", t0)
	var pe *processor.ProcessingError
	if !errors.As(err, &pe) || pe.Node != "enrich" || pe.Topic != "payments" {
		t.Fatalf("error = %v, want a ProcessingError at enrich for payments", err)
	}
}

// A record of the global topic that cannot be deserialized goes to the
// deserialization handler with its topic, partition and offset; a handler
// that continues leaves the store as it was.
func TestGlobalTableBadRecordGoesToDeserializationHandler(t *testing.T) {
	build := func(opts ...topology.Option) *topology.Builder {
		b := topology.New(opts...)
		merchants := topology.GlobalTable(b, "rates", "rates", serde.String(), serde.Int64())
		payments := topology.Stream(b, "payments", "payments", serde.String(), serde.String())
		topology.JoinGlobal(payments, merchants, "price", func(k, v string) (string, error) { return v, nil },
			func(k, v string, rate int64) (int64, error) { return rate, nil }).To("to-priced", "priced", serde.String(), serde.Int64())
		return b
	}
	var seen []processor.ErrorContext
	d := dslDriver(t, build(topology.WithDeserializationHandler(func(ec processor.ErrorContext) processor.HandlerResponse {
		seen = append(seen, ec)
		return processor.Continue
	})))
	rates := testutil.NewInputTopic(d, "rates", serde.String(), serde.Int64())
	if err := rates.Pipe("EUR", 7, t0); err != nil {
		t.Fatal(err)
	}
	if err := d.PipeRaw("rates", []byte("EUR"), []byte("bad"), t0, nil); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].Topic != "rates" || seen[0].Offset != 1 || seen[0].Node != "rates" || string(seen[0].Value) != "bad" {
		t.Fatalf("handler saw %+v, want rates offset 1", seen)
	}
	if err := testutil.NewInputTopic(d, "payments", serde.String(), serde.String()).Pipe("p", "EUR", t0); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, "priced", read(t, d, "priced", serde.String(), serde.Int64()), []processor.Record[string, int64]{rec("p", int64(7), t0)})

	d2 := dslDriver(t, build())
	err := d2.PipeRaw("rates", []byte("EUR"), []byte("bad"), t0, nil)
	var de *processor.DeserializationError
	if !errors.As(err, &de) || de.Topic != "rates" || de.Offset != 0 || de.Part != "value" {
		t.Fatalf("error = %v, want a DeserializationError for the value of rates offset 0", err)
	}
}

// Build: a global table is connected to no processor without complaint,
// its store joins no sub-topology (two streams joining it stay apart), a
// source may not read its topic, and Describe shows it.
func TestGlobalTableBuild(t *testing.T) {
	b := topology.New()
	gt := topology.GlobalTable(b, "merchants", "merchants", serde.String(), serde.String())
	a := topology.Stream(b, "a", "a", serde.String(), serde.String())
	c := topology.Stream(b, "c", "c", serde.String(), serde.String())
	sel := func(k, v string) (string, error) { return v, nil }
	j := func(k, v, m string) (string, error) { return m, nil }
	topology.JoinGlobal(a, gt, "join-a", sel, j).To("out-a", "out-a", serde.String(), serde.String())
	topology.JoinGlobal(c, gt, "join-c", sel, j).To("out-c", "out-c", serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	subs := topo.SubTopologies()
	if len(subs) != 2 || len(subs[0].Stores) != 0 || len(subs[1].Stores) != 0 {
		t.Fatalf("sub-topologies %+v: want two, without the global store", subs)
	}
	if groups := topo.CoPartitionGroups(); len(groups) != 0 {
		t.Fatalf("co-partition groups %v, want none", groups)
	}
	if desc := topo.Describe(); !strings.Contains(desc, "merchants: key-value[string, string], global table of topic merchants (all partitions on every instance), persistent, used by [join-a, join-c]") {
		t.Fatalf("Describe does not show the global table:\n%s", desc)
	}

	b2 := topology.New()
	topology.GlobalTable(b2, "merchants", "merchants", serde.String(), serde.String())
	topology.Stream(b2, "m", "merchants", serde.String(), serde.String()).To("o", "o", serde.String(), serde.String())
	_, err = b2.Build()
	var ve *topology.ValidationError
	if !errors.As(err, &ve) || ve.Code != topology.DuplicateTopic || ve.Topic != "merchants" {
		t.Fatalf("Build = %v, want a DuplicateTopic for merchants", err)
	}

	b3 := topology.New()
	topology.GlobalTable(b3, "merchants", "merchants", serde.String(), serde.String(), topology.WithoutLogging())
	topology.Stream(b3, "m", "x", serde.String(), serde.String()).To("o", "o", serde.String(), serde.String())
	if _, err := b3.Build(); !errors.As(err, &ve) || ve.Code != topology.InvalidStore {
		t.Fatalf("Build = %v, want InvalidStore for WithoutLogging", err)
	}
}

// TestGlobalJoinNullValuesAndJoinKeys: as Kafka Streams'
// KStreamGlobalKTableJoinProcessor, a stream record with a nil value is
// dropped by the inner and the left join alike, with a warning that
// counts it (neither the key selector nor the joiner sees it); a nil join
// key from the key selector is dropped by the inner join with a warning,
// and joined with found=false, without a lookup, by the left join.
func TestGlobalJoinNullValuesAndJoinKeys(t *testing.T) {
	type payment struct {
		Merchant *string
		Amount   int64
	}
	var logs bytes.Buffer
	var selected []string
	b := topology.New()
	merchants := topology.GlobalTable(b, "merchants", "merchants", serde.JSON[*string](), serde.String())
	payments := topology.Stream(b, "payments", "payments", serde.String(), serde.JSON[*payment]())
	selector := func(card string, p *payment) (*string, error) {
		selected = append(selected, card)
		if p == nil {
			return &card, nil // never reached: the record is dropped first
		}
		return p.Merchant, nil
	}
	topology.JoinGlobal(payments, merchants, "enrich", selector, func(card string, p *payment, m string) (string, error) {
		if p == nil {
			return "nil payment", nil
		}
		return fmt.Sprintf("%d@%s", p.Amount, m), nil
	}).To("to-enriched", "enriched", serde.String(), serde.String())
	topology.LeftJoinGlobal(payments, merchants, "enrich-left", selector, func(card string, p *payment, m string, found bool) (string, error) {
		if p == nil {
			return "nil payment", nil
		}
		return fmt.Sprintf("%d@%s/%v", p.Amount, m, found), nil
	}).To("to-enriched-left", "enriched-left", serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo, testutil.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m1 := "m1"
	if err := testutil.NewInputTopic(d, "merchants", serde.JSON[*string](), serde.String()).Pipe(&m1, "Coffee", t0); err != nil {
		t.Fatal(err)
	}
	in := testutil.NewInputTopic(d, "payments", serde.String(), serde.JSON[*payment]())
	if err := in.Pipe("card-1", &payment{Merchant: &m1, Amount: 10}, t0); err != nil {
		t.Fatal(err)
	}
	if err := d.PipeRaw("payments", []byte("card-2"), nil, t0.Add(time.Millisecond), nil); err != nil { // a nil value
		t.Fatal(err)
	}
	if err := in.Pipe("card-3", &payment{Amount: 30}, t0.Add(2*time.Millisecond)); err != nil { // no merchant: a nil join key
		t.Fatal(err)
	}
	checkRecords(t, "enriched", read(t, d, "enriched", serde.String(), serde.String()), []processor.Record[string, string]{
		rec("card-1", "10@Coffee", t0),
	})
	checkRecords(t, "enriched-left", read(t, d, "enriched-left", serde.String(), serde.String()), []processor.Record[string, string]{
		rec("card-1", "10@Coffee/true", t0),
		rec("card-3", "30@/false", t0.Add(2*time.Millisecond)),
	})
	if strings.Join(selected, ",") != "card-1,card-1,card-3,card-3" {
		t.Errorf("the key selector saw %v, want card-1 and card-3 twice each (never the nil value)", selected)
	}
	l := logs.String()
	for _, want := range []string{
		`msg="brook: join dropped a record" task=0_0 node=enrich reason="null value" dropped_total=1 topic=payments partition=0 offset=1`,
		`msg="brook: join dropped a record" task=0_0 node=enrich-left reason="null value" dropped_total=1 topic=payments partition=0 offset=1`,
		`msg="brook: join dropped a record" task=0_0 node=enrich reason="null join key" dropped_total=2 topic=payments partition=0 offset=2`,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %s:\n%s", want, l)
		}
	}
	if strings.Contains(l, `node=enrich-left reason="null join key"`) {
		t.Errorf("the left join dropped a record with a nil join key:\n%s", l)
	}
}
