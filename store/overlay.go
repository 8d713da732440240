package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Overlay is an Engine that keeps every write in memory, on top of a base
// Engine, until Commit applies them to the base in one batch. Reads see the
// overlay first: a key written (or deleted) since the last Commit answers
// from memory, any other key from the base; iterators merge both in key
// order.
//
// The exactly-once runtime wraps each persistent store of a task in an
// Overlay, so that the local store only ever holds writes of committed
// Kafka transactions: the runtime calls Commit after the transaction
// commits, and Discard (or Close) when it aborts. After a crash the base
// therefore holds the last committed state (or an older one, which the
// changelog tail brings forward), never a write that Kafka did not commit.
//
// Pending writes live in a hash map, so that Get and Put cost one map
// operation each. An ordered view of them (a copy-on-write treap, as in
// NewMemoryEngine) is built only when an iterator asks for one; from then
// until the next Commit or Discard writes go to that view instead of the
// map, so that a store that is scanned often (a window store) pays for
// the sort once per commit, not once per scan.
//
// Flush does nothing: the overlay's writes become durable only through
// Commit, which flushes the base. Like the other engines, an Overlay has one
// writer goroutine; Get, Iterate and ApproximateCount are safe for
// concurrent readers (an iterator sees a snapshot of both layers taken when
// it is created).
type Overlay struct {
	base   Engine
	closed atomic.Bool
	// commitMu keeps a Commit's base write from falling between the two
	// snapshots an Iterate takes (pending writes, then the base): Iterate
	// holds it for reading, the base write for writing. Without it an
	// iterator could see writes made after it was created.
	commitMu sync.RWMutex

	// mu guards the pending writes: the writer holds it for writing while
	// it changes them (a batch or a rollback under one hold, so that
	// readers see all of it or none), readers for reading. Iterate holds
	// it for writing when it builds the ordered view.
	mu sync.RWMutex
	// m holds the pending writes, values tagged by overlayPut or
	// overlayDelete, while ordered is nil; it is empty otherwise. Commit
	// and Discard clear it, so that its buckets serve the next commit
	// interval, unless it has grown to more than four times what the
	// interval just ended needed (see reset).
	m map[string][]byte
	// mSize is the most keys m held at a reset since it was made.
	mSize int
	// ordered holds the pending writes in key order once an iterator has
	// asked for them, until the next reset. Its nodes are changed only with
	// mu held for writing (and ordered.mu, which its iterators use).
	ordered *memEngine

	// marked and undo implement Mark/RollbackToMark: undo holds, for
	// every write since the Mark, the pending value it replaced. Only the
	// writer goroutine touches them.
	marked bool
	undo   []overlayUndo

	// watchers are the record caches of the typed stores over this
	// overlay (see Cache). A watcher is told of every change to what the
	// overlay answers that it did not make itself: a write by anyone else
	// (a batch, another store, a restore into the overlay), a rollback,
	// Discard and Close. writer is the watcher whose own write is in
	// progress: it updates its cache itself. Only the writer goroutine
	// touches them, and watchers are called without the overlay's locks.
	watchers []overlayWatcher
	writer   overlayWatcher
}

// overlayWatcher is told what changed under a cache.
type overlayWatcher interface {
	// overlayChanged: what key reads as may have changed.
	overlayChanged(key string)
	// overlayDropped: every pending write was dropped (Discard, Close).
	overlayDropped()
	// overlayCommitted: key's pending write (tagged: overlayPut and the
	// value, or overlayDelete) is now in the base. Called on the writer
	// goroutine under the overlay's read lock: it must not call the
	// overlay, and must copy what it keeps of tagged.
	overlayCommitted(key string, tagged []byte)
}

// watch registers w to be told of changes it did not make (writer
// goroutine only).
func (o *Overlay) watch(w overlayWatcher) { o.watchers = append(o.watchers, w) }

// changed tells the watchers other than the current writer that key may
// read differently now.
func (o *Overlay) changed(key []byte) {
	for _, w := range o.watchers {
		if w != o.writer {
			w.overlayChanged(string(key))
		}
	}
}

