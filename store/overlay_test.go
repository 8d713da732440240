package store

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"testing"
)

func TestOverlayConformanceOverMemory(t *testing.T) {
	engineConformance(t, func(t *testing.T) Engine { return NewOverlay(NewMemoryEngine()) })
}

func TestOverlayConformanceOverLevelDB(t *testing.T) {
	engineConformance(t, func(t *testing.T) Engine {
		base, err := openLevelDB(filepath.Join(t.TempDir(), "db"), LDBTestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return NewOverlay(base)
	})
}

// overlayModel tracks what the overlay shows (view) and what its base
// holds (committed).
type overlayModel struct {
	view, committed map[string]string
}

func (m *overlayModel) commit()  { m.committed = clone(m.view) }
func (m *overlayModel) discard() { m.view = clone(m.committed) }

func clone(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func sortedKeys(m map[string]string, lo, hi string) []string {
	var out []string
	for k := range m {
		if (lo == "" || k >= lo) && (hi == "" || k < hi) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// checkView compares Get and merged scans of e with the model.
func checkView(t *testing.T, e Engine, want map[string]string, rng *rand.Rand) {
	t.Helper()
	for i := 0; i < 420; i += 7 {
		k := fmt.Sprintf("k%03d", i)
		v, found, err := e.Get([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		wv, wfound := want[k]
		if found != wfound || string(v) != wv {
			t.Fatalf("Get(%s) = %q %v, want %q %v", k, v, found, wv, wfound)
		}
	}
	for r := 0; r < 20; r++ {
		lo, hi := fmt.Sprintf("k%03d", rng.IntN(420)), fmt.Sprintf("k%03d", rng.IntN(420))
		if r == 0 {
			lo, hi = "", ""
		}
		keys := sortedKeys(want, lo, hi)
		var blo, bhi []byte
		if lo != "" {
			blo, bhi = []byte(lo), []byte(hi)
		}
		for _, reverse := range []bool{false, true} {
			it, err := e.Iterate(blo, bhi, reverse)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for it.Next() {
				if want[string(it.Key())] != string(it.Value()) {
					t.Fatalf("scan: %s=%q, want %q", it.Key(), it.Value(), want[string(it.Key())])
				}
				got = append(got, string(it.Key()))
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
			mustCloseIter(t, it)
			exp := append([]string(nil), keys...)
			if reverse {
				for a, b := 0, len(exp)-1; a < b; a, b = a+1, b-1 {
					exp[a], exp[b] = exp[b], exp[a]
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(exp) {
				t.Fatalf("Iterate(%q, %q, reverse=%v) = %v, want %v", lo, hi, reverse, got, exp)
			}
		}
	}
}

// TestOverlayCommitDiscardMatchModel interleaves writes, batches, Commit and
// Discard over a LevelDB base that starts with data, and checks after every
// step that the overlay shows the model's view and the base exactly the
// committed state (nothing uncommitted ever reaches it).
func TestOverlayCommitDiscardMatchModel(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	base, err := openLevelDB(dir, LDBTestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := &overlayModel{view: map[string]string{}}
	for i := 0; i < 400; i += 2 {
		k := fmt.Sprintf("k%03d", i)
		mustPut(t, base, k, "base"+k)
		m.view[k] = "base" + k
	}
	m.commit()
	o := NewOverlay(base)
	rng := rand.New(rand.NewPCG(7, 9))
	for step := 0; step < 60; step++ {
		for i := 0; i < 50; i++ {
			k := fmt.Sprintf("k%03d", rng.IntN(400))
			switch rng.IntN(5) {
			case 0:
				if err := o.Delete([]byte(k)); err != nil {
					t.Fatal(err)
				}
				delete(m.view, k)
			case 1:
				b := o.NewBatch()
				k2 := fmt.Sprintf("k%03d", rng.IntN(400))
				b.Put([]byte(k), []byte("b"+k))
				b.Delete([]byte(k2))
				if err := b.Write(); err != nil {
					t.Fatal(err)
				}
				m.view[k] = "b" + k
				delete(m.view, k2)
			default:
				v := fmt.Sprintf("%d.%d", step, i)
				if rng.IntN(10) == 0 {
					v = "" // an empty value is not a delete
				}
				mustPut(t, o, k, v)
				m.view[k] = v
			}
		}
		checkView(t, o, m.view, rng)
		checkView(t, base, m.committed, rng)
		switch rng.IntN(3) {
		case 0:
			o.Discard()
			m.discard()
		default:
			if err := o.Commit(); err != nil {
				t.Fatal(err)
			}
			m.commit()
			if o.Pending() != 0 {
				t.Fatalf("Pending after Commit = %d", o.Pending())
			}
		}
		checkView(t, o, m.view, rng)
		checkView(t, base, m.committed, rng)
	}
	// Uncommitted writes die with Close; committed ones survive a reopen.
	mustPut(t, o, "k999", "uncommitted")
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := openLevelDB(dir, LDBTestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, reopened)
	checkView(t, reopened, m.committed, rng)
	if _, found, _ := reopened.Get([]byte("k999")); found {
		t.Fatal("a write never committed reached the base")
	}
}

// TestOverlayIteratorSnapshotAcrossCommit: an iterator opened before Commit
// keeps walking its snapshot.
func TestOverlayIteratorSnapshotAcrossCommit(t *testing.T) {
	o := NewOverlay(NewMemoryEngine())
	defer mustClose(t, o)
	mustPut(t, o, "a", "1")
	mustPut(t, o, "c", "3")
	it, err := o.Iterate(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	mustPut(t, o, "b", "2")
	if err := o.Delete([]byte("c")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for it.Next() {
		got = append(got, string(it.Key())+"="+string(it.Value()))
	}
	mustCloseIter(t, it)
	if fmt.Sprint(got) != "[a=1 c=3]" {
		t.Fatalf("snapshot iterator saw %v, want [a=1 c=3]", got)
	}
	assertScan(t, o, nil, nil, false, []string{"a", "b"})
}

// TestOverlayRollbackToMarkMatchesModel: writes after Mark are undone by
// RollbackToMark, back to exactly the view at the Mark (keys new since the
// Mark disappear, overwritten and deleted ones come back, including keys
// written several times), without touching the base; Commit and Discard
// still work around marks.
func TestOverlayRollbackToMarkMatchesModel(t *testing.T) {
	base, err := openLevelDB(filepath.Join(t.TempDir(), "db"), LDBTestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := &overlayModel{view: map[string]string{}}
	for i := 0; i < 100; i += 2 {
		k := fmt.Sprintf("k%03d", i)
		mustPut(t, base, k, "base"+k)
		m.view[k] = "base" + k
	}
	m.commit()
	o := NewOverlay(base)
	defer mustClose(t, o)
	rng := rand.New(rand.NewPCG(3, 5))
	rollbacks := 0
	for step := 0; step < 300; step++ {
		o.Mark()
		atMark := clone(m.view)
		for i := 0; i < 1+rng.IntN(8); i++ {
			k := fmt.Sprintf("k%03d", rng.IntN(100))
			switch rng.IntN(4) {
			case 0:
				if err := o.Delete([]byte(k)); err != nil {
					t.Fatal(err)
				}
				delete(m.view, k)
			case 1:
				b := o.NewBatch()
				b.Put([]byte(k), []byte("b"+k))
				b.Delete([]byte(fmt.Sprintf("k%03d", rng.IntN(100))))
				b.Put([]byte(k), []byte("b2"+k)) // the same key twice in one batch
				if err := b.Write(); err != nil {
					t.Fatal(err)
				}
				// Applied in order: put, delete (maybe of k), put again.
				m.view[k] = "b" + k
				k2 := string(b.(*overlayBatch).ops[1].key)
				delete(m.view, k2)
				m.view[k] = "b2" + k
			default:
				v := fmt.Sprintf("%d.%d", step, i)
				mustPut(t, o, k, v)
				m.view[k] = v
			}
		}
		if rng.IntN(3) == 0 {
			o.RollbackToMark()
			m.view = atMark
			rollbacks++
		}
		if step%10 == 9 {
			checkView(t, o, m.view, rng)
			checkView(t, base, m.committed, rng)
		}
		switch rng.IntN(20) {
		case 0:
			o.Discard()
			m.discard()
		case 1:
			if err := o.Commit(); err != nil {
				t.Fatal(err)
			}
			m.commit()
		}
	}
	checkView(t, o, m.view, rng)
	if o.Pending() > 100 {
		t.Fatalf("Pending = %d for 100 keys", o.Pending())
	}
	// A rollback right after Commit (nothing written since the Mark)
	// changes nothing; RollbackToMark without a Mark does nothing.
	o.Mark()
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	m.commit()
	o.RollbackToMark()
	checkView(t, o, m.view, rng)
	t.Logf("%d rollbacks", rollbacks)
}

// TestOverlayRollbackWhileReading: readers on other goroutines (as
// interactive queries are) see the view before or after a rollback, never
// half of it, and iterators keep their snapshots.
func TestOverlayRollbackWhileReading(t *testing.T) {
	o := NewOverlay(NewMemoryEngine())
	defer mustClose(t, o)
	for i := 0; i < 50; i++ {
		mustPut(t, o, fmt.Sprintf("k%02d", i), "old")
	}
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			it, err := o.Iterate(nil, nil, false)
			if err != nil {
				errs <- err
				return
			}
			seen := map[string]int{}
			for it.Next() {
				seen[string(it.Value())]++
			}
			it.Close()
			if seen["old"]+seen["new"] != 50 || seen["old"] != 0 && seen["new"] != 0 {
				errs <- fmt.Errorf("reader saw a mixed view %v", seen)
				return
			}
		}
	}()
	for r := 0; r < 200; r++ {
		o.Mark()
		b := o.NewBatch()
		for i := 0; i < 50; i++ {
			b.Put([]byte(fmt.Sprintf("k%02d", i)), []byte("new"))
		}
		if err := b.Write(); err != nil {
			t.Fatal(err)
		}
		o.RollbackToMark()
	}
	close(stop)
	for err := range errs {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if v, _, _ := o.Get([]byte(fmt.Sprintf("k%02d", i))); string(v) != "old" {
			t.Fatalf("k%02d = %q after the rollbacks, want old", i, v)
		}
	}
}
