package store

import (
	"bytes"
	"errors"
	"fmt"
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
// Flush does nothing: the overlay's writes become durable only through
// Commit, which flushes the base. Like the other engines, an Overlay has one
// writer goroutine; Get, Iterate and ApproximateCount are safe for
// concurrent readers (an iterator sees a snapshot of both layers taken when
// it is created).
type Overlay struct {
	base Engine
	// commitMu keeps a Commit's base write from falling between the two
	// snapshots an Iterate takes (pending writes, then the base): Iterate
	// holds it for reading, the base write for writing. Without it an
	// iterator could see writes made after it was created.
	commitMu sync.RWMutex
	top      atomic.Pointer[memEngine] // the pending writes, values tagged by overlayPut/overlayDelete
	closed   atomic.Bool
	// marked and undo implement Mark/RollbackToMark: undo holds, for
	// every write since the Mark, the pending value it replaced. Only the
	// writer goroutine touches them.
	marked bool
	undo   []overlayUndo
}

// overlayUndo restores one pending key: to prev if had, else to absent.
type overlayUndo struct {
	key, prev []byte
	had       bool
}

// Tags of the values kept in the overlay's memory engine.
const (
	overlayDelete byte = 0
	overlayPut    byte = 1
)

var overlayTombstone = []byte{overlayDelete}

// NewOverlay returns an Overlay over base with no pending writes. The
// Overlay owns base from now on: Close closes it.
func NewOverlay(base Engine) *Overlay {
	o := &Overlay{base: base}
	o.reset()
	return o
}

func (o *Overlay) reset() {
	o.top.Store(NewMemoryEngine().(*memEngine))
	// The undo entries describe the engine just dropped: a rollback now
	// has nothing to undo.
	clear(o.undo)
	o.undo = o.undo[:0]
}

func (o *Overlay) pending() *memEngine { return o.top.Load() }

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
	m := o.pending()
	m.mu.Lock()
	if !m.closed {
		for i := len(o.undo) - 1; i >= 0; i-- {
			if u := o.undo[i]; u.had {
				m.swapLocked(u.key, u.prev)
			} else {
				m.deleteLocked(u.key)
			}
		}
	}
	m.mu.Unlock()
	clear(o.undo)
	o.undo = o.undo[:0]
}

// write sets the pending value of key (a tagged value the overlay owns)
// and remembers what it replaced while a Mark is set.
func (o *Overlay) write(m *memEngine, key, tagged []byte) error {
	k := bytes.Clone(key)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	prev, had := m.swapLocked(k, tagged)
	m.mu.Unlock()
	if o.marked {
		o.undo = append(o.undo, overlayUndo{key: k, prev: prev, had: had})
	}
	return nil
}

// Base returns the engine under the overlay.
func (o *Overlay) Base() Engine { return o.base }

// Pending returns the number of keys written or deleted since the last
// Commit or Discard.
func (o *Overlay) Pending() int {
	n, _ := o.pending().ApproximateCount() // exact for the memory engine
	return int(n)
}

// Get implements Engine: a pending write answers first.
func (o *Overlay) Get(key []byte) ([]byte, bool, error) {
	if o.closed.Load() {
		return nil, false, ErrClosed
	}
	v, found, err := o.pending().Get(key)
	if err != nil {
		return nil, false, err
	}
	if found {
		if v[0] == overlayDelete {
			return nil, false, nil
		}
		return v[1:], true, nil
	}
	return o.base.Get(key)
}

// Put implements Engine; the write stays in memory until Commit.
func (o *Overlay) Put(key, value []byte) error {
	if o.closed.Load() {
		return ErrClosed
	}
	return o.write(o.pending(), key, tagPut(value))
}

// Delete implements Engine; the delete stays in memory until Commit.
func (o *Overlay) Delete(key []byte) error {
	if o.closed.Load() {
		return ErrClosed
	}
	return o.write(o.pending(), key, overlayTombstone)
}

func tagPut(value []byte) []byte {
	v := make([]byte, len(value)+1)
	v[0] = overlayPut
	copy(v[1:], value)
	return v
}

// Iterate implements Engine: it merges the pending writes with the base.
func (o *Overlay) Iterate(lo, hi []byte, reverse bool) (Iterator[[]byte, []byte], error) {
	if o.closed.Load() {
		return nil, ErrClosed
	}
	o.commitMu.RLock()
	defer o.commitMu.RUnlock()
	top, err := o.pending().Iterate(lo, hi, reverse)
	if err != nil {
		return nil, err
	}
	base, err := o.base.Iterate(lo, hi, reverse)
	if err != nil {
		return nil, errors.Join(err, top.Close())
	}
	return &overlayIter{o: o, base: base, top: top, reverse: reverse}, nil
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
	top := o.pending()
	it, err := top.Iterate(nil, nil, false)
	if err != nil {
		return fmt.Errorf("store: overlay commit: %w", err)
	}
	b := o.base.NewBatch()
	for it.Next() {
		if v := it.Value(); v[0] == overlayDelete {
			b.Delete(it.Key())
		} else {
			b.Put(it.Key(), v[1:])
		}
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
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
	// Readers holding the old memory engine keep a consistent view: its
	// writes are in the base now. It is left to the garbage collector (an
	// open iterator may still walk it).
	o.reset()
	return nil
}

// Discard drops the pending writes: the store is back at its last
// committed state.
func (o *Overlay) Discard() {
	o.reset()
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
	if b.o.closed.Load() {
		return ErrClosed
	}
	// One lock for the whole batch: readers see all of it or none.
	o, m := b.o, b.o.pending()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for _, op := range b.ops {
		k := op.key // the batch never changes a key or value it holds
		prev, had := m.swapLocked(k, op.value)
		if o.marked {
			o.undo = append(o.undo, overlayUndo{key: k, prev: prev, had: had})
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
