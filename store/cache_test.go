package store

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brookstream/brook/serde"
)

// rec is a value type with every kind of reference a decoded value may
// hold, so that a caller changing a value it got or put would change the
// cache's copy if the cache shared it.
type rec struct {
	N      int
	S      string
	Tags   []string
	M      map[string]int
	P      *int
	Amount *big.Rat
	At     time.Time
}

func recEqual(a, b rec) bool {
	if (a.Amount == nil) != (b.Amount == nil) || a.Amount != nil && a.Amount.Cmp(b.Amount) != 0 {
		return false
	}
	a.Amount, b.Amount = nil, nil
	return reflect.DeepEqual(a, b)
}

// scribble changes everything v refers to, as a careless caller might.
func scribble(v *rec) {
	if len(v.Tags) > 0 {
		v.Tags[0] = "scribbled"
	}
	if v.M != nil {
		v.M["scribbled"] = -1
	}
	if v.P != nil {
		*v.P = -1
	}
	if v.Amount != nil {
		v.Amount.SetInt64(-1)
	}
}

func randRec(rng *rand.Rand) rec {
	v := rec{N: rng.IntN(1000), S: fmt.Sprint("s", rng.IntN(1000)), At: time.UnixMilli(rng.Int64N(1 << 40)).UTC()}
	if rng.IntN(2) == 0 {
		v.Tags = []string{fmt.Sprint("t", rng.IntN(9)), "u"}
	}
	if rng.IntN(2) == 0 {
		v.M = map[string]int{"a": rng.IntN(9)}
	}
	if rng.IntN(2) == 0 {
		p := rng.IntN(9)
		v.P = &p
	}
	if rng.IntN(2) == 0 {
		v.Amount = big.NewRat(rng.Int64N(1000), 1+rng.Int64N(99))
	}
	return v
}

// checkCache checks the cache's own bookkeeping: the bound holds, the LRU
// list and the stores' maps agree, and bytes and entries add up.
func checkCache(t *testing.T, c *Cache) {
	t.Helper()
	var n, bytes int64
	for e := c.lru.next; e != &c.lru; e = e.next {
		if e.next.prev != e || e.prev.next != e {
			t.Fatalf("LRU list broken at %q", e.key)
		}
		n++
		bytes += e.size
		if !ownerHas(e.owner, e.key, e) {
			t.Fatalf("entry %q is listed but not in its store's map", e.key)
		}
	}
	st := c.Stats()
	if bytes != c.bytes || n != c.n || st.Bytes != bytes || st.Entries != n {
		t.Fatalf("cache holds %d entries of %d bytes, counts %d of %d, Stats %+v", n, bytes, c.n, c.bytes, st)
	}
	if bytes > c.max {
		t.Fatalf("cache holds %d bytes, over its bound of %d", bytes, c.max)
	}
}

func ownerHas(o cacheOwner, key string, n *cacheNode) bool {
	switch k := o.(type) {
	case *kvCache[rec]:
		e := k.m[key]
		return e != nil && &e.cacheNode == n
	case *kvCache[string]:
		e := k.m[key]
		return e != nil && &e.cacheNode == n
	}
	return true
}

// cachePair is a cached store and the same store without a cache, each
// over its own overlay: the uncached one is the model.
type cachePair struct {
	got, want       TimestampedKeyValueStore[string, rec]
	gotOv, wantOv   *Overlay
	gotView         KeyValueStore[string, rec]
	gotBase, wantBs Engine
}

func newCachePair(t *testing.T, c *Cache, name string, base Engine) *cachePair {
	p := &cachePair{gotBase: base, wantBs: NewMemoryEngine()}
	p.gotOv, p.wantOv = NewOverlay(base), NewOverlay(p.wantBs)
	p.got = NewTimestampedKeyValueStore(name, p.gotOv, serde.String(), serde.JSON[rec](), WithCache(c))
	p.want = NewTimestampedKeyValueStore(name, p.wantOv, serde.String(), serde.JSON[rec]())
	p.gotView = QueryView(p.got, ReadCommitted).(KeyValueStore[string, rec])
	t.Cleanup(func() {
		mustClose(t, p.gotOv)
		mustClose(t, p.wantOv)
	})
	return p
}

func (p *cachePair) overlays() []*Overlay { return []*Overlay{p.gotOv, p.wantOv} }

// TestCacheMatchesUncachedStore runs random Puts, Deletes, Gets, record
// scopes (Mark, RollbackToMark), commits, discards and writes that bypass
// the store (a batch into the overlay) over two cached stores sharing a
// small cache, and the same over uncached stores: every Get, timestamp and
// scan must agree, values the test changes after getting or putting them
// must not change what the store holds, the committed view must read what
// the uncached store's base holds, and the cache's bound and bookkeeping
// must hold after every step.
func TestCacheMatchesUncachedStore(t *testing.T) {
	for _, engine := range []string{"memory", "leveldb"} {
		t.Run(engine, func(t *testing.T) {
			steps := 20_000
			if engine == "leveldb" {
				steps = 5_000
			}
			for seed := range uint64(3) {
				c := NewCache(6_000)
				var pairs []*cachePair
				for i := range 2 {
					var base Engine = NewMemoryEngine()
					if engine == "leveldb" {
						base = mustLevelDB(t)
					}
					pairs = append(pairs, newCachePair(t, c, fmt.Sprint("s", i), base))
				}
				runCacheModel(t, rand.New(rand.NewPCG(seed, 19)), c, pairs, steps)
				st := c.Stats()
				if st.Hits == 0 || st.Misses == 0 || st.Evictions == 0 {
					t.Fatalf("seed %d: the run did not exercise the cache: %+v", seed, st)
				}
			}
		})
	}
}

