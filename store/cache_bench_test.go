package store

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/serde/avro"
)

// The record cache's benchmarks: a Get answered by the cache against the
// same Get without one, on LevelDB under an overlay (as the runtime runs
// a persistent store), for values of four shapes:
//
//   - payment: an Avro record with decimals, a timestamp, an optional
//     field, an array of records and a map (deep copied in and out of the
//     cache);
//   - small: an Avro record of strings and numbers (copied by assignment);
//   - bytes: 100 opaque bytes, as B3's table holds (cloned);
//   - int64: a count.
//
// Keys: 100,000 in LevelDB, committed; Gets go to 1,000 hot ones (the
// LevelDB block cache holds them too: the uncached figure is a warm one).
// Get+Put is an aggregation's step on a hot key (read, write back), with a
// commit every 1,000 steps (not timed). Besides ns/op they report
// cpu-ns/op (see overlay_bench_test.go), which the machine's other load
// disturbs less. (The test binary may import serde/avro: store itself
// must not.)
//
//	go test -run XXX -bench Cache -benchtime 2000x ./store

const cachePaymentSchema = `{"type":"record","name":"Payment","namespace":"brook.cachebench","fields":[
  {"name":"id","type":"string"},
  {"name":"debtor","type":"string"},
  {"name":"creditor","type":"string"},
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":2}},
  {"name":"currency","type":"string"},
  {"name":"bookedAt","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"sequence","type":"long"},
  {"name":"reference","type":["null","string"],"default":null},
  {"name":"legs","type":{"type":"array","items":{"type":"record","name":"Leg","fields":[
    {"name":"account","type":"string"},
    {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":2}}]}}},
  {"name":"tags","type":{"type":"map","values":"string"}}]}`

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
	Reference *string           `avro:"reference"`
	Legs      []benchLeg        `avro:"legs"`
	Tags      map[string]string `avro:"tags"`
}

const cacheSmallSchema = `{"type":"record","name":"Small","namespace":"brook.cachebench","fields":[
  {"name":"customer","type":"string"},
  {"name":"segment","type":"string"},
  {"name":"count","type":"long"},
  {"name":"active","type":"boolean"}]}`

type benchSmall struct {
	Customer string `avro:"customer"`
	Segment  string `avro:"segment"`
	Count    int64  `avro:"count"`
	Active   bool   `avro:"active"`
}

// avroSerde is the Avro binary of a codec without the registry's framing.
type avroSerde[T any] struct{ c *avro.AvroCodec[T] }

func (s avroSerde[T]) Serialize(_ string, v T) ([]byte, error)   { return s.c.Marshal(nil, v) }
func (s avroSerde[T]) Deserialize(_ string, b []byte) (T, error) { return s.c.Unmarshal(b) }

func newAvroSerde[T any](b *testing.B, schema string) serde.Serde[T] {
	c, err := avro.NewAvroCodec[T](schema)
	if err != nil {
		b.Fatal(err)
	}
	return avroSerde[T]{c}
}

func benchPaymentValue(i int) benchPayment {
	amt := big.NewRat(int64(i*100_003+1_999), 100)
	fee := big.NewRat(int64(i%7*25+5), 100)
	ref := fmt.Sprintf("INV-2025-%06d", i)
	return benchPayment{
		ID: fmt.Sprintf("9b2f6c1e-%04x-4a6b-8c3d-%012x", i%65536, i*7919), Debtor: fmt.Sprintf("NO93 8601 1117 %04d", i%10000),
		Creditor: "DE89 3704 0044 0532 0130 00", Amount: amt, Currency: "EUR",
		BookedAt: time.UnixMilli(1_740_000_000_000 + int64(i)), Sequence: int64(i), Reference: &ref,
		Legs: []benchLeg{{Account: "clearing", Amount: new(big.Rat).Sub(amt, fee)}, {Account: "fees", Amount: fee}},
		Tags: map[string]string{"channel": "sepa", "branch": fmt.Sprint(i % 9)},
	}
}

const (
	cacheBenchKeys = 100_000
	cacheBenchHot  = 1_000
)

