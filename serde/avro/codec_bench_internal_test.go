package avro

import (
	"fmt"
	"math/big"
	"reflect"
	"testing"
	"time"
)

// The payment record of bench/avro (keep the two in step): the internal
// paths that the bench module cannot reach through the public API.

const benchPaymentSchema = `{"type":"record","name":"Payment","namespace":"brook.bench","fields":[
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

const benchSmallSchema = `{"type":"record","name":"Small","namespace":"brook.bench","fields":[
  {"name":"key","type":"string"},
  {"name":"count","type":"long"},
  {"name":"flag","type":"boolean"}]}`

type benchLeg struct {
	Account string   `avro:"account"`
	Amount  *big.Rat `avro:"amount"`
}

type benchPayment struct {
	ID        string            `avro:"id"`
	Debtor    string            `avro:"debtor"`
	Creditor  string            `avro:"creditor"`
	Amount    *big.Rat          `avro:"amount"`
	Currency  string            `avro:"currency"`
	BookedAt  time.Time         `avro:"bookedAt"`
	Sequence  int64             `avro:"sequence"`
	Status    string            `avro:"status"`
	Reference *string           `avro:"reference"`
	Legs      []benchLeg        `avro:"legs"`
	Tags      map[string]string `avro:"tags"`
}

type benchSmall struct {
	Key   string `avro:"key"`
	Count int64  `avro:"count"`
	Flag  bool   `avro:"flag"`
}

func benchPayments() []benchPayment {
	statuses := []string{"PENDING", "SETTLED", "REJECTED"}
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]benchPayment, 64)
	for i := range out {
		amt := big.NewRat(int64(i*100_003+1_999), 100)
		fee := big.NewRat(int64(i%7*25+5), 100)
		var ref *string
		if i%2 == 0 {
			r := fmt.Sprintf("INV-2025-%06d", i)
			ref = &r
		}
		out[i] = benchPayment{
			ID:        fmt.Sprintf("9b2f6c1e-%04x-4a6b-8c3d-%012x", i, i*7919),
			Debtor:    fmt.Sprintf("NO93 8601 1117 %04d", i),
			Creditor:  fmt.Sprintf("DE89 3704 0044 0532 %04d 00", i%17),
			Amount:    amt,
			Currency:  "EUR",
			BookedAt:  base.Add(time.Duration(i) * time.Millisecond * 1001),
			Sequence:  int64(i) * 1_000_003,
			Status:    statuses[i%3],
			Reference: ref,
			Legs:      []benchLeg{{"clearing", new(big.Rat).Sub(amt, fee)}, {"fees", fee}},
			Tags:      map[string]string{"channel": "sepa", "branch": fmt.Sprint(i % 9)},
		}
	}
	return out
}

func benchSmalls() []benchSmall {
	out := make([]benchSmall, 64)
	for i := range out {
		out[i] = benchSmall{Key: fmt.Sprintf("customer-%05d", i), Count: int64(i * 31), Flag: i%2 == 0}
	}
	return out
}

// benchBinderGoavro measures a struct through the binder into goavro's
// native form and goavro (encode), and goavro plus the binder back
// (decode), with the same checks the generic path makes.
func benchBinderGoavro[T any](b *testing.B, schema string, recs []T) {
	c, err := NewAvroCodec[T](schema)
	if err != nil {
		b.Fatal(err)
	}
	enc := func(buf []byte, v T) ([]byte, error) {
		n, err := c.bind.enc(reflect.ValueOf(&v).Elem())
		if err != nil {
			return nil, err
		}
		if err := checkLogical(c.schema, n, shortName(c.schema), 0); err != nil {
			return nil, err
		}
		return c.codec.BinaryFromNative(buf, n)
	}
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		if payloads[i], err = enc(nil, r); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for i := 0; b.Loop(); i++ {
			if _, err := enc(buf[:0], recs[i%len(recs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			data := payloads[i%len(payloads)]
			// goavro alone, without the validation pass brook made before
			// handing it a payload: a lower bound for this path.
			n, _, err := c.codec.NativeFromBinary(data)
			if err != nil {
				b.Fatal(err)
			}
			if err := checkLogical(c.schema, n, shortName(c.schema), 0); err != nil {
				b.Fatal(err)
			}
			if _, err := c.fromNative(n); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBinderGoavro is the struct path through goavro (see
// bench/avro for the other paths on the same records).
func BenchmarkBinderGoavro(b *testing.B) {
	b.Run("payment", func(b *testing.B) { benchBinderGoavro(b, benchPaymentSchema, benchPayments()) })
	b.Run("small", func(b *testing.B) { benchBinderGoavro(b, benchSmallSchema, benchSmalls()) })
}

// benchOwnNative measures brook's own native writer and validating reader
// on generic values (what the generic path would be without goavro).
func benchOwnNative[T any](b *testing.B, schema string, recs []T) {
	c, err := NewAvroCodec[T](schema)
	if err != nil {
		b.Fatal(err)
	}
	ns := make([]any, len(recs))
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		if ns[i], err = c.native(r); err != nil {
			b.Fatal(err)
		}
		if payloads[i], err = appendNative(c.schema, nil, ns[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for i := 0; b.Loop(); i++ {
			n := ns[i%len(ns)]
			if err := checkLogical(c.schema, n, shortName(c.schema), 0); err != nil {
				b.Fatal(err)
			}
			if _, err := appendNative(c.schema, buf[:0], n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			ck := avroChecker{buf: payloads[i%len(payloads)], zeroBudget: maxZeroWidthItems}
			n, err := ck.readNative(c.schema)
			if err != nil {
				b.Fatal(err)
			}
			if err := checkLogical(c.schema, n, shortName(c.schema), 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOwnNative is brook's own writer and reader on generic values.
func BenchmarkOwnNative(b *testing.B) {
	b.Run("payment", func(b *testing.B) { benchOwnNative(b, benchPaymentSchema, benchPayments()) })
	b.Run("small", func(b *testing.B) { benchOwnNative(b, benchSmallSchema, benchSmalls()) })
}