func runCacheModel(t *testing.T, rng *rand.Rand, c *Cache, pairs []*cachePair, steps int) {
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(40)) }
	for step := range steps {
		p := pairs[rng.IntN(len(pairs))]
		op := rng.IntN(100)
		where := func() string { return fmt.Sprintf("step %d op %d store %s", step, op, p.got.Name()) }
		switch {
		case op < 35:
			k := key()
			g, gts, gf, gerr := p.got.GetWithTimestamp(k)
			w, wts, wf, werr := p.want.GetWithTimestamp(k)
			if gerr != nil || werr != nil || gf != wf || !recEqual(g, w) || !gts.Equal(wts) {
				t.Fatalf("%s: Get(%s) = %+v %v %v %v, want %+v %v %v %v", where(), k, g, gts, gf, gerr, w, wts, wf, werr)
			}
			scribble(&g)
		case op < 55:
			k, v := key(), randRec(rng)
			ts := time.UnixMilli(rng.Int64N(1 << 40))
			if err := errors.Join(p.got.PutWithTimestamp(k, v, ts), p.want.PutWithTimestamp(k, v, ts)); err != nil {
				t.Fatal(err)
			}
			scribble(&v)
		case op < 60:
			k, v := key(), randRec(rng)
			if err := errors.Join(p.got.Put(k, v), p.want.Put(k, v)); err != nil {
				t.Fatal(err)
			}
		case op < 65:
			k, v := key(), randRec(rng)
			g, gf, gerr := p.got.PutIfAbsent(k, v)
			w, wf, werr := p.want.PutIfAbsent(k, v)
			if gerr != nil || werr != nil || gf != wf || !recEqual(g, w) {
				t.Fatalf("%s: PutIfAbsent(%s) = %+v %v %v, want %+v %v %v", where(), k, g, gf, gerr, w, wf, werr)
			}
		case op < 72:
			k := key()
			if err := errors.Join(p.got.Delete(k), p.want.Delete(k)); err != nil {
				t.Fatal(err)
			}
		case op < 78: // a record's scope begins on every overlay
			for _, q := range pairs {
				for _, o := range q.overlays() {
					o.Mark()
				}
			}
		case op < 82: // the record failed
			for _, q := range pairs {
				for _, o := range q.overlays() {
					o.RollbackToMark()
				}
			}
		case op < 85:
			for _, q := range pairs {
				for _, o := range q.overlays() {
					if err := o.Commit(); err != nil {
						t.Fatal(err)
					}
				}
			}
		case op < 86:
			for _, q := range pairs {
				for _, o := range q.overlays() {
					o.Discard()
				}
			}
		case op < 89: // writes into the overlay that bypass the store
			k, v := key(), randRec(rng)
			vb, err := serde.JSON[rec]().Serialize("", v)
			if err != nil {
				t.Fatal(err)
			}
			stored := append(appendTime(nil, rng.Int64N(1<<40)), vb...)
			del := rng.IntN(3) == 0
			for _, o := range p.overlays() {
				b := o.NewBatch()
				if del {
					b.Delete([]byte(k))
				} else {
					b.Put([]byte(k), stored)
				}
				if err := b.Write(); err != nil {
					t.Fatal(err)
				}
			}
		case op < 94:
			lo, hi := key(), key()
			if hi < lo {
				lo, hi = hi, lo
			}
			g, w := scanRecs(t, p.got, lo, hi), scanRecs(t, p.want, lo, hi)
			if len(g) != len(w) {
				t.Fatalf("%s: Range(%s, %s) = %v, want %v", where(), lo, hi, g, w)
			}
			for i := range g {
				if g[i].k != w[i].k || !recEqual(g[i].v, w[i].v) {
					t.Fatalf("%s: Range(%s, %s) = %v, want %v", where(), lo, hi, g, w)
				}
			}
		default: // the committed view reads what the model's base holds
			k := key()
			g, gf, gerr := p.gotView.Get(k)
			vb, wf, werr := p.wantBs.Get([]byte(k))
			var w rec
			if wf {
				if w, werr = serde.JSON[rec]().Deserialize("", vb[8:]); werr != nil {
					t.Fatal(werr)
				}
			}
			if gerr != nil || werr != nil || gf != wf || !recEqual(g, w) {
				t.Fatalf("%s: committed view Get(%s) = %+v %v %v, want %+v %v %v", where(), k, g, gf, gerr, w, wf, werr)
			}
		}
		checkCache(t, c)
	}
}

type kvRec struct {
	k string
	v rec
}

