package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// overlaySnapshot is what a reader saw: pairs of an iterator (or one Get)
// and the writer's step count before and after it took them.
type overlaySnapshot struct {
	pairs         map[string]string
	get           string // the key of a Get; pairs holds its answer
	before, after int64
}

// TestOverlayIteratorSnapshotsUnderConcurrentWrites: while the writer
// puts, deletes, writes batches, rolls back, commits, discards and takes
// iterators of its own that it reads later, readers on other goroutines
// (as interactive queries are) take iterators and Gets. Every iterator
// must see exactly the store as it was after one of the writer's steps
// taken while it was being created, and every Get one value the key had
// during the call. Run with -race.
func TestOverlayIteratorSnapshotsUnderConcurrentWrites(t *testing.T) {
	for _, name := range []string{"memory", "leveldb"} {
		t.Run(name, func(t *testing.T) {
			var base Engine = NewMemoryEngine()
			if name == "leveldb" {
				var err error
				if base, err = openLevelDB(t.TempDir(), LDBTestOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			testOverlaySnapshotsUnderWrites(t, NewOverlay(base))
		})
	}
}

func testOverlaySnapshotsUnderWrites(t *testing.T, o *Overlay) {
	defer mustClose(t, o)
	const keys, steps = 40, 3000
	key := func(i int) string { return fmt.Sprintf("k%02d", i) }
	var step atomic.Int64
	states := make([]map[string]string, 1, steps+1) // states[i]: after step i
	states[0] = map[string]string{}
	committed := map[string]string{}
	view := map[string]string{}
	var atMark map[string]string
	done := make(chan struct{})
	var wg sync.WaitGroup
	seen := make([][]overlaySnapshot, 2)
	for r := range seen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 77))
			for {
				select {
				case <-done:
					return
				default:
				}
				s := overlaySnapshot{pairs: map[string]string{}, before: step.Load()}
				if r == 1 && rng.IntN(2) == 0 {
					s.get = key(rng.IntN(keys))
					v, found, err := o.Get([]byte(s.get))
					s.after = step.Load()
					if err != nil {
						t.Error(err)
						return
					}
					if found {
						s.pairs[s.get] = string(v)
					}
					seen[r] = append(seen[r], s)
					continue
				}
				it, err := o.Iterate(nil, nil, rng.IntN(2) == 0)
				s.after = step.Load()
				if err != nil {
					t.Error(err)
					return
				}
				for it.Next() {
					s.pairs[string(it.Key())] = string(it.Value())
				}
				if err := it.Err(); err != nil {
					t.Error(err)
				}
				it.Close()
				seen[r] = append(seen[r], s)
			}
		}()
	}
	rng := rand.New(rand.NewPCG(5, 8))
	type ownIter struct {
		it   Iterator[[]byte, []byte]
		want map[string]string
	}
	var own []ownIter
	for i := 1; i <= steps; i++ {
		k := key(rng.IntN(keys))
		switch op := rng.IntN(100); {
		case op < 50:
			v := fmt.Sprint(i)
			mustPut(t, o, k, v)
			view[k] = v
		case op < 70:
			if err := o.Delete([]byte(k)); err != nil {
				t.Fatal(err)
			}
			delete(view, k)
		case op < 78:
			b := o.NewBatch()
			for j := 0; j < 5; j++ {
				k := key(rng.IntN(keys))
				if j%2 == 0 {
					b.Put([]byte(k), []byte(fmt.Sprint(i)))
					view[k] = fmt.Sprint(i)
				} else {
					b.Delete([]byte(k))
					delete(view, k)
				}
			}
			if err := b.Write(); err != nil {
				t.Fatal(err)
			}
		case op < 86:
			o.Mark()
			atMark = clone(view)
		case op < 90:
			if atMark != nil {
				o.RollbackToMark()
				view = clone(atMark)
			}
		case op < 95:
			if err := o.Commit(); err != nil {
				t.Fatal(err)
			}
			committed = clone(view)
			atMark = nil // nothing left to undo
			o.Mark()
			atMark = clone(view)
		case op < 97:
			o.Discard()
			view = clone(committed)
			o.Mark()
			atMark = clone(view)
		default:
			it, err := o.Iterate(nil, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			own = append(own, ownIter{it, clone(view)})
		}
		states = append(states, clone(view))
		step.Store(int64(i))
		if len(own) > 0 && rng.IntN(20) == 0 { // read an old iterator of ours
			oi := own[0]
			own = own[1:]
			got := map[string]string{}
			for oi.it.Next() {
				got[string(oi.it.Key())] = string(oi.it.Value())
			}
			mustCloseIter(t, oi.it)
			if !maps.Equal(got, oi.want) {
				t.Fatalf("step %d: the writer's iterator saw %v, want its snapshot %v", i, got, oi.want)
			}
		}
	}
	close(done)
	wg.Wait()
	for _, oi := range own {
		mustCloseIter(t, oi.it)
	}
	n := 0
	for r := range seen {
		for _, s := range seen[r] {
			n++
			ok := false
			// The writer applies step i before it publishes i, so the
			// step after s.after may already show.
			for j := s.before; j <= min(s.after+1, steps) && !ok; j++ {
				if s.get != "" {
					v, found := states[j][s.get]
					gv, gfound := s.pairs[s.get]
					ok = found == gfound && v == gv
				} else {
					ok = maps.Equal(states[j], s.pairs)
				}
			}
			if !ok {
				t.Fatalf("reader %d saw %v (get %q) between steps %d and %d, matching none of them (first %v)",
					r, s.pairs, s.get, s.before, s.after, states[s.before])
			}
		}
	}
	t.Logf("%d snapshots and gets checked", n)
}