// dropped tells every watcher that the pending writes are gone.
func (o *Overlay) dropped() {
	for _, w := range o.watchers {
		w.overlayDropped()
	}
}

// overlayUndo restores one pending key: to prev if had, else to absent.
// A write to the map records key; a write to the ordered view records
// okey, the slice the treap holds (the view is dropped only at a reset,
// which empties undo, so such an entry is always undone in the view).
type overlayUndo struct {
	key  string
	okey []byte
	prev []byte
	had  bool
	tree bool // the write went to the ordered view: okey is set
}

// Tags of the values kept in the overlay's pending writes.
const (
	overlayDelete byte = 0
	overlayPut    byte = 1
)

var overlayTombstone = []byte{overlayDelete}

// minOverlayShrink is the size below which the pending map is always
// reused.
const minOverlayShrink = 4096

// NewOverlay returns an Overlay over base with no pending writes. The
// Overlay owns base from now on: Close closes it.
func NewOverlay(base Engine) *Overlay {
	return &Overlay{base: base, m: make(map[string][]byte)}
}

// reset drops the pending writes. Readers holding an iterator keep their
// snapshot of the ordered view; Get answers from the base from now on.
func (o *Overlay) reset() {
	o.mu.Lock()
	n := len(o.m)
	if o.ordered != nil {
		n = int(o.ordered.count)
	}
	o.ordered = nil
	if o.mSize > minOverlayShrink && n < o.mSize/4 {
		// A burst made the map large: do not keep its memory for good.
		o.m, o.mSize = make(map[string][]byte, n), n
	} else {
		clear(o.m)
		o.mSize = max(o.mSize, n)
	}
	o.mu.Unlock()
	// The undo entries describe the writes just dropped: a rollback now
	// has nothing to undo.
	clear(o.undo)
	o.undo = o.undo[:0]
}

// Mark sets a savepoint: RollbackToMark undoes every write made after it.
// A new Mark replaces the previous one; after Commit or Discard only the
// writes made since can be undone. The runtime marks before each record and rolls
// back when the record fails, so that a failed record leaves no partial
// writes behind.
func (o *Overlay) Mark() {
	o.marked = true
	clear(o.undo)
	o.undo = o.undo[:0]
}

// RollbackToMark undoes every write since the last Mark (readers see the
// store before or after the rollback, never half of it); the Mark stays.
// Without a Mark it does nothing.
func (o *Overlay) RollbackToMark() {
	if len(o.undo) == 0 {
		return
	}
	o.mu.Lock()
	defer o.notifyUndone()
	if t := o.ordered; t != nil {
		t.mu.Lock()
		for i := len(o.undo) - 1; i >= 0; i-- {
			u := o.undo[i]
			k := u.okey
			if !u.tree {
				k = []byte(u.key)
			}
			if u.had {
				t.swapLocked(k, u.prev)
			} else {
				t.deleteLocked(k)
			}
		}
		t.mu.Unlock()
	} else {
		for i := len(o.undo) - 1; i >= 0; i-- {
			// Entries made in the ordered view cannot be here: the
			// view is dropped only by a reset, which empties undo.
			if u := o.undo[i]; u.had {
				o.m[u.key] = u.prev
			} else {
				delete(o.m, u.key)
			}
		}
	}
	o.mu.Unlock()
}

// notifyUndone tells the watchers which keys a rollback restored, then
// forgets the undo entries.
func (o *Overlay) notifyUndone() {
	for _, w := range o.watchers {
		for _, u := range o.undo {
			k := u.key
			if u.tree {
				k = string(u.okey)
			}
			w.overlayChanged(k)
		}
	}
	clear(o.undo)
	o.undo = o.undo[:0]
}

// setLocked sets the pending value of key (a tagged value the overlay
// owns; key is copied) and remembers what it replaced while a Mark is set.
// o.mu must be held for writing.
func (o *Overlay) setLocked(key, tagged []byte) {
	if t := o.ordered; t != nil {
		k := bytes.Clone(key)
		t.mu.Lock()
		prev, had := t.swapLocked(k, tagged)
		t.mu.Unlock()
		if o.marked {
			o.undo = append(o.undo, overlayUndo{okey: k, prev: prev, had: had, tree: true})
		}
		return
	}
	k := string(key)
	prev, had := o.m[k]
	o.m[k] = tagged
	if o.marked {
		o.undo = append(o.undo, overlayUndo{key: k, prev: prev, had: had})
	}
}

