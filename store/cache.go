package store

import (
	"bytes"
	"hash/maphash"
	"reflect"
	"sync/atomic"
)

// Cache is a task's record cache: it keeps recently used values of the
// task's key-value stores decoded, so that a lookup of a hot key (a table
// lookup in a join, the current aggregate of a busy key) is answered
// without the engine (no overlay or LevelDB read) and without the value
// serde. Stores share it through [WithCache]; it holds at most MaxBytes
// approximate bytes and evicts the least recently used entries to stay
// under it.
//
// # What it holds and how it stays right
//
// An entry is a key's value as the store reads it now: a decoded value, the
// encoded bytes of a value written since (decoded by the next Get, and kept
// decoded from then on; from the second Get for values that take a deep
// copy, see below), or "absent". A Get that misses makes the key's entry
// (once the cache is full, only at the key's second miss: a filter of
// hashed keys, cleared every 16,384 keys, remembers the first); a write
// never makes one. The cache is write-through: every Put and Delete of a
// store goes to its engine (and changelog) at once, as without a cache; it
// never holds a write the engine does not have, so iterators (which read
// the engine, not the cache) see every write, and nothing is flushed at
// commit. Outputs downstream are never held back or suppressed. Changelog
// records are not de-duplicated here: the runtime already sends one per
// key per commit.
//
// For a store over an [Overlay] the cache holds committed values only: a
// Get of a key with a pending write reads the overlay's pending write, the
// store's own writes leave the entry alone, and Commit gives every cached
// key it wrote the committed value (or absence). A record's RollbackToMark
// removes the entries of the keys it restores, Discard and Close remove
// the store's entries, and a write to the overlay that did not come
// through the store (a batch, a restore into a live engine) removes that
// key's entry. Without an overlay, a store's write updates the key's
// entry if it has one. Writes that reach an engine other than through the
// store and its overlay are not seen: call Clear after them.
//
// A Get returns the same value the store would return without a cache: a
// value put is cached as its encoded bytes, so that the first read decodes
// it as an uncached read would (a serde that rounds, a timestamp to
// milliseconds, or drops a field gives the same answer either way).
//
// # Values are not shared with callers
//
// The value a Get returns is the caller's to change: the cache keeps its
// own copy. Values of types without pointers, slices, maps or interfaces
// (numbers, strings, time.Time, structs and arrays of these) are copied by
// assignment, at no cost. []byte values are cloned. Other types are deep
// copied on the way in and out (pointers, slices, maps, interfaces and
// *big.Int, *big.Rat or *big.Float, which Avro decimals decode to, are
// followed); a type the copy cannot follow (a chan or func, an unexported
// field holding a reference, a value nested more than 1,000 levels deep)
// is kept encoded and decoded on every hit, which still saves the engine
// lookup.
//
// # Bytes
//
// An entry counts its key's bytes, its value's encoded bytes and a fixed
// overhead (about 128 bytes plus the in-memory size of the value type) for
// the entry, its list links and its map slot. The decoded form of a value
// is assumed to take about as much as its encoding. The total never exceeds
// MaxBytes: an entry larger than the bound is not cached.
//
// # Goroutines and interactive queries
//
// A Cache and the stores using it belong to the task's goroutine; only
// Stats may be called from others. Interactive queries run on other
// goroutines and must not read a cached store: hand them [QueryView],
// which reads the engine (or, with [ReadCommitted], only committed data)
// and never the cache, so a query never sees a value through the cache
// that it would not see without one.
//
// Use one Cache per task, made when the task's stores are opened and
// dropped with them (or Clear it before it serves reopened stores). Do not
// use one for a store written by another goroutine (a global table).
type Cache struct {
	max   int64
	bytes int64
	n     int64
	// lru is the sentinel of a circular list of entries, most recently
	// used first (lru.next).
	lru cacheNode

	hits, misses, evictions atomic.Int64
	pubBytes, pubEntries    atomic.Int64
	pubMax                  atomic.Int64

	// door is the admission filter of a full cache (admit): one bit per
	// hash of a key that missed once, all cleared after doorReset keys.
	door     []uint64
	doorSeen int
	seed     maphash.Seed
}

