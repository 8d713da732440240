package store

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// NewMemoryEngine returns an ordered in-memory Engine.
//
// The engine is a treap with copy-on-write snapshots. Creating an iterator
// takes a snapshot: the nodes that exist at that moment become frozen, and
// later writes copy the path to any frozen node they change instead of
// changing it in place (nodes created after the last snapshot are changed
// in place, so writes are cheap while no iterator is taken). An iterator
// therefore walks the tree as it was when it was created; writes made
// while it is open (by the same goroutine or another) are allowed and are
// not seen by it, exactly as with the LevelDB engine.
//
// Get, ApproximateCount and iterators are safe for concurrent use with one
// writer; writes are serialized. A batch is applied under one lock, so
// readers see all of it or none of it.
//
// Flush is a no-op: the engine keeps nothing across restarts, so a logged
// in-memory store is restored from its changelog from the beginning.
func NewMemoryEngine() Engine {
	return &memEngine{rng: rand.New(rand.NewPCG(0x6272_6f6f6b, 0x6d656d)), gen: 1}
}

// newSortedMemEngine returns a memory engine holding the n pairs that
// pair(0), ..., pair(n-1) return, taking ownership of their slices; the
// keys must be sorted and distinct. It builds the treap in one pass along
// its right spine instead of inserting key by key.
func newSortedMemEngine(n int, pair func(i int) (key, value []byte)) *memEngine {
	e := NewMemoryEngine().(*memEngine)
	nodes := make([]memNode, n) // one allocation for all nodes
	var spine []*memNode        // the right spine, priorities falling from the root
	for i := range nodes {
		nd := &nodes[i]
		k, v := pair(i)
		*nd = memNode{key: k, value: v, prio: e.rng.Uint64(), gen: e.gen}
		var below *memNode
		for len(spine) > 0 && spine[len(spine)-1].prio < nd.prio {
			below, spine = spine[len(spine)-1], spine[:len(spine)-1]
		}
		nd.left = below
		if len(spine) > 0 {
			spine[len(spine)-1].right = nd
		}
		spine = append(spine, nd)
	}
	if len(spine) > 0 {
		e.root = spine[0]
	}
	e.count = int64(n)
	return e
}

// memNode is a treap node. A node whose gen is below the engine's gen is
// reachable from a snapshot and must not change.
type memNode struct {
	key, value  []byte
	prio        uint64
	gen         uint64
	left, right *memNode
}

type memEngine struct {
	mu     sync.RWMutex
	root   *memNode
	count  int64
	gen    uint64 // nodes with this gen are not shared with any snapshot
	rng    *rand.Rand
	open   int // open iterators
	closed bool
	// shut mirrors closed for iterators, which check it without the lock.
	shut atomic.Bool
	// replaced is the value insert overwrote (swapLocked), guarded by mu.
	replaced []byte
}

// Get implements Engine.
func (e *memEngine) Get(key []byte) ([]byte, bool, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return nil, false, ErrClosed
	}
	n := e.root
	for n != nil {
		switch c := bytes.Compare(key, n.key); {
		case c < 0:
			n = n.left
		case c > 0:
			n = n.right
		default:
			return bytes.Clone(n.value), true, nil
		}
	}
	return nil, false, nil
}

func cloneValue(v []byte) []byte {
	c := bytes.Clone(v)
	if c == nil {
		c = []byte{}
	}
	return c
}

// Put implements Engine.
func (e *memEngine) Put(key, value []byte) error {
	k, v := bytes.Clone(key), cloneValue(value)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.putLocked(k, v)
	return nil
}

// Delete implements Engine.
func (e *memEngine) Delete(key []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.deleteLocked(key)
	return nil
}

func (e *memEngine) putLocked(k, v []byte) {
	var added bool
	e.root, added = e.insert(e.root, k, v)
	if added {
		e.count++
	}
}

// swapLocked stores v under k, taking ownership of both slices (the
// caller must not change them afterwards), and returns the value it
// replaced. e.mu must be held for writing.
func (e *memEngine) swapLocked(k, v []byte) (prev []byte, had bool) {
	e.replaced = nil
	var added bool
	e.root, added = e.insert(e.root, k, v)
	if added {
		e.count++
		return nil, false
	}
	prev, e.replaced = e.replaced, nil
	return prev, true
}

func (e *memEngine) deleteLocked(k []byte) {
	var removed bool
	e.root, removed = e.remove(e.root, k)
	if removed {
		e.count--
	}
}

// ApproximateCount implements Engine; for this engine the count is exact.
func (e *memEngine) ApproximateCount() (int64, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return 0, ErrClosed
	}
	return e.count, nil
}

// Flush implements Engine; it only checks that the engine is open.
func (e *memEngine) Flush() error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	return nil
}

// Close implements Engine. Iterators still open are leaked: Close closes
// the engine anyway, makes them fail (Next false, Err ErrClosed) and
// returns *OpenIteratorsError to report the leak. Closing twice is not an
// error.
func (e *memEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.shut.Store(true)
	e.root, e.count = nil, 0
	if e.open > 0 {
		n := e.open
		e.open = 0
		return &OpenIteratorsError{Engine: "memory", Open: n}
	}
	return nil
}

// own returns n itself if no snapshot shares it, else a private copy.
func (e *memEngine) own(n *memNode) *memNode {
	if n.gen == e.gen {
		return n
	}
	cp := *n
	cp.gen = e.gen
	return &cp
}

