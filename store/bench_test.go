package store

import (
	"context"
	"fmt"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
)

// Benchmarks report records per second; BenchmarkRestore also reports
// restore throughput as a ratio to raw goleveldb batch writes of the same
// records, measured in the same run (target: at least 0.8).
//
//	go test -run XXX -bench . -benchtime 3x ./store

const benchValueSize = 100

func benchEngines(b *testing.B, fn func(b *testing.B, e Engine)) {
	b.Run("memory", func(b *testing.B) {
		e := NewMemoryEngine()
		defer e.Close()
		fn(b, e)
	})
	b.Run("leveldb", func(b *testing.B) {
		e, err := openLevelDB(b.TempDir(), LDBTestOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		fn(b, e)
	})
}

func benchKey(i int) []byte { return fmt.Appendf(nil, "key-%010d", i) }

func benchValue(rng *rand.Rand) []byte {
	v := make([]byte, benchValueSize)
	for i := range v {
		v[i] = byte('a' + rng.IntN(26))
	}
	return v
}

func preload(b *testing.B, e Engine, n int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	batch := e.NewBatch()
	for i := 0; i < n; i++ {
		batch.Put(benchKey(i), benchValue(rng))
		if batch.Len() == 10_000 {
			if err := batch.Write(); err != nil {
				b.Fatal(err)
			}
			batch.Reset()
		}
	}
	if err := batch.Write(); err != nil {
		b.Fatal(err)
	}
}

func perSecond(b *testing.B, n int, unit string) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit)
}

func BenchmarkPut(b *testing.B) {
	benchEngines(b, func(b *testing.B, e Engine) {
		rng := rand.New(rand.NewPCG(2, 2))
		v := benchValue(rng)
		n := 0
		for b.Loop() {
			if err := e.Put(benchKey(rng.IntN(1_000_000)), v); err != nil {
				b.Fatal(err)
			}
			n++
		}
		perSecond(b, n, "puts/s")
	})
}

func BenchmarkGet(b *testing.B) {
	const keys = 100_000
	benchEngines(b, func(b *testing.B, e Engine) {
		preload(b, e, keys)
		rng := rand.New(rand.NewPCG(3, 3))
		n := 0
		for b.Loop() {
			if _, found, err := e.Get(benchKey(rng.IntN(keys))); err != nil || !found {
				b.Fatal(found, err)
			}
			n++
		}
		perSecond(b, n, "gets/s")
	})
}

func BenchmarkRange(b *testing.B) {
	const keys, span = 100_000, 1000
	benchEngines(b, func(b *testing.B, e Engine) {
		preload(b, e, keys)
		rng := rand.New(rand.NewPCG(4, 4))
		n := 0
		for b.Loop() {
			lo := rng.IntN(keys - span)
			it, err := e.Iterate(benchKey(lo), benchKey(lo+span), false)
			if err != nil {
				b.Fatal(err)
			}
			for it.Next() {
				n++
			}
			it.Close()
		}
		perSecond(b, n, "keys/s")
	})
}

// BenchmarkRestore restores a changelog of 200,000 records (100,000 keys
// with updates and tombstones) into LevelDB, and writes the same records
// to a bare goleveldb database in batches of the same size with the same
// options, reporting both throughputs and their ratio.
func BenchmarkRestore(b *testing.B) {
	const records, keys, batchSize = 200_000, 100_000, defaultRestoreBatch
	log := &memLog{batch: 2000}
	rng := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < records; i++ {
		k := string(benchKey(rng.IntN(keys)))
		if i%10 == 9 {
			log.append(k, nil)
		} else {
			log.append(k, benchValue(rng))
		}
	}
	var restoreDur, rawDur time.Duration
	restore := func(dir string) {
		start := time.Now()
		res, err := Restore(context.Background(), RestoreConfig{
			Store: "bench", Opener: levelDBOpener(filepath.Join(dir, "restore"), LDBTestOptions{}),
			Reader: log, BatchSize: batchSize, Logger: quietLogger(nil),
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := res.Engine.Close(); err != nil {
			b.Fatal(err)
		}
		restoreDur += time.Since(start)
	}
	raw := func(dir string) {
		start := time.Now()
		db, err := leveldb.OpenFile(filepath.Join(dir, "raw"), rawOptions())
		if err != nil {
			b.Fatal(err)
		}
		var batch leveldb.Batch
		for _, r := range log.recs {
			if r.Value == nil {
				batch.Delete(r.Key)
			} else {
				batch.Put(r.Key, r.Value)
			}
			if batch.Len() == batchSize {
				if err := db.Write(&batch, nil); err != nil {
					b.Fatal(err)
				}
				batch.Reset()
			}
		}
		if err := db.Write(&batch, nil); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		rawDur += time.Since(start)
	}
	i := 0
	for b.Loop() {
		dir := b.TempDir()
		if i%2 == 0 { // alternate the order so neither side always runs first
			restore(dir)
			raw(dir)
		} else {
			raw(dir)
			restore(dir)
		}
		i++
	}
	restoreRate := float64(records*b.N) / restoreDur.Seconds()
	rawRate := float64(records*b.N) / rawDur.Seconds()
	b.ReportMetric(restoreRate, "restore-recs/s")
	b.ReportMetric(rawRate, "raw-recs/s")
	b.ReportMetric(restoreRate/rawRate, "restore/raw")
}

// rawOptions are the goleveldb options store/leveldb opens with by default
// (its Options zero value), for the raw reference of BenchmarkRestore.
func rawOptions() *opt.Options {
	return &opt.Options{
		BlockCacheCapacity: 32 << 20,
		WriteBuffer:        16 << 20,
		Compression:        opt.SnappyCompression,
		Filter:             filter.NewBloomFilter(10),
		Strict: opt.StrictManifest | opt.StrictJournalChecksum | opt.StrictJournal |
			opt.StrictBlockChecksum | opt.StrictCompaction | opt.StrictReader,
	}
}