// The admission filter's size in bits, and how many keys it takes before
// it is cleared (a quarter of its bits, so that few keys share one).
const (
	doorBits  = 1 << 16
	doorReset = doorBits / 4
)

// admit reports whether a key that missed, needing size bytes, may take an
// entry. It may while the cache has room; once the cache is full, only a
// key that missed before since the filter was last cleared (a key read
// once is likely not read again: caching it would evict one that is). A
// table read uniformly, larger than the cache, would otherwise pay an
// entry and an eviction per read for a hit rate of the cache's share of
// it; a hot key still gets in at its second miss.
func (c *Cache) admit(kb []byte, size int64) bool {
	if c.bytes+size <= c.max {
		return true
	}
	if c.door == nil {
		c.door = make([]uint64, doorBits/64)
		c.seed = maphash.MakeSeed()
	}
	h := maphash.Bytes(c.seed, kb) % doorBits
	word, bit := h/64, uint64(1)<<(h%64)
	if c.door[word]&bit != 0 {
		return true
	}
	c.door[word] |= bit
	if c.doorSeen++; c.doorSeen >= doorReset {
		clear(c.door)
		c.doorSeen = 0
	}
	return false
}

// CacheStats are a Cache's counters and gauges, as Stats reads them.
type CacheStats struct {
	// Hits counts Gets answered from the cache (a cached "absent"
	// included); Misses counts Gets that read the engine.
	Hits, Misses int64
	// Evictions counts entries dropped to stay under MaxBytes.
	Evictions int64
	// Entries and Bytes are what the cache holds now.
	Entries, Bytes int64
	// MaxBytes is the bound.
	MaxBytes int64
}

// cacheNode is one entry's place in the LRU list. Stores embed it in their
// entries.
type cacheNode struct {
	prev, next *cacheNode
	owner      cacheOwner
	key        string
	size       int64
}

// cacheOwner is the store whose map holds an entry: it forgets the entry
// when the cache evicts it.
type cacheOwner interface {
	evicted(key string)
}

// NewCache returns an empty cache of at most maxBytes approximate bytes
// (see Cache). A bound of 0 or less caches nothing.
func NewCache(maxBytes int64) *Cache {
	c := &Cache{max: max(maxBytes, 0)}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	c.pubMax.Store(c.max)
	return c
}

// Stats returns the cache's counters. It is safe to call from any
// goroutine.
func (c *Cache) Stats() CacheStats {
	return CacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load(),
		Entries: c.pubEntries.Load(), Bytes: c.pubBytes.Load(), MaxBytes: c.pubMax.Load(),
	}
}

// SetMaxBytes changes the bound, evicting least recently used entries
// until the cache holds at most maxBytes (0 or less: nothing). Call it on
// the task's goroutine.
func (c *Cache) SetMaxBytes(maxBytes int64) {
	c.max = max(maxBytes, 0)
	c.pubMax.Store(c.max)
	c.shrink()
	c.publish()
}

// Clear drops every entry (Stats' counters stay). Call it on the task's
// goroutine.
func (c *Cache) Clear() {
	for n := c.lru.next; n != &c.lru; {
		next := n.next
		n.owner.evicted(n.key)
		n.prev, n.next = nil, nil
		n = next
	}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	c.bytes, c.n = 0, 0
	c.publish()
}

func (c *Cache) publish() {
	c.pubBytes.Store(c.bytes)
	c.pubEntries.Store(c.n)
}

// touch makes n the most recently used entry.
func (c *Cache) touch(n *cacheNode) {
	if c.lru.next == n {
		return
	}
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = &c.lru, c.lru.next
	c.lru.next.prev = n
	c.lru.next = n
}

// fits reports whether an entry of size bytes may be cached at all.
func (c *Cache) fits(size int64) bool { return size <= c.max }

// add links a new entry of n.size bytes (n.size <= c.max) as the most
// recently used, then evicts others until the bound holds.
func (c *Cache) add(n *cacheNode) {
	n.prev, n.next = &c.lru, c.lru.next
	c.lru.next.prev = n
	c.lru.next = n
	c.bytes += n.size
	c.n++
	c.shrink()
	c.publish()
}