func scanRecs(t *testing.T, s KeyValueStore[string, rec], lo, hi string) []kvRec {
	t.Helper()
	it, err := s.Range(lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	defer mustCloseIter(t, it)
	var out []kvRec
	for it.Next() {
		out = append(out, kvRec{it.Key(), it.Value()})
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// countingSerde counts Deserialize calls.
type countingSerde struct {
	strSerde
	decodes *atomic.Int64
}

func (s countingSerde) Deserialize(topic string, b []byte) (string, error) {
	s.decodes.Add(1)
	return s.strSerde.Deserialize(topic, b)
}

// countingEngine counts Gets.
type countingEngine struct {
	Engine
	gets atomic.Int64
}

func (e *countingEngine) Get(k []byte) ([]byte, bool, error) {
	e.gets.Add(1)
	return e.Engine.Get(k)
}

// TestCacheHitSkipsEngineAndSerde: a hit reads neither the engine nor the
// serde; a read makes the entry and a write to a cached key updates it (a
// value put is decoded once, on its first read); a write to a key not
// cached makes no entry; a cached "absent" is a hit too.
func TestCacheHitSkipsEngineAndSerde(t *testing.T) {
	var decodes atomic.Int64
	e := &countingEngine{Engine: NewMemoryEngine()}
	defer mustClose(t, e)
	c := NewCache(1 << 20)
	s := NewKeyValueStore[string, string]("s", e, strSerde{}, countingSerde{decodes: &decodes}, WithCache(c))
	mustPutKV(t, s, "a", "1")
	if st := c.Stats(); st.Entries != 0 {
		t.Fatalf("a write to a key not cached made an entry: %+v", st)
	}
	mustGetKV[string, string](t, s, "a", "1", true) // a miss: the engine, a decode, an entry
	mustPutKV(t, s, "a", "2")                       // updates the entry
	for range 3 {
		if v, ok, err := s.Get("a"); err != nil || !ok || v != "2" {
			t.Fatalf("Get(a) = %q %v %v", v, ok, err)
		}
		if _, ok, err := s.Get("nope"); err != nil || ok {
			t.Fatalf("Get(nope) = %v %v", ok, err)
		}
	}
	if e.gets.Load() != 2 || decodes.Load() != 2 {
		t.Fatalf("engine reads %d (want 2: a's first read, the absent key), decodes %d (want 2: a's two values)", e.gets.Load(), decodes.Load())
	}
	if st := c.Stats(); st.Hits != 5 || st.Misses != 2 || st.Entries != 2 {
		t.Fatalf("Stats = %+v, want 5 hits, 2 misses, 2 entries", st)
	}
}

func mustPutKV[K, V any](t *testing.T, s KeyValueStore[K, V], k K, v V) {
	t.Helper()
	if err := s.Put(k, v); err != nil {
		t.Fatal(err)
	}
}

func mustGetKV[K, V comparable](t *testing.T, s ReadOnlyKeyValueStore[K, V], k K, want V, wantFound bool) {
	t.Helper()
	v, ok, err := s.Get(k)
	if err != nil || ok != wantFound || v != want {
		t.Fatalf("%s: Get(%v) = %v %v %v, want %v %v", s.Name(), k, v, ok, err, want, wantFound)
	}
}

// TestCacheEvictionUnderByteBound: entries of two stores share one bound;
// the least recently used go first; the bound holds after every write
// and when it is lowered; an entry larger than the bound is not cached and
// its key still reads right.
func TestCacheEvictionUnderByteBound(t *testing.T) {
	const per = 2 + 10 + cacheEntryOverhead + 16 // key, value, overhead, sizeof(string)
	c := NewCache(3 * per)
	a := NewKeyValueStore[string, string]("a", NewMemoryEngine(), strSerde{}, strSerde{}, WithCache(c))
	b := NewKeyValueStore[string, string]("b", NewMemoryEngine(), strSerde{}, strSerde{}, WithCache(c))
	val := func(i int) string { return fmt.Sprintf("value%05d", i) }
	// A read makes an entry (a write only updates one).
	putGet := func(s KeyValueStore[string, string], k, v string) {
		t.Helper()
		mustPutKV(t, s, k, v)
		mustGetKV(t, s, k, v, true)
	}
	putGet(a, "k1", val(1))
	putGet(b, "k2", val(2))
	putGet(a, "k3", val(3))
	if st := c.Stats(); st.Bytes != 3*per || st.Entries != 3 || st.Evictions != 0 {
		t.Fatalf("after 3 keys: %+v, want 3 entries of %d bytes", st, per)
	}
	mustGetKV(t, a, "k1", val(1), true) // k1 is now the most recently used: b's k2 is the oldest
	// The cache is full: a key that misses once is not admitted (a key
	// read once is likely not read again), at its second miss it is.
	putGet(b, "k4", val(4))
	if st := c.Stats(); st.Entries != 3 || st.Evictions != 0 {
		t.Fatalf("after a 4th key read once: %+v, want it not admitted", st)
	}
	mustGetKV(t, b, "k4", val(4), true)
	if st := c.Stats(); st.Bytes != 3*per || st.Evictions != 1 {
		t.Fatalf("after a 4th key read twice: %+v, want one eviction", st)
	}
	misses := c.Stats().Misses
	mustGetKV(t, a, "k1", val(1), true)
	mustGetKV(t, a, "k3", val(3), true)
	mustGetKV(t, b, "k4", val(4), true)
	if got := c.Stats().Misses - misses; got != 0 {
		t.Fatalf("k1, k3, k4 should be cached: %d misses", got)
	}
	mustGetKV(t, b, "k2", val(2), true) // evicted: read from the engine
	if got := c.Stats().Misses - misses; got != 1 {
		t.Fatalf("k2 should have been evicted: %d misses", got)
	}
	checkCache(t, c)

	big := string(make([]byte, 4*per))
	mustPutKV(t, a, "k1", big) // too big: its old entry goes, nothing replaces it
	checkCache(t, c)
	mustGetKV(t, a, "k1", big, true)
	if st := c.Stats(); st.Bytes > st.MaxBytes {
		t.Fatalf("%+v: over the bound", st)
	}

	// Random writes and reads of values of random sizes.
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 5000 {
		s := []KeyValueStore[string, string]{a, b}[rng.IntN(2)]
		k := fmt.Sprintf("k%d", rng.IntN(30))
		if rng.IntN(2) == 0 {
			mustPutKV(t, s, k, string(make([]byte, rng.IntN(2*per))))
		} else if _, _, err := s.Get(k); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			c.SetMaxBytes(int64(rng.IntN(10 * per)))
		}
		checkCache(t, c)
	}
	c.SetMaxBytes(0)
	if st := c.Stats(); st.Bytes != 0 || st.Entries != 0 {
		t.Fatalf("a zero bound holds %+v", st)
	}
	c.SetMaxBytes(1 << 20)
	mustPutKV(t, a, "x", "y")
	c.Clear()
	if st := c.Stats(); st.Bytes != 0 || st.Entries != 0 {
		t.Fatalf("Clear left %+v", st)
	}
	mustGetKV(t, a, "x", "y", true)
	checkCache(t, c)
}

// TestCacheRollbackOfFailedRecord: a failed record's writes are undone
// in the overlay (RollbackToMark); the cache must forget them too, both
// the entries its Puts made and one a Get filled from the overlay while
// the record's write was pending there.
func TestCacheRollbackOfFailedRecord(t *testing.T) {
	c := NewCache(1 << 20)
	o := NewOverlay(NewMemoryEngine())
	defer mustClose(t, o)
	s := NewKeyValueStore[string, string]("s", o, strSerde{}, strSerde{}, WithCache(c))
	mustPutKV(t, s, "a", "committed")
	mustPutKV(t, s, "b", "committed")
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	mustGetKV(t, s, "a", "committed", true)
	o.Mark()
	mustPutKV(t, s, "a", "failed")
	mustPutKV(t, s, "new", "failed")
	if err := s.Delete("b"); err != nil {
		t.Fatal(err)
	}
	mustGetKV(t, s, "a", "failed", true)
	mustGetKV(t, s, "b", "", false)
	// A Get refills "new" from the overlay's pending write after the
	// cache lost it.
	c.Clear()
	mustGetKV(t, s, "new", "failed", true)
	o.RollbackToMark()
	mustGetKV(t, s, "a", "committed", true)
	mustGetKV(t, s, "b", "committed", true)
	mustGetKV(t, s, "new", "", false)
	checkCache(t, c)
}

// TestCacheAbortedWritesNotVisible: under exactly-once a task's writes
// since its last commit die with an aborted transaction: the runtime
// discards the overlays, or closes the task and opens it again. Neither
// may leave an uncommitted value visible through the cache, even when the
// reopened stores share the Cache.
func TestCacheAbortedWritesNotVisible(t *testing.T) {
	dir := t.TempDir()
	c := NewCache(1 << 20)
	open := func() (*Overlay, KeyValueStore[string, string]) {
		e, err := openLevelDB(dir, LDBTestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		o := NewOverlay(e)
		return o, NewKeyValueStore[string, string]("s", o, strSerde{}, strSerde{}, WithCache(c))
	}
	o, s := open()
	mustPutKV(t, s, "k", "committed")
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	mustPutKV(t, s, "k", "aborted")
	mustPutKV(t, s, "other", "aborted")
	mustGetKV(t, s, "k", "aborted", true)
	o.Discard() // the transaction aborted
	mustGetKV(t, s, "k", "committed", true)
	mustGetKV(t, s, "other", "", false)

	mustPutKV(t, s, "k", "aborted again")
	mustGetKV(t, s, "k", "aborted again", true)
	mustClose(t, o) // the task is closed without a commit
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("the closed store left %+v in the cache", st)
	}
	o, s = open()
	defer mustClose(t, o)
	mustGetKV(t, s, "k", "committed", true)
	checkCache(t, c)
}

// TestCacheRestoreAndRebalance: a task moves away, the changelog moves on
// without it (another instance's writes), and it moves back: the restored
// engine, not what the cache held, answers, also when the reopened store
// shares the old Cache. Writes that reach the live overlay without going
// through the store (a changelog batch applied to it, as a restore or a
// standby would) make the cache forget the key; a table's source updates
// arrive through the store and replace the cached value.
func TestCacheRestoreAndRebalance(t *testing.T) {
	dir := t.TempDir()
	c := NewCache(1 << 20)
	log := &memLog{}
	var o *Overlay
	var s KeyValueStore[string, string]
	var cp int64
	var hasCP bool
	open := func() {
		res, err := Restore(t.Context(), RestoreConfig{Store: "s", Opener: levelDBOpener(dir, LDBTestOptions{}),
			Reader: log, Checkpoint: cp, HasCheckpoint: hasCP, Logger: quietLogger(nil)})
		if err != nil {
			t.Fatal(err)
		}
		cp, hasCP = res.Offset, true
		o = NewOverlay(res.Engine)
		s = NewKeyValueStore[string, string]("s", o, strSerde{}, strSerde{}, WithCache(c), WithChangelog("s-changelog", 0, logAppender{log}))
	}
	open()
	mustPutKV(t, s, "a", "1")
	mustPutKV(t, s, "b", "1")
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	cp = log.next
	mustGetKV(t, s, "a", "1", true)
	mustGetKV(t, s, "b", "1", true)
	mustGetKV(t, s, "c", "", false)

	mustClose(t, o) // revoked
	log.append("a", []byte("2"))
	log.append("b", nil)
	log.append("c", []byte("2"))
	open() // assigned again: restores the tail
	mustGetKV(t, s, "a", "2", true)
	mustGetKV(t, s, "b", "", false)
	mustGetKV(t, s, "c", "2", true)

	// A changelog batch applied to the live overlay.
	b := o.NewBatch()
	b.Put([]byte("a"), []byte("3"))
	b.Delete([]byte("c"))
	if err := b.Write(); err != nil {
		t.Fatal(err)
	}
	mustGetKV(t, s, "a", "3", true)
	mustGetKV(t, s, "c", "", false)
	// So is a Put to the overlay itself.
	if err := o.Put([]byte("b"), []byte("4")); err != nil {
		t.Fatal(err)
	}
	mustGetKV(t, s, "b", "4", true)
	// A table's update arrives through its store.
	mustPutKV(t, s, "a", "5")
	mustGetKV(t, s, "a", "5", true)
	mustClose(t, o)
	checkCache(t, c)
}

type logAppender struct{ l *memLog }

func (a logAppender) SendChangelog(_ string, _ int32, key, value []byte) error {
	a.l.append(string(key), slices.Clone(value))
	return nil
}

// TestCacheQueriesReadCommittedOnly: while the task's goroutine writes,
// reads (filling the cache), commits and rolls back, queries on other
// goroutines read the committed view: every value they see was committed
// (each commit writes its number under every key, and a pending write a
// number no commit has reached), and the cache is never touched by them
// (-race). The uncommitted view sees pending writes but no rolled back
// ones once the rollback is done.
func TestCacheQueriesReadCommittedOnly(t *testing.T) {
	c := NewCache(4_000)
	o := NewOverlay(NewMemoryEngine())
	defer mustClose(t, o)
	s := NewKeyValueStore[string, uint64]("s", o, strSerde{}, u64Serde{}, WithCache(c))
	committed := QueryView(s, ReadCommitted).(KeyValueStore[string, uint64])
	uncommitted := QueryView(s, ReadUncommitted).(KeyValueStore[string, uint64])
	if QueryView(committed, ReadUncommitted) != uncommitted {
		t.Fatal("a view's views differ from its store's")
	}
	if err := committed.Put("k", 1); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Put on a query view: %v, want ErrReadOnly", err)
	}
	const keys = 20
	key := func(i int) string { return fmt.Sprintf("k%02d", i) }
	// lastCommit is the number of the last commit done, ceiling that of
	// the last one begun.
	var lastCommit, ceiling atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Value
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 5))
			for {
				select {
				case <-done:
					return
				default:
				}
				floor := lastCommit.Load()
				if rng.IntN(2) == 0 {
					v, ok, err := committed.Get(key(rng.IntN(keys)))
					ceil := ceiling.Load()
					if err != nil || (floor > 0 && (!ok || v < floor || v > ceil || v%2 != 0)) {
						bad.Store(fmt.Sprintf("committed Get = %d %v %v, commits %d..%d", v, ok, err, floor, ceil))
						return
					}
					continue
				}
				it, err := IterateBytes(committed, nil, nil, false)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				for it.Next() {
					if v, ceil := it.Value(), ceiling.Load(); v%2 != 0 || v < floor || v > ceil {
						bad.Store(fmt.Sprintf("committed scan saw %d, commits %d..%d", v, floor, ceil))
					}
				}
				if err := errors.Join(it.Err(), it.Close()); err != nil {
					bad.Store(err.Error())
					return
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for n := uint64(2); n < 600; n += 2 {
		for i := range keys {
			mustPutKV(t, s, key(i), n)
		}
		// Pending writes with odd numbers, some rolled back.
		o.Mark()
		for range 5 {
			mustPutKV(t, s, key(rng.IntN(keys)), n+1)
			if _, _, err := s.Get(key(rng.IntN(keys))); err != nil {
				t.Fatal(err)
			}
		}
		o.RollbackToMark()
		for i := range keys {
			if v, ok, err := uncommitted.Get(key(i)); err != nil || !ok || v != n {
				t.Fatalf("uncommitted view after a rollback: %d %v %v, want %d", v, ok, err, n)
			}
			mustGetKV(t, s, key(i), n, true)
		}
		ceiling.Store(n)
		if err := o.Commit(); err != nil {
			t.Fatal(err)
		}
		lastCommit.Store(n)
		// Pending (cached) until the next round overwrites them: never
		// committed.
		for range 3 {
			k := key(rng.IntN(keys))
			mustPutKV(t, s, k, n+1)
			mustGetKV(t, s, k, n+1, true)
		}
	}
	close(done)
	wg.Wait()
	if b := bad.Load(); b != nil {
		t.Fatal(b)
	}
	checkCache(t, c)
}

// TestCacheValuesNotShared: a caller that changes a value it got or put
// does not change what the store holds, for []byte, a struct with
// references, a *big.Rat, a generic map and a type the copy cannot follow
// (kept encoded).
func TestCacheValuesNotShared(t *testing.T) {
	c := NewCache(1 << 20)
	t.Run("bytes", func(t *testing.T) {
		s := NewKeyValueStore("b", NewMemoryEngine(), strSerde{}, serde.Bytes(), WithCache(c))
		v := []byte("abc")
		mustPutKV(t, s, "k", v)
		v[0] = 'X'
		for range 2 {
			got, _, err := s.Get("k")
			if err != nil || string(got) != "abc" {
				t.Fatalf("Get = %q %v, want abc", got, err)
			}
			got[1] = 'Y'
		}
	})
	t.Run("struct", func(t *testing.T) {
		s := NewKeyValueStore("r", NewMemoryEngine(), strSerde{}, serde.JSON[rec](), WithCache(c))
		p := 7
		v := rec{N: 1, Tags: []string{"a"}, M: map[string]int{"m": 1}, P: &p, Amount: big.NewRat(1, 3)}
		want := rec{N: 1, Tags: []string{"a"}, M: map[string]int{"m": 1}, P: new(7), Amount: big.NewRat(1, 3)}
		mustPutKV(t, s, "k", v)
		scribble(&v)
		for range 3 {
			got, _, err := s.Get("k")
			if err != nil || !recEqual(got, want) {
				t.Fatalf("Get = %+v %v, want %+v", got, err, want)
			}
			scribble(&got)
		}
	})
	t.Run("generic", func(t *testing.T) {
		s := NewKeyValueStore("g", NewMemoryEngine(), strSerde{}, serde.JSON[any](), WithCache(c))
		mustPutKV(t, s, "k", any(map[string]any{"list": []any{1.0, "x"}}))
		for range 3 {
			got, _, err := s.Get("k")
			if err != nil || !reflect.DeepEqual(got, map[string]any{"list": []any{1.0, "x"}}) {
				t.Fatalf("Get = %#v %v", got, err)
			}
			got.(map[string]any)["list"].([]any)[0] = "scribbled"
			got.(map[string]any)["new"] = 1
		}
	})
	t.Run("uncopyable", func(t *testing.T) {
		var decodes atomic.Int64
		s := NewKeyValueStore("u", NewMemoryEngine(), strSerde{}, opaqueSerde{&decodes}, WithCache(c))
		mustPutKV(t, s, "k", opaque{s: []string{"a"}})
		for i := range 3 {
			got, _, err := s.Get("k")
			if err != nil || !reflect.DeepEqual(got.s, []string{"a"}) {
				t.Fatalf("Get = %#v %v", got, err)
			}
			got.s[0] = "scribbled"
			if decodes.Load() != int64(i+1) {
				t.Fatalf("a value that cannot be copied is decoded on every hit: %d decodes after %d Gets", decodes.Load(), i+1)
			}
		}
	})
	t.Run("uncopyable-aliasing", func(t *testing.T) {
		s := NewKeyValueStore("ua", NewMemoryEngine(), strSerde{}, opaqueBytesSerde{}, WithCache(c))
		mustPutKV(t, s, "k", opaqueBytes{b: []byte("abc")})
		for range 3 {
			got, _, err := s.Get("k")
			if err != nil || string(got.b) != "abc" {
				t.Fatalf("Get = %q %v, want abc", got.b, err)
			}
			got.b[0] = 'X'
		}
	})
	// The same, for a key whose first read comes from the engine (a
	// restored key, an evicted one): the entry made by that read must not
	// keep the bytes the returned value shares.
	t.Run("uncopyable-aliasing-read", func(t *testing.T) {
		e := NewMemoryEngine()
		if err := e.Put([]byte("k"), []byte("abc")); err != nil {
			t.Fatal(err)
		}
		s := NewKeyValueStore("ur", e, strSerde{}, opaqueBytesSerde{}, WithCache(c))
		for range 3 {
			got, _, err := s.Get("k")
			if err != nil || string(got.b) != "abc" {
				t.Fatalf("Get = %q %v, want abc", got.b, err)
			}
			got.b[0] = 'X'
		}
	})
	checkCache(t, c)
}

// opaqueBytes cannot be copied either, and its serde returns values that
// share the bytes they were decoded from.
type opaqueBytes struct{ b []byte }

type opaqueBytesSerde struct{}

func (opaqueBytesSerde) Serialize(_ string, v opaqueBytes) ([]byte, error) { return v.b, nil }
func (opaqueBytesSerde) Deserialize(_ string, b []byte) (opaqueBytes, error) {
	return opaqueBytes{b: b}, nil
}

// opaque holds a reference in an unexported field: the cache cannot copy
// it and keeps it encoded.
type opaque struct{ s []string }

type opaqueSerde struct{ decodes *atomic.Int64 }

func (opaqueSerde) Serialize(_ string, v opaque) ([]byte, error) {
	return serde.JSON[[]string]().Serialize("", v.s)
}

func (o opaqueSerde) Deserialize(_ string, b []byte) (opaque, error) {
	o.decodes.Add(1)
	s, err := serde.JSON[[]string]().Deserialize("", b)
	return opaque{s: s}, err
}

// TestCacheCopier checks the copy plans: what needs no copy, what is deep
// copied, and what cannot be (cycles give up instead of looping).
func TestCacheCopier(t *testing.T) {
	type plain struct {
		A int
		S string
		T time.Time
		X [2]float64
	}
	type node struct {
		V    int
		Next *node
	}
	type withChan struct{ C chan int }
	for _, tc := range []struct {
		t    reflect.Type
		want refKind
	}{
		{reflect.TypeFor[int64](), refsNone},
		{reflect.TypeFor[string](), refsNone},
		{reflect.TypeFor[plain](), refsNone},
		{reflect.TypeFor[[]int](), refsCopy},
		{reflect.TypeFor[rec](), refsCopy},
		{reflect.TypeFor[*big.Rat](), refsCopy},
		{reflect.TypeFor[node](), refsCopy},
		{reflect.TypeFor[any](), refsCopy},
		{reflect.TypeFor[withChan](), refsNever},
		{reflect.TypeFor[opaque](), refsNever},
		{reflect.TypeFor[map[*int]int](), refsNever},
	} {
		if got := planFor(tc.t).refs; got != tc.want {
			t.Errorf("%v: refs %d, want %d", tc.t, got, tc.want)
		}
	}
	list := &node{V: 1, Next: &node{V: 2}}
	cp := newValueCopier[*node]()
	got, ok := cp.clone(list)
	if !ok || got == list || got.Next == list.Next || got.Next.V != 2 {
		t.Fatalf("copy of a list: %+v %v", got, ok)
	}
	list.Next.Next = list // a cycle
	if _, ok := cp.clone(list); ok {
		t.Fatal("a cyclic value was copied")
	}
	f := new(big.Float).SetMode(big.ToZero).SetPrec(20).SetFloat64(1.5)
	fcp := newValueCopier[*big.Float]()
	cf, ok := fcp.clone(f)
	if !ok || cf == f || cf.Cmp(f) != 0 || cf.Mode() != big.ToZero || cf.Prec() != 20 {
		t.Fatalf("copy of a big.Float: %v %v %v %v", cf, ok, cf.Mode(), cf.Prec())
	}
}

// TestCacheTimestamped: a timestamped store's cache keeps the timestamp;
// a value put without one reads back with the zero time.
func TestCacheTimestamped(t *testing.T) {
	c := NewCache(1 << 20)
	s := NewTimestampedKeyValueStore[string, string]("s", NewMemoryEngine(), strSerde{}, strSerde{}, WithCache(c))
	at := time.UnixMilli(1_700_000_000_123)
	if err := s.PutWithTimestamp("a", "1", at); err != nil {
		t.Fatal(err)
	}
	mustPutKV(t, s, "b", "2")
	if _, _, _, err := s.GetWithTimestamp("a"); err != nil { // makes a's entry
		t.Fatal(err)
	}
	if _, _, _, err := s.GetWithTimestamp("b"); err != nil {
		t.Fatal(err)
	}
	// A write to a cached key updates its entry's timestamp too.
	if err := s.PutWithTimestamp("a", "1", at); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		v, ts, ok, err := s.GetWithTimestamp("a")
		if err != nil || !ok || v != "1" || !ts.Equal(at) {
			t.Fatalf("GetWithTimestamp(a) = %q %v %v %v", v, ts, ok, err)
		}
		v, ts, ok, err = s.GetWithTimestamp("b")
		if err != nil || !ok || v != "2" || !ts.IsZero() {
			t.Fatalf("GetWithTimestamp(b) = %q %v %v %v", v, ts, ok, err)
		}
	}
	if st := c.Stats(); st.Hits != 4 {
		t.Fatalf("Stats = %+v, want 4 hits", st)
	}
}