func (o *Overlay) write(key, tagged []byte) error {
	o.mu.Lock()
	if o.closed.Load() {
		o.mu.Unlock()
		return ErrClosed
	}
	o.setLocked(key, tagged)
	o.mu.Unlock()
	if len(o.watchers) > 0 {
		o.changed(key)
	}
	return nil
}

// orderedLocked returns the ordered view of the pending writes, building
// it from the map first if needed. o.mu must be held for writing.
func (o *Overlay) orderedLocked() *memEngine {
	if o.ordered == nil {
		keys := make([]string, 0, len(o.m))
		size := 0
		for k := range o.m {
			keys = append(keys, k)
			size += len(k)
		}
		slices.Sort(keys)
		// The view's keys are copied into one buffer, each a full slice
		// of its own bytes (the treap never changes a key).
		buf := make([]byte, 0, size)
		o.ordered = newSortedMemEngine(len(keys), func(i int) ([]byte, []byte) {
			at := len(buf)
			buf = append(buf, keys[i]...)
			return buf[at:len(buf):len(buf)], o.m[keys[i]]
		})
		clear(o.m)
	}
	return o.ordered
}

// Base returns the engine under the overlay.
func (o *Overlay) Base() Engine { return o.base }

// Pending returns the number of keys written or deleted since the last
// Commit or Discard.
func (o *Overlay) Pending() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.ordered != nil {
		return int(o.ordered.count) // changed only under o.mu held for writing
	}
	return len(o.m)
}

// Get implements Engine: a pending write answers first.
func (o *Overlay) Get(key []byte) ([]byte, bool, error) {
	v, deleted, pending, err := o.pendingGet(key)
	switch {
	case err != nil:
		return nil, false, err
	case !pending:
		return o.base.Get(key)
	case deleted:
		return nil, false, nil
	}
	return bytes.Clone(v), true, nil
}

// pendingGet returns key's pending write, if it has one: its value, which
// is the overlay's own and never changed (the caller copies it before
// anything may keep or change it), or deleted.
func (o *Overlay) pendingGet(key []byte) (value []byte, deleted, ok bool, err error) {
	if o.closed.Load() {
		return nil, false, false, ErrClosed
	}
	var v []byte
	o.mu.RLock()
	if o.ordered != nil {
		v, ok, err = o.ordered.Get(key)
	} else {
		// Stored values are replaced, never changed: v stays valid
		// after the unlock.
		v, ok = o.m[string(key)]
	}
	o.mu.RUnlock()
	if err != nil || !ok {
		return nil, false, false, err
	}
	if v[0] == overlayDelete {
		return nil, true, true, nil
	}
	return v[1:], false, true, nil
}

// Put implements Engine; the write stays in memory until Commit.
func (o *Overlay) Put(key, value []byte) error {
	if o.closed.Load() {
		return ErrClosed
	}
	return o.write(key, tagPut(value))
}

// Delete implements Engine; the delete stays in memory until Commit.
func (o *Overlay) Delete(key []byte) error {
	if o.closed.Load() {
		return ErrClosed
	}
	return o.write(key, overlayTombstone)
}

func tagPut(value []byte) []byte {
	v := make([]byte, len(value)+1)
	v[0] = overlayPut
	copy(v[1:], value)
	return v
}

// Iterate implements Engine: it merges the pending writes with the base.
// The first iterator after a Commit or Discard sorts the pending writes
// into the ordered view; later ones take a copy-on-write snapshot of it.
func (o *Overlay) Iterate(lo, hi []byte, reverse bool) (Iterator[[]byte, []byte], error) {
	if o.closed.Load() {
		return nil, ErrClosed
	}
	o.commitMu.RLock()
	defer o.commitMu.RUnlock()
	top, err := o.iteratePending(lo, hi, reverse)
	if err != nil {
		return nil, err
	}
	base, err := o.base.Iterate(lo, hi, reverse)
	if err != nil {
		return nil, errors.Join(err, top.Close())
	}
	return &overlayIter{o: o, base: base, top: top, reverse: reverse}, nil
}

