package avro_test

import (
	"fmt"
	"github.com/brookstream/brook/serde/avro"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// A 12-field payment transaction, the record the benchmarks use.
const benchTxnSchema = `{"type":"record","name":"Transaction","namespace":"brook.bench","fields":[
  {"name":"id","type":{"type":"string","logicalType":"uuid"}},
  {"name":"account","type":"string"},
  {"name":"merchant","type":"string"},
  {"name":"amountCents","type":"long"},
  {"name":"currency","type":"string"},
  {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"country","type":"string"},
  {"name":"mcc","type":"int"},
  {"name":"cardPresent","type":"boolean"},
  {"name":"status","type":{"type":"enum","name":"TxnStatus","symbols":["PENDING","SETTLED","DECLINED"]}},
  {"name":"channel","type":["null","string"],"default":null},
  {"name":"riskScore","type":"double"}]}`

type BenchTxn struct {
	ID          string    `avro:"id"`
	Account     string    `avro:"account"`
	Merchant    string    `avro:"merchant"`
	AmountCents int64     `avro:"amountCents"`
	Currency    string    `avro:"currency"`
	At          time.Time `avro:"at"`
	Country     string    `avro:"country"`
	MCC         int32     `avro:"mcc"`
	CardPresent bool      `avro:"cardPresent"`
	Status      string    `avro:"status"`
	Channel     *string   `avro:"channel"`
	RiskScore   float64   `avro:"riskScore"`
}

func benchRecords() []BenchTxn {
	statuses := []string{"PENDING", "SETTLED", "DECLINED"}
	out := make([]BenchTxn, 64)
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range out {
		var ch *string
		if i%2 == 0 {
			ch = ptr("ecommerce")
		}
		out[i] = BenchTxn{
			ID:          fmt.Sprintf("9b2f6c1e-%04x-4a6b-8c3d-%012x", i, i*7919),
			Account:     fmt.Sprintf("ACC-%08d", i*31),
			Merchant:    fmt.Sprintf("Merchant number %d", i%17),
			AmountCents: int64(i*1337 + 99),
			Currency:    "EUR",
			At:          base.Add(time.Duration(i) * time.Second),
			Country:     "NO",
			MCC:         int32(5411 + i%5),
			CardPresent: i%3 == 0,
			Status:      statuses[i%3],
			Channel:     ch,
			RiskScore:   float64(i%100) / 100,
		}
	}
	return out
}

// nativeTxn is the goavro native form of t, what a bare goavro user builds.
func nativeTxn(t BenchTxn) map[string]any {
	var ch any
	if t.Channel != nil {
		ch = goavro.Union("string", *t.Channel)
	}
	return map[string]any{
		"id": t.ID, "account": t.Account, "merchant": t.Merchant, "amountCents": t.AmountCents,
		"currency": t.Currency, "at": t.At, "country": t.Country, "mcc": t.MCC,
		"cardPresent": t.CardPresent, "status": t.Status, "channel": ch, "riskScore": t.RiskScore,
	}
}

// BenchmarkAvroSerde measures the Confluent wire-format serde (struct
// binding, header, validation pass, warm registry caches) on the records
// that BenchmarkGoavroBare feeds to a bare goavro codec as native maps.
// The ratio bare ns/op ÷ serde ns/op is the serde's relative throughput.
func BenchmarkAvroSerde(b *testing.B) {
	fake := newFakeRegistry(b)
	reg := newTestRegistry(b, fake.URL())
	s, err := avro.NewAvro[BenchTxn](reg, benchTxnSchema)
	if err != nil {
		b.Fatal(err)
	}
	recs := benchRecords()
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		if payloads[i], err = s.Serialize("txns", r); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.Deserialize("txns", payloads[0]); err != nil {
		b.Fatal(err)
	}
	b.Run("serialize", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Serialize("txns", recs[i%len(recs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("deserialize", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Deserialize("txns", payloads[i%len(payloads)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	if n := fake.requests.Load(); n > 2 {
		b.Fatalf("benchmark made %d registry calls", n)
	}
}

// BenchmarkAvroSerdeGeneric is the serde on generic values (goavro native
// maps), the path that goes through goavro itself after the validation pass.
func BenchmarkAvroSerdeGeneric(b *testing.B) {
	fake := newFakeRegistry(b)
	reg := newTestRegistry(b, fake.URL())
	s, err := avro.NewAvro[map[string]any](reg, benchTxnSchema)
	if err != nil {
		b.Fatal(err)
	}
	recs := benchRecords()
	natives := make([]map[string]any, len(recs))
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		natives[i] = nativeTxn(r)
		if payloads[i], err = s.Serialize("txns", natives[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serialize", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Serialize("txns", natives[i%len(natives)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("deserialize", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := s.Deserialize("txns", payloads[i%len(payloads)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGoavroBare is the baseline: goavro alone on the same records.
func BenchmarkGoavroBare(b *testing.B) {
	codec, err := goavro.NewCodec(benchTxnSchema)
	if err != nil {
		b.Fatal(err)
	}
	recs := benchRecords()
	natives := make([]map[string]any, len(recs))
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		natives[i] = nativeTxn(r)
		if payloads[i], err = codec.BinaryFromNative(nil, natives[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serialize", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := codec.BinaryFromNative(nil, natives[i%len(natives)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("deserialize", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, _, err := codec.NativeFromBinary(payloads[i%len(payloads)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
