package store

import (
	"math/rand/v2"
	"testing"
)

// Benchmarks of the overlay's write path (issue #19). Each operation is
// one record's worth of store work as the runtime does it: Mark, then the
// reads and writes, with a Commit every overlayBenchCommitEvery operations
// (the commit's cost is part of the figure).
//
//	go test -run XXX -bench Overlay -count 6 ./store
//
// Besides ns/op (wall time) they report cpu-ns/op, the process's CPU time
// per operation (GC included), which other load on the machine disturbs
// less than wall time.

// cpuMeter measures the process's CPU time from its creation.
type cpuMeter struct {
	start int64
	ok    bool
}

func startCPU() cpuMeter {
	t, ok := processCPU()
	return cpuMeter{t, ok}
}

// report adds cpu-ns/op over n operations.
func (m cpuMeter) report(b *testing.B, n int) {
	if t, ok := processCPU(); ok && m.ok && n > 0 {
		b.ReportMetric(float64(t-m.start)/float64(n), "cpu-ns/op")
	}
}

const (
	overlayBenchKeys        = 100_000
	overlayBenchCommitEvery = 10_000
)

// overlayBenchBases runs fn over an overlay on each kind of base: the two
// engines, and "none", a base that holds nothing (Get misses, batches are
// dropped), which leaves only the overlay's own cost in the figure.
func overlayBenchBases(b *testing.B, fn func(b *testing.B, base Engine)) {
	benchEngines(b, fn)
	b.Run("none", func(b *testing.B) { fn(b, nopEngine{}) })
}

// nopEngine holds nothing: writes are dropped, reads find nothing.
type nopEngine struct{}

func (nopEngine) Get([]byte) ([]byte, bool, error) { return nil, false, nil }
func (nopEngine) Put(_, _ []byte) error            { return nil }
func (nopEngine) Delete([]byte) error              { return nil }
func (nopEngine) Iterate(_, _ []byte, _ bool) (Iterator[[]byte, []byte], error) {
	return nopIter{}, nil
}
func (nopEngine) NewBatch() Batch                  { return &nopBatch{} }
func (nopEngine) ApproximateCount() (int64, error) { return 0, nil }
func (nopEngine) Flush() error                     { return nil }
func (nopEngine) Close() error                     { return nil }

type nopBatch struct{ n int }

func (b *nopBatch) Put(_, _ []byte) { b.n++ }
func (b *nopBatch) Delete([]byte)   { b.n++ }
func (b *nopBatch) Len() int        { return b.n }
func (b *nopBatch) Reset()          { b.n = 0 }
func (b *nopBatch) Write() error    { return nil }

type nopIter struct{}

func (nopIter) Next() bool    { return false }
func (nopIter) Key() []byte   { return nil }
func (nopIter) Value() []byte { return nil }
func (nopIter) Err() error    { return nil }
func (nopIter) Close() error  { return nil }

func overlayBenchKeySet() [][]byte {
	keys := make([][]byte, overlayBenchKeys)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	return keys
}

// BenchmarkOverlayGetPut is a keyed count's store work per record: Get and
// Put of a random key of a 100,000-key space that the base already holds.
func BenchmarkOverlayGetPut(b *testing.B) {
	keys := overlayBenchKeySet()
	overlayBenchBases(b, func(b *testing.B, base Engine) {
		preload(b, base, overlayBenchKeys)
		o := NewOverlay(base)
		rng := rand.New(rand.NewPCG(6, 6))
		v := benchValue(rng)
		n := 0
		cpu := startCPU()
		for b.Loop() {
			k := keys[rng.IntN(len(keys))]
			o.Mark()
			if _, _, err := o.Get(k); err != nil {
				b.Fatal(err)
			}
			if err := o.Put(k, v); err != nil {
				b.Fatal(err)
			}
			if n++; n%overlayBenchCommitEvery == 0 {
				if err := o.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		}
		cpu.report(b, n)
		perSecond(b, n, "records/s")
	})
}

// BenchmarkOverlayPutIterate is a window join's store work per record: a
// Put, then a scan of the 16 keys from a random one (an iterator over the
// pending writes and the base), as FetchRange does.
func BenchmarkOverlayPutIterate(b *testing.B) {
	const span = 16
	keys := overlayBenchKeySet()
	overlayBenchBases(b, func(b *testing.B, base Engine) {
		preload(b, base, overlayBenchKeys)
		o := NewOverlay(base)
		rng := rand.New(rand.NewPCG(7, 7))
		v := benchValue(rng)
		n := 0
		cpu := startCPU()
		for b.Loop() {
			i := rng.IntN(len(keys) - span)
			o.Mark()
			if err := o.Put(keys[i+rng.IntN(span)], v); err != nil {
				b.Fatal(err)
			}
			it, err := o.Iterate(keys[i], keys[i+span], false)
			if err != nil {
				b.Fatal(err)
			}
			for it.Next() {
			}
			if err := it.Close(); err != nil {
				b.Fatal(err)
			}
			if n++; n%overlayBenchCommitEvery == 0 {
				if err := o.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		}
		cpu.report(b, n)
		perSecond(b, n, "records/s")
	})
}

// BenchmarkOverlayScan reads ranges of 1,000 keys while 50,000 writes are
// pending and nothing is written: the ordered view, built by a first scan
// before the timer starts, is reused.
func BenchmarkOverlayScan(b *testing.B) {
	const span = 1000
	keys := overlayBenchKeySet()
	base := NewMemoryEngine()
	preload(b, base, overlayBenchKeys)
	o := NewOverlay(base)
	defer o.Close()
	rng := rand.New(rand.NewPCG(8, 8))
	v := benchValue(rng)
	for i := 0; i < overlayBenchKeys; i += 2 {
		if err := o.Put(keys[i], v); err != nil {
			b.Fatal(err)
		}
	}
	first, err := o.Iterate(nil, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	if err := first.Close(); err != nil {
		b.Fatal(err)
	}
	n, ops := 0, 0
	cpu := startCPU()
	for b.Loop() {
		ops++
		i := rng.IntN(len(keys) - span)
		it, err := o.Iterate(keys[i], keys[i+span], false)
		if err != nil {
			b.Fatal(err)
		}
		for it.Next() {
			n++
		}
		if err := it.Close(); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, ops)
	perSecond(b, n, "keys/s")
}

// BenchmarkOverlayWritesThenScan is a commit interval of a store that is
// scanned once in a while (a punctuation, a query): 10,000 puts of random
// keys, one scan of 100 keys, and a Discard, per operation. It is where
// the ordered view is built (the first scan sorts the pending writes).
func BenchmarkOverlayWritesThenScan(b *testing.B) {
	const writes, span = 10_000, 100
	keys := overlayBenchKeySet()
	o := NewOverlay(nopEngine{})
	defer o.Close()
	rng := rand.New(rand.NewPCG(9, 9))
	v := benchValue(rng)
	ops := 0
	cpu := startCPU()
	for b.Loop() {
		ops++
		for j := 0; j < writes; j++ {
			if err := o.Put(keys[rng.IntN(len(keys))], v); err != nil {
				b.Fatal(err)
			}
		}
		i := rng.IntN(len(keys) - span)
		it, err := o.Iterate(keys[i], keys[i+span], false)
		if err != nil {
			b.Fatal(err)
		}
		for it.Next() {
		}
		if err := it.Close(); err != nil {
			b.Fatal(err)
		}
		o.Discard()
	}
	cpu.report(b, ops)
}