func (o *Overlay) iteratePending(lo, hi []byte, reverse bool) (Iterator[[]byte, []byte], error) {
	o.mu.RLock()
	if t := o.ordered; t != nil {
		defer o.mu.RUnlock()
		return t.Iterate(lo, hi, reverse)
	}
	o.mu.RUnlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.orderedLocked().Iterate(lo, hi, reverse)
}

// NewBatch implements Engine: the batch writes into the overlay.
func (o *Overlay) NewBatch() Batch { return &overlayBatch{o: o} }

// ApproximateCount implements Engine: the base's estimate plus the pending
// puts (a pending write to a key the base has counts twice).
func (o *Overlay) ApproximateCount() (int64, error) {
	if o.closed.Load() {
		return 0, ErrClosed
	}
	n, err := o.base.ApproximateCount()
	if err != nil {
		return 0, err
	}
	return n + int64(o.Pending()), nil
}

// Flush implements Engine and does nothing: pending writes become durable
// only through Commit.
func (o *Overlay) Flush() error {
	if o.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Commit applies the pending writes to the base in one batch, flushes the
// base, and starts an empty overlay. On error the pending writes are kept
// (the base may hold some of them: a batch write is atomic per engine, but
// the flush may have failed).
func (o *Overlay) Commit() error {
	if o.closed.Load() {
		return ErrClosed
	}
	b, err := o.baseBatch()
	if err != nil {
		return fmt.Errorf("store: overlay commit: %w", err)
	}
	if b.Len() > 0 {
		o.commitMu.Lock()
		err := b.Write()
		o.commitMu.Unlock()
		if err != nil {
			return fmt.Errorf("store: overlay commit: %w", err)
		}
	}
	if err := o.base.Flush(); err != nil {
		return fmt.Errorf("store: overlay commit: %w", err)
	}
	if len(o.watchers) > 0 {
		if err := o.committed(); err != nil {
			return fmt.Errorf("store: overlay commit: %w", err)
		}
	}
	// Readers see the base from now on, which holds these writes; an
	// iterator still open keeps its snapshot of the ordered view.
	o.reset()
	return nil
}

// committed tells the watchers of every pending write, now in the base.
func (o *Overlay) committed() error {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.ordered == nil {
		for k, v := range o.m {
			for _, w := range o.watchers {
				w.overlayCommitted(k, v)
			}
		}
		return nil
	}
	it, err := o.ordered.Iterate(nil, nil, false)
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Next() {
		k := string(it.Key())
		for _, w := range o.watchers {
			w.overlayCommitted(k, it.Value())
		}
	}
	return it.Err()
}

// baseBatch returns a batch of the base holding every pending write.
func (o *Overlay) baseBatch() (Batch, error) {
	// Read lock: a reader's Iterate must not swap the map for the
	// ordered view meanwhile.
	o.mu.RLock()
	defer o.mu.RUnlock()
	var b Batch
	if bs, ok := o.base.(BatchSizer); ok && o.ordered == nil && len(o.m) >= sizedBatchFrom {
		size := 0
		for k, v := range o.m {
			size += len(k) + len(v) + batchRecordOverhead
		}
		b = bs.NewBatchSize(size)
	} else {
		b = o.base.NewBatch()
	}
	add := func(k, v []byte) {
		if v[0] == overlayDelete {
			b.Delete(k)
		} else {
			b.Put(k, v[1:])
		}
	}
	if o.ordered == nil {
		var kb []byte // the batch copies its keys: one buffer serves all
		for k, v := range o.m {
			kb = append(kb[:0], k...)
			add(kb, v)
		}
		return b, nil
	}
	it, err := o.ordered.Iterate(nil, nil, false)
	if err != nil {
		return nil, err
	}
	for it.Next() {
		add(it.Key(), it.Value())
	}
	return b, errors.Join(it.Err(), it.Close())
}

// Discard drops the pending writes: the store is back at its last
// committed state.
func (o *Overlay) Discard() {
	o.reset()
	o.dropped()
}

// Close drops the pending writes and closes the base. Like every engine
// it closes even while iterators are open: they fail with ErrClosed from
// then on, and Close reports the leak with the base's *OpenIteratorsError.
func (o *Overlay) Close() error {
	if o.closed.Swap(true) {
		return nil
	}
	err := o.base.Close()
	o.reset()
	o.mu.Lock()
	o.m, o.mSize = map[string][]byte{}, 0
	o.mu.Unlock()
	o.dropped()
	return err
}

type overlayBatch struct {
	o   *Overlay
	ops []overlayOp
}

type overlayOp struct {
	key, value []byte // value tagged
}

func (b *overlayBatch) Put(key, value []byte) {
	b.ops = append(b.ops, overlayOp{bytes.Clone(key), tagPut(value)})
}

func (b *overlayBatch) Delete(key []byte) {
	b.ops = append(b.ops, overlayOp{bytes.Clone(key), overlayTombstone})
}

func (b *overlayBatch) Len() int { return len(b.ops) }
func (b *overlayBatch) Reset()   { b.ops = b.ops[:0] }

func (b *overlayBatch) Write() error {
	o := b.o
	// One lock for the whole batch: readers see all of it or none.
	o.mu.Lock()
	if o.closed.Load() {
		o.mu.Unlock()
		return ErrClosed
	}
	for _, op := range b.ops {
		o.setLocked(op.key, op.value)
	}
	o.mu.Unlock()
	if len(o.watchers) > 0 {
		for _, op := range b.ops {
			o.changed(op.key)
		}
	}
	return nil
}

// overlayIter merges an iterator over the pending writes (top) with one
// over the base. On equal keys the top wins; a pending delete hides the
// base's key.
type overlayIter struct {
	o          *Overlay
	base, top  Iterator[[]byte, []byte]
	reverse    bool
	started    bool
	baseOK     bool // base is positioned on an unconsumed pair
	topOK      bool
	advBase    bool // advance base on the next call
	advTop     bool
	key, value []byte
	err        error
	closed     bool
}

func (it *overlayIter) cmp(a, b []byte) int {
	if it.reverse {
		return bytes.Compare(b, a)
	}
	return bytes.Compare(a, b)
}

func (it *overlayIter) Next() bool {
	if it.closed || it.err != nil {
		return false
	}
	if it.o.closed.Load() { // leaked past the overlay's Close
		it.key, it.value, it.err = nil, nil, ErrClosed
		return false
	}
	if !it.started {
		it.started = true
		it.advBase, it.advTop = true, true
	}
	for {
		if it.advBase {
			it.baseOK, it.advBase = it.base.Next(), false
			if !it.baseOK {
				if err := it.base.Err(); err != nil {
					it.err = err
					return false
				}
			}
		}
		if it.advTop {
			it.topOK, it.advTop = it.top.Next(), false
			if !it.topOK {
				if err := it.top.Err(); err != nil {
					it.err = err
					return false
				}
			}
		}
		switch {
		case !it.baseOK && !it.topOK:
			it.key, it.value = nil, nil
			return false
		case it.baseOK && (!it.topOK || it.cmp(it.base.Key(), it.top.Key()) < 0):
			it.key, it.value = it.base.Key(), it.base.Value()
			it.advBase = true
			return true
		default:
			if it.baseOK && it.cmp(it.base.Key(), it.top.Key()) == 0 {
				it.advBase = true // shadowed by the pending write
			}
			it.advTop = true
			v := it.top.Value()
			if v[0] == overlayDelete {
				continue
			}
			it.key, it.value = it.top.Key(), v[1:]
			return true
		}
	}
}

func (it *overlayIter) Key() []byte   { return it.key }
func (it *overlayIter) Value() []byte { return it.value }
func (it *overlayIter) Err() error    { return it.err }

func (it *overlayIter) Close() error {
	if it.closed {
		return nil
	}
	it.closed = true
	return errors.Join(it.top.Close(), it.base.Close())
}
