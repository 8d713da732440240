package store

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// NewMemoryEngine returns an ordered in-memory Engine.
//
// The engine is a persistent (copy-on-write) treap: every write builds a new
// root and leaves the previous tree untouched. An iterator therefore walks
// the snapshot that existed when it was created; writes made while it is
// open (by the same goroutine or another) are allowed and are not seen by
// it, exactly as with the LevelDB engine. Readers (Get, Iterate,
// ApproximateCount) are safe for concurrent use with one writer; writes are
// serialized.
//
// Flush is a no-op: the engine keeps nothing across restarts, so a logged
// in-memory store is restored from its changelog from the beginning.
func NewMemoryEngine() Engine {
	e := &memEngine{rng: rand.New(rand.NewPCG(0x6272_6f6f6b, 0x6d656d))}
	e.root.Store(&memRoot{})
	return e
}

// memNode is an immutable treap node once published.
type memNode struct {
	key, value  []byte
	prio        uint64
	left, right *memNode
}

// memRoot is one published version of the tree.
type memRoot struct {
	n     *memNode
	count int64
}

type memEngine struct {
	root atomic.Pointer[memRoot]

	mu     sync.Mutex // serializes writers, guards rng, open and closed
	rng    *rand.Rand
	open   int
	closed bool
}

func (e *memEngine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Get implements Engine.
func (e *memEngine) Get(key []byte) ([]byte, bool, error) {
	if e.isClosed() {
		return nil, false, ErrClosed
	}
	n := e.root.Load().n
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

// Put implements Engine.
func (e *memEngine) Put(key, value []byte) error {
	b := e.NewBatch()
	b.Put(key, value)
	return b.Write()
}

// Delete implements Engine.
func (e *memEngine) Delete(key []byte) error {
	b := e.NewBatch()
	b.Delete(key)
	return b.Write()
}

// ApproximateCount implements Engine; for this engine the count is exact.
func (e *memEngine) ApproximateCount() (int64, error) {
	if e.isClosed() {
		return 0, ErrClosed
	}
	return e.root.Load().count, nil
}

// Flush implements Engine; it only checks that the engine is open.
func (e *memEngine) Flush() error {
	if e.isClosed() {
		return ErrClosed
	}
	return nil
}

// Close implements Engine. It fails with *OpenIteratorsError while
// iterators are open. Closing twice is not an error.
func (e *memEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	if e.open > 0 {
		return &OpenIteratorsError{Engine: "memory", Open: e.open}
	}
	e.closed = true
	e.root.Store(&memRoot{})
	return nil
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
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	b.ops = append(b.ops, memOp{key: bytes.Clone(key), value: v})
}

func (b *memBatch) Delete(key []byte) {
	b.ops = append(b.ops, memOp{key: bytes.Clone(key), del: true})
}

func (b *memBatch) Len() int { return len(b.ops) }

func (b *memBatch) Reset() {
	clear(b.ops)
	b.ops = b.ops[:0]
}

// Write applies every operation to a new version of the tree and publishes
// it at once, so concurrent readers see all of the batch or none of it.
func (b *memBatch) Write() error {
	e := b.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	r := *e.root.Load()
	for _, op := range b.ops {
		var changed bool
		if op.del {
			r.n, changed = memDelete(r.n, op.key)
			if changed {
				r.count--
			}
			continue
		}
		r.n, changed = memInsert(r.n, op.key, op.value, e.rng)
		if changed {
			r.count++
		}
	}
	e.root.Store(&r)
	return nil
}

// memInsert returns a new tree holding key=value, copying the path to it.
// added reports whether the key was new.
func memInsert(n *memNode, key, value []byte, rng *rand.Rand) (_ *memNode, added bool) {
	if n == nil {
		return &memNode{key: key, value: value, prio: rng.Uint64()}, true
	}
	c := bytes.Compare(key, n.key)
	if c == 0 {
		cp := *n
		cp.value = value
		return &cp, false
	}
	cp := *n
	if c < 0 {
		cp.left, added = memInsert(n.left, key, value, rng)
		if cp.left.prio > cp.prio { // rotate right; both nodes are fresh copies
			l := cp.left
			cp.left = l.right
			l.right = &cp
			return l, added
		}
		return &cp, added
	}
	cp.right, added = memInsert(n.right, key, value, rng)
	if cp.right.prio > cp.prio { // rotate left
		r := cp.right
		cp.right = r.left
		r.left = &cp
		return r, added
	}
	return &cp, added
}

// memDelete returns a tree without key; removed reports whether it was there.
func memDelete(n *memNode, key []byte) (_ *memNode, removed bool) {
	if n == nil {
		return nil, false
	}
	c := bytes.Compare(key, n.key)
	if c == 0 {
		return memMerge(n.left, n.right), true
	}
	var child *memNode
	if c < 0 {
		child, removed = memDelete(n.left, key)
		if !removed {
			return n, false
		}
		cp := *n
		cp.left = child
		return &cp, true
	}
	child, removed = memDelete(n.right, key)
	if !removed {
		return n, false
	}
	cp := *n
	cp.right = child
	return &cp, true
}

// memMerge joins two treaps where every key of a is below every key of b.
func memMerge(a, b *memNode) *memNode {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		cp := *a
		cp.right = memMerge(a.right, b)
		return &cp
	default:
		cp := *b
		cp.left = memMerge(a, b.left)
		return &cp
	}
}

// Iterate implements Engine. The iterator walks the tree as it was when
// Iterate was called.
func (e *memEngine) Iterate(lo, hi []byte, reverse bool) (Iterator[[]byte, []byte], error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	e.open++
	it := &memIter{e: e, lo: bytes.Clone(lo), hi: bytes.Clone(hi), reverse: reverse}
	n := e.root.Load().n
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
	if it.done || it.closed || len(it.stack) == 0 {
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

func (it *memIter) Err() error { return nil }

func (it *memIter) Close() error {
	if it.closed {
		return nil
	}
	it.closed = true
	it.stack, it.cur = nil, nil
	it.e.mu.Lock()
	it.e.open--
	it.e.mu.Unlock()
	return nil
}