// resize changes the size of linked entry n (to at most c.max), makes it
// the most recently used and evicts others until the bound holds.
func (c *Cache) resize(n *cacheNode, size int64) {
	c.bytes += size - n.size
	n.size = size
	c.touch(n)
	if c.bytes > c.max {
		c.shrink()
	}
	c.publish()
}

// remove unlinks n; its owner has already forgotten it.
func (c *Cache) remove(n *cacheNode) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
	c.bytes -= n.size
	c.n--
	c.publish()
}

// shrink evicts least recently used entries while the cache is over its
// bound.
func (c *Cache) shrink() {
	for c.bytes > c.max && c.lru.prev != &c.lru {
		n := c.lru.prev
		n.prev.next, n.next.prev = n.next, n.prev
		n.prev, n.next = nil, nil
		c.bytes -= n.size
		c.n--
		c.evictions.Add(1)
		n.owner.evicted(n.key)
	}
}

// WithCache gives a key-value store (NewKeyValueStore,
// NewTimestampedKeyValueStore) the record cache c, which the task's other
// stores may share (see Cache). Other stores ignore it. A nil c is no
// cache.
func WithCache(c *Cache) Option {
	return func(cfg *storeConfig) { cfg.cache = c }
}

// cacheEntryOverhead approximates, in bytes, an entry's struct, list
// links and map slot, before the value type's own size.
const cacheEntryOverhead = 128

// kvCache is one key-value store's part of a Cache: its entries by
// serialized key. The store watches its overlay through it.
type kvCache[V any] struct {
	c        *Cache
	m        map[string]*kvEntry[V]
	overhead int64
	copy     valueCopier[V]
	// timestamped: the store's values start with an 8-byte timestamp.
	timestamped bool
}

// kvEntry is a cached key: absent (!found), decoded (v, when !encoded)
// or encoded (enc, the value's bytes without a timestamp). read says an
// encoded entry was read once since it was written.
type kvEntry[V any] struct {
	cacheNode
	v       V
	enc     []byte
	ts      int64
	found   bool
	encoded bool
	read    bool
}

func newKVCache[V any](c *Cache) *kvCache[V] {
	return &kvCache[V]{
		c: c, m: map[string]*kvEntry[V]{},
		overhead: cacheEntryOverhead + int64(reflect.TypeFor[V]().Size()),
		copy:     newValueCopier[V](),
	}
}

// evicted implements cacheOwner.
func (k *kvCache[V]) evicted(key string) { delete(k.m, key) }

// overlayChanged implements overlayWatcher.
func (k *kvCache[V]) overlayChanged(key string) { k.forget(key) }

// overlayDropped implements overlayWatcher.
func (k *kvCache[V]) overlayDropped() {
	for _, e := range k.m {
		k.c.remove(&e.cacheNode)
	}
	clear(k.m)
}

// forget removes key's entry, if any.
func (k *kvCache[V]) forget(key string) {
	if e, ok := k.m[key]; ok {
		delete(k.m, key)
		k.c.remove(&e.cacheNode)
	}
}

// lookup returns key's entry and counts a hit or a miss.
func (k *kvCache[V]) lookup(kb []byte) *kvEntry[V] {
	e := k.m[string(kb)]
	if e == nil {
		k.c.misses.Add(1)
		return nil
	}
	k.c.hits.Add(1)
	k.c.touch(&e.cacheNode)
	return e
}

// set makes key's entry hold what set tells, sized for encLen value
// bytes; an entry that does not fit the bound is removed instead.
func (k *kvCache[V]) set(kb []byte, encLen int, fill func(e *kvEntry[V])) {
	size := int64(len(kb)+encLen) + k.overhead
	e := k.m[string(kb)]
	if !k.c.fits(size) {
		if e != nil {
			k.forget(e.key)
		}
		return
	}
	if e != nil {
		fill(e)
		k.c.resize(&e.cacheNode, size)
		return
	}
	e = &kvEntry[V]{cacheNode: cacheNode{key: string(kb), size: size}}
	e.owner = k
	fill(e)
	k.m[e.key] = e
	k.c.add(&e.cacheNode)
}