// TestCacheWriteErrorForgetsKey: a write the engine refuses leaves no
// entry for the key.
func TestCacheWriteErrorForgetsKey(t *testing.T) {
	c := NewCache(1 << 20)
	o := NewOverlay(NewMemoryEngine())
	s := NewKeyValueStore[string, string]("s", o, strSerde{}, strSerde{}, WithCache(c))
	mustPutKV(t, s, "k", "v")
	mustClose(t, o)
	if err := s.Put("k", "w"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put on a closed engine: %v", err)
	}
	if st := c.Stats(); st.Entries != 0 {
		t.Fatalf("Stats = %+v, want no entries", st)
	}
	if _, _, err := s.Get("k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get on a closed engine: %v", err)
	}
}

// lossy is a value its serde does not carry whole: Hidden is dropped and
// At is kept to the millisecond, as an Avro timestamp-millis would.
type lossy struct {
	Hidden int `json:"-"`
	At     time.Time
}

type lossySerde struct{}

func (lossySerde) Serialize(_ string, v lossy) ([]byte, error) {
	return serde.Int64().Serialize("", v.At.UnixMilli())
}

func (lossySerde) Deserialize(_ string, b []byte) (lossy, error) {
	ms, err := serde.Int64().Deserialize("", b)
	return lossy{At: time.UnixMilli(ms)}, err
}

