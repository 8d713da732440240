// Package avro_test measures brook's Avro codec against goavro on the same
// records: a payment record with every kind of field a fintech schema has
// (strings, long, decimal, timestamp-millis, enum, an optional union, an
// array of records and a map) and a small three-field record.
//
// Paths, each with an encode and a decode benchmark:
//
//   - struct: brook's AvroCodec on a Go struct — the compiled codec that
//     writes and reads Avro binary straight from and into the struct;
//   - generic: brook's AvroCodec on map[string]any (goavro's native form):
//     the decimal pre-check plus goavro when encoding, the validating pass
//     plus goavro plus the decimal check when decoding;
//   - goavro: bare goavro BinaryFromNative / NativeFromBinary on the same
//     native maps (no decimal check, no validation pass): the baseline.
//
// The fourth path, a struct through brook's binder into goavro's native
// form and then goavro (what brook did before it compiled struct codecs,
// and still does when a writer schema must be resolved), is internal to
// package serde/avro and measured there (BenchmarkBinderGoavro), on the
// same records.
//
// Run (no broker, no registry; two cores are enough):
//
//	cd bench && go test -run '^$' -bench . -count 8 -benchtime 1s ./avro/
//
// See docs/BENCHMARKS.md, section "Avro codec", for figures.
package avro_test

import (
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/brookstream/brook/serde/avro"
	"github.com/linkedin/goavro/v2"
)

// PaymentSchema is the realistic record. Keep it in step with
// serde/avro/codec_bench_internal_test.go.
const PaymentSchema = `{"type":"record","name":"Payment","namespace":"brook.bench","fields":[
  {"name":"id","type":{"type":"string","logicalType":"uuid"}},
  {"name":"debtor","type":"string"},
  {"name":"creditor","type":"string"},
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":2}},
  {"name":"currency","type":"string"},
  {"name":"bookedAt","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"sequence","type":"long"},
  {"name":"status","type":{"type":"enum","name":"PaymentStatus","symbols":["PENDING","SETTLED","REJECTED"]}},
  {"name":"reference","type":["null","string"],"default":null},
  {"name":"legs","type":{"type":"array","items":{"type":"record","name":"Leg","fields":[
    {"name":"account","type":"string"},
    {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":2}}]}}},
  {"name":"tags","type":{"type":"map","values":"string"}}]}`

// SmallSchema is the small record.
const SmallSchema = `{"type":"record","name":"Small","namespace":"brook.bench","fields":[
  {"name":"key","type":"string"},
  {"name":"count","type":"long"},
  {"name":"flag","type":"boolean"}]}`

// Leg is one leg of a Payment.
type Leg struct {
	Account string   `avro:"account"`
	Amount  *big.Rat `avro:"amount"`
}

// Payment is the struct form of PaymentSchema.
type Payment struct {
	ID        string            `avro:"id"`
	Debtor    string            `avro:"debtor"`
	Creditor  string            `avro:"creditor"`
	Amount    *big.Rat          `avro:"amount"`
	Currency  string            `avro:"currency"`
	BookedAt  time.Time         `avro:"bookedAt"`
	Sequence  int64             `avro:"sequence"`
	Status    string            `avro:"status"`
	Reference *string           `avro:"reference"`
	Legs      []Leg             `avro:"legs"`
	Tags      map[string]string `avro:"tags"`
}

// Small is the struct form of SmallSchema.
type Small struct {
	Key   string `avro:"key"`
	Count int64  `avro:"count"`
	Flag  bool   `avro:"flag"`
}

const nRecords = 64

func payments() []Payment {
	statuses := []string{"PENDING", "SETTLED", "REJECTED"}
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]Payment, nRecords)
	for i := range out {
		amt := big.NewRat(int64(i*100_003+1_999), 100)
		fee := big.NewRat(int64(i%7*25+5), 100)
		var ref *string
		if i%2 == 0 {
			r := fmt.Sprintf("INV-2025-%06d", i)
			ref = &r
		}
		out[i] = Payment{
			ID:        fmt.Sprintf("9b2f6c1e-%04x-4a6b-8c3d-%012x", i, i*7919),
			Debtor:    fmt.Sprintf("NO93 8601 1117 %04d", i),
			Creditor:  fmt.Sprintf("DE89 3704 0044 0532 %04d 00", i%17),
			Amount:    amt,
			Currency:  "EUR",
			BookedAt:  base.Add(time.Duration(i) * time.Millisecond * 1001),
			Sequence:  int64(i) * 1_000_003,
			Status:    statuses[i%3],
			Reference: ref,
			Legs: []Leg{
				{Account: "clearing", Amount: new(big.Rat).Sub(amt, fee)},
				{Account: "fees", Amount: fee},
			},
			Tags: map[string]string{"channel": "sepa", "branch": fmt.Sprint(i % 9)},
		}
	}
	return out
}

