package leveldb_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/store/leveldb"
)

// Package store's tests run the engine conformance suite, corruption and
// restore tests over this engine (store/leveldb_hooks_ext_test.go); these
// cover what the runtime relies on when it picks the engine.

func TestOpenerIsPersistentAndReportsLocalData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	o := leveldb.Opener(dir, leveldb.Options{})
	if !o.Persistent() {
		t.Fatal("leveldb.Opener is not persistent")
	}
	lc, ok := o.(store.LocalDataChecker)
	if !ok {
		t.Fatal("leveldb.Opener does not implement store.LocalDataChecker")
	}
	if has, err := lc.HasLocalData(); err != nil || has {
		t.Fatalf("HasLocalData before Open = %v, %v; want false, nil", has, err)
	}
	e, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if has, err := lc.HasLocalData(); err != nil || !has {
		t.Fatalf("HasLocalData after a write = %v, %v; want true, nil", has, err)
	}
	if err := o.Wipe(); err != nil {
		t.Fatal(err)
	}
	if has, err := lc.HasLocalData(); err != nil || has {
		t.Fatalf("HasLocalData after Wipe = %v, %v; want false, nil", has, err)
	}
}

func TestOptionsValidateNamesTheField(t *testing.T) {
	for field, o := range map[string]leveldb.Options{
		"BlockCacheSize":  {BlockCacheSize: -1},
		"WriteBufferSize": {WriteBufferSize: -1},
		"Compression":     {Compression: 7},
	} {
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), "Options."+field) {
			t.Errorf("Validate(%+v) = %v, want an error naming Options.%s", o, err, field)
		}
		if _, err := leveldb.Open(t.TempDir(), o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
}

// A sized batch holds what an unsized one does, whether its records fit
// the size it was made for or overflow it, and an overlay's commit over
// LevelDB (which sizes its batch) writes every pending put and delete.
func TestSizedBatchAndOverlayCommit(t *testing.T) {
	e, err := leveldb.Opener(filepath.Join(t.TempDir(), "s"), leveldb.Options{}).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	bs, ok := e.(store.BatchSizer)
	if !ok {
		t.Fatal("the LevelDB engine does not implement store.BatchSizer")
	}
	for _, size := range []int{0, 40, 1 << 20} {
		b := bs.NewBatchSize(size)
		for i := range 100 {
			b.Put(fmt.Appendf(nil, "k%d-%03d", size, i), fmt.Appendf(nil, "v%d", i))
		}
		b.Delete(fmt.Appendf(nil, "k%d-%03d", size, 7))
		if b.Len() != 101 {
			t.Fatalf("size %d: Len = %d, want 101", size, b.Len())
		}
		if err := b.Write(); err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			v, ok, err := e.Get(fmt.Appendf(nil, "k%d-%03d", size, i))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("v%d", i); i == 7 && ok || i != 7 && (!ok || string(v) != want) {
				t.Fatalf("size %d: key %d = %q, %v; want %q (deleted: 7)", size, i, v, ok, want)
			}
		}
	}
	o := store.NewOverlay(e)
	const pending = 5000 // enough for the overlay to size its batch
	for i := range pending {
		if err := o.Put(fmt.Appendf(nil, "o%04d", i), bytes.Repeat([]byte{byte(i)}, i%50+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Delete([]byte("k0-001")); err != nil {
		t.Fatal(err)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	for i := range pending {
		v, ok, err := e.Get(fmt.Appendf(nil, "o%04d", i))
		if err != nil || !ok || !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, i%50+1)) {
			t.Fatalf("after the overlay's commit, key %d = %v, %v, %v", i, v, ok, err)
		}
	}
	if _, ok, _ := e.Get([]byte("k0-001")); ok {
		t.Fatal("the overlay's committed delete left its key")
	}
}

// hideSizer is an engine without store.BatchSizer: the overlay's commit
// grows its batch as it goes, as before NewBatchSize.
type hideSizer struct{ store.Engine }

// BenchmarkOverlayCommit commits 100,000 pending 100-byte writes (one
// commit interval of a table arriving) to LevelDB, with the batch sized up
// front and grown as it goes.
func BenchmarkOverlayCommit(b *testing.B) {
	for _, sized := range []bool{true, false} {
		b.Run(fmt.Sprintf("sized=%v", sized), func(b *testing.B) {
			e, err := leveldb.Opener(filepath.Join(b.TempDir(), "s"), leveldb.Options{}).Open()
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			base := e
			if !sized {
				base = hideSizer{e}
			}
			o := store.NewOverlay(base)
			v := bytes.Repeat([]byte{'v'}, 100)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for k := range 100_000 {
					if err := o.Put(fmt.Appendf(nil, "key-%d-%08d", i, k), v); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if err := o.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