// cacheBenchStore fills a LevelDB of cacheBenchKeys keys through an
// uncached store, commits, and returns a store over the same overlay with
// or without a cache (warmed with the hot keys).
func cacheBenchStore[V any](b *testing.B, values serde.Serde[V], value func(i int) V, cached bool) (KeyValueStore[string, V], *Cache, *Overlay) {
	e, err := openLevelDB(b.TempDir(), LDBTestOptions{})
	if err != nil {
		b.Fatal(err)
	}
	o := NewOverlay(e)
	b.Cleanup(func() { o.Close() })
	fill := NewKeyValueStore("s", o, serde.String(), values)
	for i := range cacheBenchKeys {
		if err := fill.Put(benchCacheKey(i), value(i)); err != nil {
			b.Fatal(err)
		}
		if i%10_000 == 9_999 {
			if err := o.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := o.Commit(); err != nil {
		b.Fatal(err)
	}
	var c *Cache
	s := fill
	if cached {
		c = NewCache(64 << 20)
		s = NewKeyValueStore("s", o, serde.String(), values, WithCache(c))
	}
	for i := range cacheBenchHot { // warm LevelDB's block cache, and the record cache
		if _, _, err := s.Get(benchCacheKey(i * (cacheBenchKeys / cacheBenchHot))); err != nil {
			b.Fatal(err)
		}
	}
	return s, c, o
}

func benchCacheKey(i int) string { return fmt.Sprintf("customer-%08d", i) }

func benchCacheGet[V any](b *testing.B, values serde.Serde[V], value func(i int) V) {
	for _, cached := range []bool{false, true} {
		b.Run(map[bool]string{false: "uncached", true: "hit"}[cached], func(b *testing.B) {
			s, c, _ := cacheBenchStore(b, values, value, cached)
			keys := make([]string, cacheBenchHot)
			for i := range keys {
				keys[i] = benchCacheKey(i * (cacheBenchKeys / cacheBenchHot))
			}
			var misses int64
			if c != nil {
				misses = c.Stats().Misses
			}
			rng := rand.New(rand.NewPCG(1, 2))
			runtime.GC() // the set-up's garbage is not the loop's
			b.ReportAllocs()
			b.ResetTimer()
			cpu, n := startCPU(), 0
			for b.Loop() {
				if _, ok, err := s.Get(keys[rng.IntN(len(keys))]); err != nil || !ok {
					b.Fatal(ok, err)
				}
				n++
			}
			cpu.report(b, n)
			if c != nil {
				if st := c.Stats(); st.Misses != misses {
					b.Fatalf("hits only expected: %+v", st)
				}
			}
		})
	}
}

func benchCacheGetPut[V any](b *testing.B, values serde.Serde[V], value func(i int) V, commitEvery int) {
	for _, cached := range []bool{false, true} {
		b.Run(map[bool]string{false: "uncached", true: "cached"}[cached], func(b *testing.B) {
			s, _, o := cacheBenchStore(b, values, value, cached)
			keys := make([]string, cacheBenchHot)
			for i := range keys {
				keys[i] = benchCacheKey(i * (cacheBenchKeys / cacheBenchHot))
			}
			rng := rand.New(rand.NewPCG(1, 2))
			runtime.GC() // the set-up's garbage is not the loop's
			b.ReportAllocs()
			b.ResetTimer()
			cpu, n, commitCPU := startCPU(), 0, int64(0)
			for b.Loop() {
				k := keys[rng.IntN(len(keys))]
				v, _, err := s.Get(k)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Put(k, v); err != nil {
					b.Fatal(err)
				}
				if n++; n%commitEvery == 0 { // a commit interval's worth, not timed
					b.StopTimer()
					t0, _ := processCPU()
					if err := o.Commit(); err != nil {
						b.Fatal(err)
					}
					t1, _ := processCPU()
					commitCPU += t1 - t0
					b.StartTimer()
				}
			}
			cpu.start += commitCPU
			cpu.report(b, n)
		})
	}
}

func BenchmarkCacheGet(b *testing.B) {
	b.Run("payment", func(b *testing.B) {
		benchCacheGet(b, newAvroSerde[benchPayment](b, cachePaymentSchema), benchPaymentValue)
	})
	b.Run("small", func(b *testing.B) {
		benchCacheGet(b, newAvroSerde[benchSmall](b, cacheSmallSchema), func(i int) benchSmall {
			return benchSmall{Customer: benchCacheKey(i), Segment: "retail", Count: int64(i), Active: i%2 == 0}
		})
	})
	b.Run("bytes", func(b *testing.B) {
		benchCacheGet(b, serde.Bytes(), func(i int) []byte { return []byte(fmt.Sprintf("%0100d", i)) })
	})
	b.Run("int64", func(b *testing.B) {
		benchCacheGet(b, serde.Int64(), func(i int) int64 { return int64(i) })
	})
}

func BenchmarkCacheGetPut(b *testing.B) {
	b.Run("payment", func(b *testing.B) {
		benchCacheGetPut(b, newAvroSerde[benchPayment](b, cachePaymentSchema), benchPaymentValue, 1_000)
	})
	b.Run("int64", func(b *testing.B) {
		benchCacheGetPut(b, serde.Int64(), func(i int) int64 { return int64(i) }, 1_000)
	})
	// B2u's pattern: a commit every 50,000 steps over 1,000 hot keys, so
	// nearly every read finds its key among the overlay's pending writes,
	// which answer it about as cheaply as the cache.
	b.Run("int64-pending", func(b *testing.B) {
		benchCacheGetPut(b, serde.Int64(), func(i int) int64 { return int64(i) }, 50_000)
	})
}