// insert returns the subtree n with key=value; the returned root is always
// owned. added reports whether the key was new.
func (e *memEngine) insert(n *memNode, key, value []byte) (_ *memNode, added bool) {
	if n == nil {
		return &memNode{key: key, value: value, prio: e.rng.Uint64(), gen: e.gen}, true
	}
	c := bytes.Compare(key, n.key)
	n = e.own(n)
	switch {
	case c == 0:
		e.replaced = n.value // values are never changed in place: prev stays valid
		n.value = value
		return n, false
	case c < 0:
		n.left, added = e.insert(n.left, key, value)
		if l := n.left; l.prio > n.prio { // rotate right; both are owned
			n.left, l.right = l.right, n
			return l, added
		}
	default:
		n.right, added = e.insert(n.right, key, value)
		if r := n.right; r.prio > n.prio { // rotate left
			n.right, r.left = r.left, n
			return r, added
		}
	}
	return n, added
}

// remove returns the subtree n without key; removed reports whether it was
// there. Nothing is copied when the key is absent.
func (e *memEngine) remove(n *memNode, key []byte) (_ *memNode, removed bool) {
	if n == nil {
		return nil, false
	}
	c := bytes.Compare(key, n.key)
	if c == 0 {
		return e.merge(n.left, n.right), true
	}
	var child *memNode
	if c < 0 {
		if child, removed = e.remove(n.left, key); !removed {
			return n, false
		}
		n = e.own(n)
		n.left = child
		return n, true
	}
	if child, removed = e.remove(n.right, key); !removed {
		return n, false
	}
	n = e.own(n)
	n.right = child
	return n, true
}

// merge joins two treaps where every key of a is below every key of b.
func (e *memEngine) merge(a, b *memNode) *memNode {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a = e.own(a)
		a.right = e.merge(a.right, b)
		return a
	default:
		b = e.own(b)
		b.left = e.merge(a, b.left)
		return b
	}
}

// NewBatch implements Engine.
func (e *memEngine) NewBatch() Batch { return &memBatch{e: e} }

type memOp struct {
	key, value []byte
	del        bool
}

type memBatch struct {
	e   *memEngine
	ops []memOp
}

func (b *memBatch) Put(key, value []byte) {
	b.ops = append(b.ops, memOp{key: bytes.Clone(key), value: cloneValue(value)})
}

func (b *memBatch) Delete(key []byte) {
	b.ops = append(b.ops, memOp{key: bytes.Clone(key), del: true})
}

func (b *memBatch) Len() int { return len(b.ops) }

func (b *memBatch) Reset() {
	clear(b.ops)
	b.ops = b.ops[:0]
}

// Write applies every operation under one lock.
func (b *memBatch) Write() error {
	e := b.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	for _, op := range b.ops {
		if op.del {
			e.deleteLocked(op.key)
		} else {
			e.putLocked(op.key, op.value)
		}
	}
	return nil
}

// Iterate implements Engine. It takes a snapshot: the iterator walks the
// tree as it is now.
func (e *memEngine) Iterate(lo, hi []byte, reverse bool) (Iterator[[]byte, []byte], error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	e.open++
	e.gen++ // freeze every node that exists now
	it := &memIter{e: e, lo: bytes.Clone(lo), hi: bytes.Clone(hi), reverse: reverse}
	n := e.root
	// Seed the stack with the path to the first key in range.
	for n != nil {
		if !reverse {
			if lo == nil || bytes.Compare(n.key, lo) >= 0 {
				it.stack = append(it.stack, n)
				n = n.left
			} else {
				n = n.right
			}
		} else {
			if hi == nil || bytes.Compare(n.key, hi) < 0 {
				it.stack = append(it.stack, n)
				n = n.right
			} else {
				n = n.left
			}
		}
	}
	return it, nil
}

type memIter struct {
	e       *memEngine
	lo, hi  []byte
	reverse bool
	stack   []*memNode
	cur     *memNode
	done    bool
	closed  bool
}

func (it *memIter) Next() bool {
	if it.done || it.closed || len(it.stack) == 0 || it.e.shut.Load() {
		it.cur, it.done = nil, true
		return false
	}
	n := it.stack[len(it.stack)-1]
	it.stack = it.stack[:len(it.stack)-1]
	if !it.reverse {
		if it.hi != nil && bytes.Compare(n.key, it.hi) >= 0 {
			it.cur, it.done = nil, true
			return false
		}
		for c := n.right; c != nil; c = c.left {
			it.stack = append(it.stack, c)
		}
	} else {
		if it.lo != nil && bytes.Compare(n.key, it.lo) < 0 {
			it.cur, it.done = nil, true
			return false
		}
		for c := n.left; c != nil; c = c.right {
			it.stack = append(it.stack, c)
		}
	}
	it.cur = n
	return true
}

// Key returns the current key. The slice must not be modified.
func (it *memIter) Key() []byte {
	if it.cur == nil {
		return nil
	}
	return it.cur.key
}

// Value returns the current value. The slice must not be modified.
func (it *memIter) Value() []byte {
	if it.cur == nil {
		return nil
	}
	return it.cur.value
}

// Err returns ErrClosed once the engine closed under a leaked iterator.
func (it *memIter) Err() error {
	if !it.closed && it.e.shut.Load() {
		return ErrClosed
	}
	return nil
}

func (it *memIter) Close() error {
	if it.closed {
		return nil
	}
	it.closed = true
	it.stack, it.cur = nil, nil
	it.e.mu.Lock()
	if !it.e.closed { // Close already stopped counting leaked iterators
		it.e.open--
	}
	it.e.mu.Unlock()
	return nil
}
