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
		base, err := OpenLevelDB(filepath.Join(t.TempDir(), "db"), LevelDBOptions{})
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
	base, err := OpenLevelDB(dir, LevelDBOptions{})
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
	reopened, err := OpenLevelDB(dir, LevelDBOptions{})
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