// overlayCommitted implements overlayWatcher: an entry of a key the
// commit wrote takes the committed value (the store's reads of a key
// with a pending write go to the overlay meanwhile, and its own writes
// leave the cache alone), so a key read once per commit interval still
// hits after the commit.
func (k *kvCache[V]) overlayCommitted(key string, tagged []byte) {
	e := k.m[key]
	if e == nil {
		return
	}
	if tagged[0] == overlayDelete {
		k.update(e, 0, func(e *kvEntry[V]) {
			var zero V
			e.v, e.enc, e.ts, e.found, e.encoded, e.read = zero, nil, noTimestamp, false, false, false
		})
		return
	}
	v, ts := tagged[1:], int64(noTimestamp)
	if k.timestamped {
		if len(v) < 8 {
			k.forget(key)
			return
		}
		v, ts = v[8:], readTime(v)
	}
	enc := bytes.Clone(v)
	k.update(e, len(enc), func(e *kvEntry[V]) {
		var zero V
		e.v, e.enc, e.ts, e.found, e.encoded, e.read = zero, enc, ts, true, true, false
	})
}

// update makes entry e hold what fill tells, sized for encLen value
// bytes; an entry that no longer fits the bound is removed instead.
func (k *kvCache[V]) update(e *kvEntry[V], encLen int, fill func(e *kvEntry[V])) {
	size := int64(len(e.key)+encLen) + k.overhead
	if !k.c.fits(size) {
		k.forget(e.key)
		return
	}
	fill(e)
	k.c.resize(&e.cacheNode, size)
}

// forgetBytes is forget for a serialized key.
func (k *kvCache[V]) forgetBytes(kb []byte) {
	if e, ok := k.m[string(kb)]; ok {
		delete(k.m, e.key)
		k.c.remove(&e.cacheNode)
	}
}

// cached reports whether key has an entry (no hit or miss is counted).
func (k *kvCache[V]) cached(kb []byte) bool {
	_, ok := k.m[string(kb)]
	return ok
}

// putEncoded caches a written value as its encoded bytes (enc is the
// cache's from now on), or an absent key for enc == nil.
func (k *kvCache[V]) putEncoded(kb, enc []byte, ts int64) {
	k.set(kb, len(enc), func(e *kvEntry[V]) {
		var zero V
		e.v, e.enc, e.ts, e.found, e.encoded, e.read = zero, enc, ts, enc != nil, enc != nil, false
	})
}

// putDecoded caches a value read from the engine (enc its encoded bytes,
// copied if the entry must keep them because the value cannot be copied),
// or an absent key for !found.
func (k *kvCache[V]) putDecoded(kb []byte, v V, enc []byte, ts int64, found bool) {
	if !k.c.admit(kb, int64(len(kb)+len(enc))+k.overhead) {
		return
	}
	k.set(kb, len(enc), func(e *kvEntry[V]) {
		var zero V
		e.v, e.enc, e.ts, e.found, e.encoded = zero, nil, ts, found, false
		if !found {
			return
		}
		if c, ok := k.copy.clone(v); ok {
			e.v = c
		} else {
			// The value read may share enc (a serde may decode into
			// the bytes it is given): keep bytes of the cache's own.
			e.enc, e.encoded = bytes.Clone(enc), true
		}
	})
}

// readEncoded returns the bytes to decode for a read of encoded entry e,
// and whether the entry turns decoded after it (see decoded). A serde may
// return values that share the bytes they were decoded from (serde.Bytes
// does): an entry that keeps its bytes hands out a copy of them.
//
// An entry turns decoded at once when copying its value is free, at its
// second read when the value takes a deep copy (an aggregation reads its
// key's value once between writes: copying it would be wasted), and never
// when its value cannot be copied.
func (k *kvCache[V]) readEncoded(e *kvEntry[V]) (enc []byte, decode bool) {
	if !k.copy.never && (k.copy.fn == nil || e.read) {
		return e.enc, true
	}
	e.read = true
	return bytes.Clone(e.enc), false
}

// decoded turns encoded entry e, whose bytes (handed to the caller's
// serde by readEncoded) decoded to v, into a decoded one holding a copy
// of v; if v cannot be copied after all, the entry keeps a copy of its
// bytes, since v may share them.
func (k *kvCache[V]) decoded(e *kvEntry[V], v V) {
	if c, ok := k.copy.clone(v); ok {
		e.v, e.enc, e.encoded = c, nil, false
		return
	}
	e.enc = bytes.Clone(e.enc)
}