// TestCacheReadsWhatTheSerdeReads: a Get answered from the cache returns
// what the same Get would return without it: the value as its serde reads
// it back, not the value as it was put.
func TestCacheReadsWhatTheSerdeReads(t *testing.T) {
	c := NewCache(1 << 20)
	s := NewKeyValueStore("l", NewMemoryEngine(), strSerde{}, lossySerde{}, WithCache(c))
	at := time.Unix(1_700_000_000, 123_456_789)
	mustPutKV(t, s, "k", lossy{Hidden: 7, At: at})
	want := lossy{At: time.UnixMilli(at.UnixMilli())}
	for range 2 {
		got, ok, err := s.Get("k")
		if err != nil || !ok || got.Hidden != 0 || !got.At.Equal(want.At) {
			t.Fatalf("Get = %+v %v %v, want %+v", got, ok, err, want)
		}
	}
}

// TestCacheOverOverlayLeavesPendingWritesToTheOverlay: over an overlay, a
// key written since the last commit is read from the overlay's pending
// writes without touching the cache, and the store's writes leave the
// cache alone; the commit gives a cached key's entry the committed value
// (or absence), so the first read after it hits without the base. A
// value read from the pending writes shares nothing with them.
func TestCacheOverOverlayLeavesPendingWritesToTheOverlay(t *testing.T) {
	base := &countingEngine{Engine: NewMemoryEngine()}
	o := NewOverlay(base)
	defer mustClose(t, o)
	c := NewCache(1 << 20)
	s := NewKeyValueStore[string, string]("s", o, strSerde{}, strSerde{}, WithCache(c))
	stats := func(hits, misses, entries, reads int64) {
		t.Helper()
		st := c.Stats()
		if st.Hits != hits || st.Misses != misses || st.Entries != entries || base.gets.Load() != reads {
			t.Fatalf("Stats = %+v, base reads %d; want %d hits, %d misses, %d entries, %d base reads", st, base.gets.Load(), hits, misses, entries, reads)
		}
	}
	commit := func() {
		t.Helper()
		if err := o.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	mustPutKV(t, s, "a", "1")
	for range 3 {
		mustGetKV[string, string](t, s, "a", "1", true)
	}
	stats(0, 0, 0, 0)
	commit()
	mustGetKV[string, string](t, s, "a", "1", true) // a miss: the base, an entry
	mustGetKV[string, string](t, s, "a", "1", true) // a hit
	stats(1, 1, 1, 1)
	mustPutKV(t, s, "a", "2")
	mustGetKV[string, string](t, s, "a", "2", true) // the pending write
	stats(1, 1, 1, 1)
	commit()
	mustGetKV[string, string](t, s, "a", "2", true) // a hit of the committed value
	stats(2, 1, 1, 1)
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	mustGetKV[string, string](t, s, "a", "", false)
	commit()
	mustGetKV[string, string](t, s, "a", "", false) // a hit of the committed absence
	stats(3, 1, 1, 1)

	// A timestamped store's entry takes the committed timestamp too.
	ts := NewTimestampedKeyValueStore[string, string]("ts", o, strSerde{}, strSerde{}, WithCache(c))
	at := time.UnixMilli(1_700_000_000_123)
	if err := ts.PutWithTimestamp("t", "1", at); err != nil {
		t.Fatal(err)
	}
	commit()
	if _, _, _, err := ts.GetWithTimestamp("t"); err != nil { // makes the entry
		t.Fatal(err)
	}
	if err := ts.PutWithTimestamp("t", "2", at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	commit()
	hits := c.Stats().Hits
	if v, got, ok, err := ts.GetWithTimestamp("t"); err != nil || !ok || v != "2" || !got.Equal(at.Add(time.Second)) || c.Stats().Hits != hits+1 {
		t.Fatalf("GetWithTimestamp = %q %v %v %v (hits %d → %d), want a hit of 2 at %v", v, got, ok, err, hits, c.Stats().Hits, at.Add(time.Second))
	}

	ua := NewKeyValueStore("ua", o, strSerde{}, opaqueBytesSerde{}, WithCache(c))
	mustPutKV(t, ua, "k", opaqueBytes{b: []byte("abc")})
	for range 2 {
		got, _, err := ua.Get("k")
		if err != nil || string(got.b) != "abc" {
			t.Fatalf("Get = %q %v, want abc", got.b, err)
		}
		got.b[0] = 'X'
	}
}
