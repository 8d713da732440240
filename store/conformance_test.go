package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
)

// engineConformance is the suite every Engine must pass. open returns a
// fresh, empty engine; the suite closes it.
func engineConformance(t *testing.T, open func(t *testing.T) Engine) {
	t.Run("GetPutDelete", func(t *testing.T) {
		e := open(t)
		defer mustClose(t, e)
		if _, found, err := e.Get([]byte("a")); err != nil || found {
			t.Fatalf("Get on empty: found=%v err=%v", found, err)
		}
		mustPut(t, e, "a", "1")
		mustPut(t, e, "b", "")
		v, found, err := e.Get([]byte("a"))
		if err != nil || !found || string(v) != "1" {
			t.Fatalf("Get(a) = %q %v %v", v, found, err)
		}
		v, found, err = e.Get([]byte("b"))
		if err != nil || !found || len(v) != 0 {
			t.Fatalf("Get(b) empty value = %q %v %v", v, found, err)
		}
		// Get returns a copy.
		v, _, _ = e.Get([]byte("a"))
		v[0] = 'X'
		if v2, _, _ := e.Get([]byte("a")); string(v2) != "1" {
			t.Fatalf("Get result aliases engine memory: %q", v2)
		}
		// Put copies its arguments.
		k, val := []byte("c"), []byte("3")
		if err := e.Put(k, val); err != nil {
			t.Fatal(err)
		}
		k[0], val[0] = 'z', 'z'
		if v, found, _ := e.Get([]byte("c")); !found || string(v) != "3" {
			t.Fatalf("Put did not copy: %q %v", v, found)
		}
		mustPut(t, e, "a", "2")
		if v, _, _ := e.Get([]byte("a")); string(v) != "2" {
			t.Fatalf("overwrite: %q", v)
		}
		if err := e.Delete([]byte("a")); err != nil {
			t.Fatal(err)
		}
		if err := e.Delete([]byte("never")); err != nil {
			t.Fatalf("delete of absent key: %v", err)
		}
		if _, found, _ := e.Get([]byte("a")); found {
			t.Fatal("a found after delete")
		}
		assertScan(t, e, nil, nil, false, []string{"b", "c"})
	})

	t.Run("RandomOpsMatchModel", func(t *testing.T) {
		e := open(t)
		defer mustClose(t, e)
		rng := rand.New(rand.NewPCG(1, 2))
		model := map[string]string{}
		for i := 0; i < 3000; i++ {
			k := fmt.Sprintf("k%03d", rng.IntN(400))
			switch rng.IntN(4) {
			case 0:
				if err := e.Delete([]byte(k)); err != nil {
					t.Fatal(err)
				}
				delete(model, k)
			case 1:
				b := e.NewBatch()
				for j := 0; j < 5; j++ {
					k := fmt.Sprintf("k%03d", rng.IntN(400))
					if rng.IntN(3) == 0 {
						b.Delete([]byte(k))
						delete(model, k)
					} else {
						b.Put([]byte(k), []byte(k+"b"))
						model[k] = k + "b"
					}
				}
				if err := b.Write(); err != nil {
					t.Fatal(err)
				}
			default:
				v := fmt.Sprint(i)
				mustPut(t, e, k, v)
				model[k] = v
			}
		}
		keys := make([]string, 0, len(model))
		for k := range model {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		it, err := e.Iterate(nil, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for it.Next() {
			if i >= len(keys) || string(it.Key()) != keys[i] || string(it.Value()) != model[keys[i]] {
				t.Fatalf("pair %d = %q=%q, want %q", i, it.Key(), it.Value(), keys[i])
			}
			i++
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		mustCloseIter(t, it)
		if i != len(keys) {
			t.Fatalf("iterated %d keys, want %d", i, len(keys))
		}
		n, err := e.ApproximateCount()
		if err != nil {
			t.Fatal(err)
		}
		if n < 0 || (n == 0 && len(keys) > 0) {
			t.Fatalf("ApproximateCount = %d with %d keys", n, len(keys))
		}
		// Ranges in both directions against the model.
		for r := 0; r < 50; r++ {
			lo := fmt.Sprintf("k%03d", rng.IntN(420))
			hi := fmt.Sprintf("k%03d", rng.IntN(420))
			var want []string
			for _, k := range keys {
				if k >= lo && k < hi {
					want = append(want, k)
				}
			}
			assertScan(t, e, []byte(lo), []byte(hi), false, want)
			rev := append([]string(nil), want...)
			for a, b := 0, len(rev)-1; a < b; a, b = a+1, b-1 {
				rev[a], rev[b] = rev[b], rev[a]
			}
			assertScan(t, e, []byte(lo), []byte(hi), true, rev)
		}
	})

	t.Run("Bounds", func(t *testing.T) {
		e := open(t)
		defer mustClose(t, e)
		for _, k := range []string{"a", "ab", "b", "ba", "c"} {
			mustPut(t, e, k, k)
		}
		assertScan(t, e, []byte("ab"), []byte("ba"), false, []string{"ab", "b"})
		assertScan(t, e, []byte("ab"), []byte("ba"), true, []string{"b", "ab"})
		assertScan(t, e, nil, []byte("b"), true, []string{"ab", "a"})
		assertScan(t, e, []byte("b"), nil, false, []string{"b", "ba", "c"})
		assertScan(t, e, []byte("b"), nil, true, []string{"c", "ba", "b"})
		assertScan(t, e, []byte("c"), []byte("a"), false, nil)
		assertScan(t, e, []byte("b"), []byte("b"), true, nil)
		assertScan(t, e, []byte("zz"), nil, false, nil)
		// Binary keys order by bytes.Compare, 0x00 and 0xff included.
		mustPut(t, e, "\x00", "lo")
		mustPut(t, e, "\xff\xff", "hi")
		assertScan(t, e, nil, []byte("a"), false, []string{"\x00"})
		assertScan(t, e, []byte("c"), nil, false, []string{"c", "\xff\xff"})
	})

	t.Run("IteratorSeesSnapshotWhileWriting", func(t *testing.T) {
		e := open(t)
		defer mustClose(t, e)
		for i := 0; i < 100; i++ {
			mustPut(t, e, fmt.Sprintf("k%03d", i), "old")
		}
		it, err := e.Iterate(nil, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for it.Next() {
			// Writes during iteration: update the current key, delete
			// the next one, add a key further on.
			k := append([]byte(nil), it.Key()...)
			if string(it.Value()) != "old" {
				t.Fatalf("iterator saw a later write at %s: %q", k, it.Value())
			}
			mustPut(t, e, string(k), "new")
			if err := e.Delete([]byte(fmt.Sprintf("k%03d", n+1))); err != nil {
				t.Fatal(err)
			}
			mustPut(t, e, fmt.Sprintf("k%03d-added", n), "new")
			n++
		}
		mustCloseIter(t, it)
		if n != 100 {
			t.Fatalf("snapshot iterator saw %d keys, want 100", n)
		}
	})

	t.Run("Batch", func(t *testing.T) {
		e := open(t)
		defer mustClose(t, e)
		mustPut(t, e, "gone", "x")
		b := e.NewBatch()
		b.Put([]byte("a"), []byte("1"))
		b.Put([]byte("a"), []byte("2"))
		b.Delete([]byte("gone"))
		b.Put([]byte("b"), []byte("1"))
		b.Delete([]byte("b"))
		if b.Len() != 5 {
			t.Fatalf("Len = %d, want 5", b.Len())
		}
		if _, found, _ := e.Get([]byte("a")); found {
			t.Fatal("batch applied before Write")
		}
		if err := b.Write(); err != nil {
			t.Fatal(err)
		}
		assertScan(t, e, nil, nil, false, []string{"a"})
		if v, _, _ := e.Get([]byte("a")); string(v) != "2" {
			t.Fatalf("last write in batch must win, got %q", v)
		}
		b.Reset()
		if b.Len() != 0 {
			t.Fatalf("Len after Reset = %d", b.Len())
		}
		b.Put([]byte("c"), []byte("3"))
		if err := b.Write(); err != nil {
			t.Fatal(err)
		}
		assertScan(t, e, nil, nil, false, []string{"a", "c"})
	})

	t.Run("CloseWithLeakedIterator", func(t *testing.T) {
		e := open(t)
		mustPut(t, e, "a", "1")
		mustPut(t, e, "b", "2")
		it, err := e.Iterate(nil, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if !it.Next() || string(it.Key()) != "a" {
			t.Fatalf("first key = %q, want a", it.Key())
		}
		closed, err := e.Iterate(nil, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		mustCloseIter(t, closed)
		// Close reports the leak but closes anyway.
		var oie *OpenIteratorsError
		if err := e.Close(); !errors.As(err, &oie) || oie.Open != 1 {
			t.Fatalf("Close with a leaked iterator = %v, want *OpenIteratorsError{Open: 1}", err)
		}
		if _, _, err := e.Get([]byte("a")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Get after Close = %v, want ErrClosed (the engine must be closed despite the leak)", err)
		}
		if err := e.Put([]byte("a"), []byte("b")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Put after Close = %v, want ErrClosed", err)
		}
		if _, err := e.Iterate(nil, nil, false); !errors.Is(err, ErrClosed) {
			t.Fatalf("Iterate after Close = %v, want ErrClosed", err)
		}
		// The leaked iterator fails safely.
		if it.Next() {
			t.Fatalf("leaked iterator's Next after Close = true (key %q), want false", it.Key())
		}
		if !errors.Is(it.Err(), ErrClosed) {
			t.Fatalf("leaked iterator's Err after Close = %v, want ErrClosed", it.Err())
		}
		if it.Key() != nil || it.Value() != nil {
			t.Fatalf("leaked iterator's Key/Value after Close = %q/%q, want nil", it.Key(), it.Value())
		}
		mustCloseIter(t, it)
		mustCloseIter(t, it)
		if err := e.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})

	t.Run("CloseWhileAnotherGoroutineIterates", func(t *testing.T) {
		e := open(t)
		for i := 0; i < 500; i++ {
			mustPut(t, e, fmt.Sprintf("k%03d", i), "v")
		}
		it, err := e.Iterate(nil, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			n := 0
			for it.Next() {
				if n++; n == 1 {
					close(started)
				}
				_, _ = it.Key(), it.Value()
			}
			if n == 0 {
				close(started)
			}
			err := it.Err()
			if err != nil && !errors.Is(err, ErrClosed) {
				done <- fmt.Errorf("iterator error %v, want nil or ErrClosed", err)
				return
			}
			done <- it.Close()
		}()
		<-started
		var oie *OpenIteratorsError
		if err := e.Close(); err != nil && !errors.As(err, &oie) {
			t.Fatalf("Close = %v", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.Get([]byte("k001")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Get after Close = %v, want ErrClosed", err)
		}
	})

	t.Run("ConcurrentReaders", func(t *testing.T) {
		e := open(t)
		defer mustClose(t, e)
		for i := 0; i < 200; i++ {
			mustPut(t, e, fmt.Sprintf("k%03d", i), "0")
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for r := 0; r < 3; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 20; j++ {
					it, err := e.Iterate(nil, nil, false)
					if err != nil {
						errs <- err
						return
					}
					n := 0
					for it.Next() {
						n++
					}
					it.Close()
					if n != 200 {
						errs <- fmt.Errorf("reader saw %d keys, want 200", n)
						return
					}
					if _, found, err := e.Get([]byte("k100")); err != nil || !found {
						errs <- fmt.Errorf("Get: %v %v", found, err)
						return
					}
				}
			}()
		}
		for i := 0; i < 500; i++ {
			mustPut(t, e, fmt.Sprintf("k%03d", i%200), fmt.Sprint(i))
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("FlushKeepsData", func(t *testing.T) {
		e := open(t)
		defer mustClose(t, e)
		mustPut(t, e, "a", "1")
		if err := e.Flush(); err != nil {
			t.Fatal(err)
		}
		if v, found, _ := e.Get([]byte("a")); !found || string(v) != "1" {
			t.Fatalf("after Flush: %q %v", v, found)
		}
	})
}

func mustPut(t testing.TB, e Engine, k, v string) {
	t.Helper()
	if err := e.Put([]byte(k), []byte(v)); err != nil {
		t.Fatalf("Put(%q): %v", k, err)
	}
}

func mustClose(t testing.TB, e Engine) {
	t.Helper()
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustCloseIter(t testing.TB, it interface{ Close() error }) {
	t.Helper()
	if err := it.Close(); err != nil {
		t.Fatalf("iterator Close: %v", err)
	}
}

func assertScan(t *testing.T, e Engine, lo, hi []byte, reverse bool, want []string) {
	t.Helper()
	it, err := e.Iterate(lo, hi, reverse)
	if err != nil {
		t.Fatal(err)
	}
	defer mustCloseIter(t, it)
	var got []string
	for it.Next() {
		got = append(got, string(it.Key()))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Iterate(%q, %q, reverse=%v) = %q, want %q", lo, hi, reverse, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("Iterate(%q, %q, reverse=%v) = %q, want %q", lo, hi, reverse, got, want)
		}
	}
}

func TestMemoryEngineConformance(t *testing.T) {
	engineConformance(t, func(t *testing.T) Engine { return NewMemoryEngine() })
}