func smalls() []Small {
	out := make([]Small, nRecords)
	for i := range out {
		out[i] = Small{Key: fmt.Sprintf("customer-%05d", i), Count: int64(i * 31), Flag: i%2 == 0}
	}
	return out
}

// paymentNative is p in goavro's native form.
func paymentNative(p Payment) map[string]any {
	var ref any
	if p.Reference != nil {
		ref = goavro.Union("string", *p.Reference)
	}
	legs := make([]any, len(p.Legs))
	for i, l := range p.Legs {
		legs[i] = map[string]any{"account": l.Account, "amount": l.Amount}
	}
	tags := make(map[string]any, len(p.Tags))
	for k, v := range p.Tags {
		tags[k] = v
	}
	return map[string]any{
		"id": p.ID, "debtor": p.Debtor, "creditor": p.Creditor, "amount": p.Amount,
		"currency": p.Currency, "bookedAt": p.BookedAt, "sequence": p.Sequence,
		"status": p.Status, "reference": ref, "legs": legs, "tags": tags,
	}
}

func smallNative(s Small) map[string]any {
	return map[string]any{"key": s.Key, "count": s.Count, "flag": s.Flag}
}

func natives[T any](recs []T, f func(T) map[string]any) []map[string]any {
	out := make([]map[string]any, len(recs))
	for i, r := range recs {
		out[i] = f(r)
	}
	return out
}

// benchCodec measures one brook AvroCodec on recs.
func benchCodec[T any](b *testing.B, schema string, recs []T) {
	c, err := avro.NewAvroCodec[T](schema)
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		if payloads[i], err = c.Marshal(nil, r); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Unmarshal(payloads[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for i := 0; b.Loop(); i++ {
			if _, err := c.Marshal(buf[:0], recs[i%len(recs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := c.Unmarshal(payloads[i%len(payloads)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchGoavro measures bare goavro on the native maps.
func benchGoavro(b *testing.B, schema string, recs []map[string]any) {
	c, err := goavro.NewCodec(schema)
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		if payloads[i], err = c.BinaryFromNative(nil, r); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for i := 0; b.Loop(); i++ {
			if _, err := c.BinaryFromNative(buf[:0], recs[i%len(recs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, _, err := c.NativeFromBinary(payloads[i%len(payloads)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPayment compares the paths on the payment record.
func BenchmarkPayment(b *testing.B) {
	recs := payments()
	b.Run("struct", func(b *testing.B) { benchCodec(b, PaymentSchema, recs) })
	b.Run("generic", func(b *testing.B) { benchCodec(b, PaymentSchema, natives(recs, paymentNative)) })
	b.Run("goavro", func(b *testing.B) { benchGoavro(b, PaymentSchema, natives(recs, paymentNative)) })
}

// BenchmarkSmall compares the paths on the small record.
func BenchmarkSmall(b *testing.B) {
	recs := smalls()
	b.Run("struct", func(b *testing.B) { benchCodec(b, SmallSchema, recs) })
	b.Run("generic", func(b *testing.B) { benchCodec(b, SmallSchema, natives(recs, smallNative)) })
	b.Run("goavro", func(b *testing.B) { benchGoavro(b, SmallSchema, natives(recs, smallNative)) })
}

// TestPathsAgree holds the benchmarked paths to the same bytes, so the
// figures compare equal work.
func TestPathsAgree(t *testing.T) {
	sc, err := avro.NewAvroCodec[Payment](PaymentSchema)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := avro.NewAvroCodec[map[string]any](PaymentSchema)
	if err != nil {
		t.Fatal(err)
	}
	ga, err := goavro.NewCodec(PaymentSchema)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range payments() {
		n := paymentNative(p)
		a, err := sc.Marshal(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		g, err := gc.Marshal(nil, n)
		if err != nil {
			t.Fatal(err)
		}
		// Map entries may come in any order; compare what goavro reads.
		for _, bin := range [][]byte{a, g} {
			back, _, err := ga.NativeFromBinary(bin)
			if err != nil {
				t.Fatalf("record %d: goavro cannot read brook's bytes: %v", i, err)
			}
			if got, want := fmt.Sprint(back), fmt.Sprint(n); got != want {
				t.Fatalf("record %d: goavro reads\n%s\nwant\n%s", i, got, want)
			}
		}
	}
}
