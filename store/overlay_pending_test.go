package store

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// Tests of the overlay's pending writes: a hash map on the write path and
// an ordered view built only when an iterator asks (#19).

func (o *Overlay) hasOrderedView() bool {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.ordered != nil
}

// TestOverlayOrderedViewOnlyForIterators: writes, reads, batches,
// rollbacks and commits keep the pending writes in the map; the first
// iterator builds the ordered view, later writes go to it, and Commit and
// Discard drop it. The store shows the same data in both forms.
func TestOverlayOrderedViewOnlyForIterators(t *testing.T) {
	o := NewOverlay(NewMemoryEngine())
	defer mustClose(t, o)
	mustPut(t, o, "base", "b")
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	o.Mark()
	mustPut(t, o, "a", "1")
	mustPut(t, o, "c", "3")
	if err := o.Delete([]byte("base")); err != nil {
		t.Fatal(err)
	}
	b := o.NewBatch()
	b.Put([]byte("d"), []byte("4"))
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.Get([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if n, err := o.ApproximateCount(); err != nil || n != 5 {
		t.Fatalf("ApproximateCount = %d, %v; want 5 (1 base key + 4 pending)", n, err)
	}
	if o.hasOrderedView() {
		t.Fatal("writes and reads built the ordered view")
	}
	if o.Pending() != 4 {
		t.Fatalf("Pending = %d, want 4", o.Pending())
	}
	assertScan(t, o, nil, nil, false, []string{"a", "c", "d"})
	if !o.hasOrderedView() {
		t.Fatal("an iterator did not build the ordered view")
	}
	mustPut(t, o, "e", "5")
	if err := o.Delete([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if o.Pending() != 5 {
		t.Fatalf("Pending = %d in the ordered view, want 5", o.Pending())
	}
	assertScan(t, o, nil, nil, true, []string{"e", "d", "c"})
	if v, found, err := o.Get([]byte("e")); err != nil || !found || string(v) != "5" {
		t.Fatalf("Get(e) = %q %v %v", v, found, err)
	}
	// The rollback undoes writes made in the map and in the view.
	o.RollbackToMark()
	assertScan(t, o, nil, nil, false, []string{"base"})
	if o.Pending() != 0 {
		t.Fatalf("Pending = %d after the rollback, want 0", o.Pending())
	}
	mustPut(t, o, "f", "6")
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	if o.hasOrderedView() || o.Pending() != 0 {
		t.Fatalf("after Commit: ordered view %v, Pending %d", o.hasOrderedView(), o.Pending())
	}
	assertScan(t, o, nil, nil, false, []string{"base", "f"})
	mustPut(t, o, "g", "7")
	o.Discard()
	if o.hasOrderedView() || o.Pending() != 0 {
		t.Fatalf("after Discard: ordered view %v, Pending %d", o.hasOrderedView(), o.Pending())
	}
	assertScan(t, o, nil, nil, false, []string{"base", "f"})
}

// TestOverlayRollbackAfterIteratorSnapshot: writes made after an iterator
// took its snapshot (in the ordered view, on top of writes made in the
// map) roll back to the Mark, while the iterator still sees its snapshot,
// including when the snapshot was taken between the Mark and the writes.
func TestOverlayRollbackAfterIteratorSnapshot(t *testing.T) {
	o := NewOverlay(NewMemoryEngine())
	defer mustClose(t, o)
	mustPut(t, o, "a", "base")
	mustPut(t, o, "b", "base")
	mustPut(t, o, "z", "base")
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	mustPut(t, o, "a", "pending") // before the Mark: stays
	o.Mark()
	mustPut(t, o, "b", "m1")                      // map, overwrites the base
	mustPut(t, o, "c", "m1")                      // map, new key
	if err := o.Delete([]byte("z")); err != nil { // map, hides the base
		t.Fatal(err)
	}
	before, err := o.Iterate(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, o, "a", "v1") // view, over a pending write from before the Mark
	mustPut(t, o, "b", "v1") // view, over a write since the Mark
	mustPut(t, o, "d", "v1") // view, new key
	mustPut(t, o, "z", "v1") // view, over a tombstone
	if err := o.Delete([]byte("c")); err != nil {
		t.Fatal(err)
	}
	b := o.NewBatch()
	b.Put([]byte("a"), []byte("v2"))
	b.Delete([]byte("d"))
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	after, err := o.Iterate(nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	o.RollbackToMark()
	want := map[string]string{"a": "pending", "b": "base", "z": "base"}
	checkView(t, o, want, rand.New(rand.NewPCG(1, 2)))
	assertPairs(t, before, "a=pending b=m1 c=m1")
	assertPairs(t, after, "z=v1 b=v1 a=v2")
	if o.Pending() != 1 {
		t.Fatalf("Pending = %d after the rollback, want 1 (a)", o.Pending())
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	checkView(t, o.Base(), want, rand.New(rand.NewPCG(1, 2)))
}

// assertPairs drains and closes it and compares its pairs with want
// ("k=v k=v").
func assertPairs(t *testing.T, it Iterator[[]byte, []byte], want string) {
	t.Helper()
	var got []string
	for it.Next() {
		got = append(got, string(it.Key())+"="+string(it.Value()))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	mustCloseIter(t, it)
	if s := fmt.Sprint(got); s != "["+want+"]" {
		t.Fatalf("iterator saw %s, want [%s]", s, want)
	}
}

// TestOverlayTombstonesInOrderedIteration: pending deletes hide base keys
// in ranges, forward and reverse, at range edges; a delete of a key the
// base lacks shows nothing; a delete followed by a put shows the put; a
// put followed by a delete of a base key hides it.
func TestOverlayTombstonesInOrderedIteration(t *testing.T) {
	base := NewMemoryEngine()
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		mustPut(t, base, k, "base")
	}
	o := NewOverlay(base)
	defer mustClose(t, o)
	for _, k := range []string{"a", "c", "f", "x"} { // x: not in the base
		if err := o.Delete([]byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, o, "d", "new")
	if err := o.Delete([]byte("d")); err != nil { // put then delete
		t.Fatal(err)
	}
	if err := o.Delete([]byte("e")); err != nil {
		t.Fatal(err)
	}
	mustPut(t, o, "e", "back") // delete then put
	mustPut(t, o, "g", "new")
	assertScan(t, o, nil, nil, false, []string{"b", "e", "g"})
	assertScan(t, o, nil, nil, true, []string{"g", "e", "b"})
	assertScan(t, o, []byte("a"), []byte("c"), false, []string{"b"})
	assertScan(t, o, []byte("c"), []byte("f"), true, []string{"e"})
	assertScan(t, o, []byte("c"), []byte("e"), false, nil)
	assertScan(t, o, []byte("f"), []byte("z"), false, []string{"g"})
	// The same in the ordered view's own writes.
	if err := o.Delete([]byte("b")); err != nil {
		t.Fatal(err)
	}
	mustPut(t, o, "a", "again")
	assertScan(t, o, nil, nil, false, []string{"a", "e", "g"})
	assertScan(t, o, nil, nil, true, []string{"g", "e", "a"})
	if _, found, err := o.Get([]byte("c")); err != nil || found {
		t.Fatalf("Get(c) found=%v err=%v through a tombstone", found, err)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	assertScan(t, base, nil, nil, false, []string{"a", "e", "g"})
}

// TestOverlayLargePendingSet: 60,000 keys over a base of 20,000, with
// puts, deletes and overwrites, match a model in the map, in the ordered
// view built from it, after more writes to the view, and in the base
// after Commit.
func TestOverlayLargePendingSet(t *testing.T) {
	const keys = 60_000
	base := NewMemoryEngine()
	want := map[string]string{}
	key := func(i int) string { return fmt.Sprintf("k%06d", i) }
	for i := 0; i < keys; i += 3 {
		mustPut(t, base, key(i), "base")
		want[key(i)] = "base"
	}
	o := NewOverlay(base)
	defer mustClose(t, o)
	rng := rand.New(rand.NewPCG(11, 13))
	write := func(n int) {
		for i := 0; i < n; i++ {
			k := key(rng.IntN(keys))
			if rng.IntN(4) == 0 {
				if err := o.Delete([]byte(k)); err != nil {
					t.Fatal(err)
				}
				delete(want, k)
				continue
			}
			v := fmt.Sprint(i)
			mustPut(t, o, k, v)
			want[k] = v
		}
	}
	check := func() {
		t.Helper()
		for i := 0; i < keys; i += 97 {
			v, found, err := o.Get([]byte(key(i)))
			if err != nil {
				t.Fatal(err)
			}
			if wv, ok := want[key(i)]; found != ok || string(v) != wv {
				t.Fatalf("Get(%s) = %q %v, want %q %v", key(i), v, found, wv, ok)
			}
		}
		for _, reverse := range []bool{false, true} {
			exp := slices.Sorted(maps.Keys(want))
			if reverse {
				slices.Reverse(exp)
			}
			it, err := o.Iterate(nil, nil, reverse)
			if err != nil {
				t.Fatal(err)
			}
			i := 0
			for ; it.Next(); i++ {
				if i >= len(exp) || string(it.Key()) != exp[i] || string(it.Value()) != want[exp[i]] {
					t.Fatalf("scan (reverse %v) #%d: %s=%s, want %s", reverse, i, it.Key(), it.Value(), exp[min(i, len(exp)-1)])
				}
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
			mustCloseIter(t, it)
			if i != len(exp) {
				t.Fatalf("scan (reverse %v) gave %d keys, want %d", reverse, i, len(exp))
			}
		}
	}
	write(150_000)
	if o.Pending() < keys*9/10 {
		t.Fatalf("Pending = %d, want nearly %d", o.Pending(), keys)
	}
	check() // builds the ordered view from the map
	write(20_000)
	check()
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, _ := base.ApproximateCount(); n != int64(len(want)) {
		t.Fatalf("base holds %d keys after Commit, want %d", n, len(want))
	}
	check()
}

// TestNewSortedMemEngineIsATreap: the treap built in one pass from sorted
// keys is ordered by key, a max-heap by priority, counts its keys, and
// takes writes, deletes and snapshots like one built by inserts.
func TestNewSortedMemEngineIsATreap(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 10, 1000} {
		keys, values := make([][]byte, n), make([][]byte, n)
		for i := range keys {
			keys[i], values[i] = fmt.Appendf(nil, "k%05d", i), fmt.Appendf(nil, "v%d", i)
		}
		e := newSortedMemEngine(n, func(i int) ([]byte, []byte) { return keys[i], values[i] })
		var walk func(nd *memNode, lo, hi []byte) int
		walk = func(nd *memNode, lo, hi []byte) int {
			if nd == nil {
				return 0
			}
			if lo != nil && bytes.Compare(nd.key, lo) <= 0 || hi != nil && bytes.Compare(nd.key, hi) >= 0 {
				t.Fatalf("n=%d: key %s out of order", n, nd.key)
			}
			for _, c := range []*memNode{nd.left, nd.right} {
				if c != nil && c.prio > nd.prio {
					t.Fatalf("n=%d: child %s has a higher priority than %s", n, c.key, nd.key)
				}
			}
			return 1 + walk(nd.left, lo, nd.key) + walk(nd.right, nd.key, hi)
		}
		if got := walk(e.root, nil, nil); got != n || e.count != int64(n) {
			t.Fatalf("n=%d: %d nodes, count %d", n, got, e.count)
		}
		want := map[string]string{}
		for i := range keys {
			want[string(keys[i])] = string(values[i])
		}
		it, err := e.Iterate(nil, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, e, "k00001", "changed")
		mustPut(t, e, "zz", "new")
		if err := e.Delete([]byte("k00000")); err != nil {
			t.Fatal(err)
		}
		i := 0
		for ; it.Next(); i++ {
			if string(it.Key()) != string(keys[i]) || string(it.Value()) != string(values[i]) {
				t.Fatalf("n=%d: snapshot #%d = %s=%s", n, i, it.Key(), it.Value())
			}
		}
		mustCloseIter(t, it)
		if i != n {
			t.Fatalf("n=%d: snapshot had %d keys", n, i)
		}
		want["k00001"], want["zz"] = "changed", "new"
		delete(want, "k00000")
		assertScan(t, e, nil, nil, false, slices.Sorted(maps.Keys(want)))
		mustClose(t, e)
	}
}

// TestOverlayPendingMapShrinksAfterABurst: the pending map is reused from
// one commit interval to the next, but one that grew in a burst is
// replaced once an interval needs less than a quarter of it, so a store
// does not keep a burst's memory for good.
func TestOverlayPendingMapShrinksAfterABurst(t *testing.T) {
	o := NewOverlay(NewMemoryEngine())
	defer mustClose(t, o)
	interval := func(n int) {
		for i := 0; i < n; i++ {
			mustPut(t, o, fmt.Sprint(i), "v")
		}
		if err := o.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	interval(20_000)
	m := o.m
	interval(6_000) // over a quarter: the map is reused
	if o.mSize != 20_000 || fmt.Sprintf("%p", o.m) != fmt.Sprintf("%p", m) {
		t.Fatalf("after 6,000 of 20,000 keys: size %d, map replaced %v", o.mSize, fmt.Sprintf("%p", o.m) != fmt.Sprintf("%p", m))
	}
	interval(100)
	if o.mSize != 100 || fmt.Sprintf("%p", o.m) == fmt.Sprintf("%p", m) {
		t.Fatalf("after 100 of 20,000 keys: size %d, map kept", o.mSize)
	}
	interval(50)
	if v, found, err := o.Get([]byte("49")); err != nil || !found || string(v) != "v" {
		t.Fatalf("Get = %q %v %v", v, found, err)
	}
}
