package query

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/runtime"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// windowCodec is the StoreCodec of a window store.
type windowCodec interface {
	StoreCodec
	// windowSize is the windows' width, 0 when they have no one width.
	windowSize() time.Duration
	// localFetch reads key k's windows with starts in [from, to] (ms)
	// from local task id: at most limit of them, and whether there are
	// more.
	localFetch(rt *runtime.Runtime, id assign.TaskID, name, topic string, k any, from, to int64, limit int) ([]windowEntry, bool, error)
	// localFetchAll reads the windows with starts in [from, to] (ms) of
	// the local tasks whose sort keys are above after (nil: all): the
	// first limit of them by sort key, and whether there are more.
	localFetchAll(rt *runtime.Runtime, tasks []assign.TaskID, name, topic string, from, to int64, after []byte, limit int) ([]windowEntry, bool, error)
}

// windowEntry is one window of an HTTP answer.
type windowEntry struct {
	KeyBytes []byte          `json:"kb"` // serialized key
	Key      json.RawMessage `json:"key"`
	Start    string          `json:"start"`         // RFC 3339, UTC, milliseconds
	End      string          `json:"end,omitempty"` // Start + the window size, when known
	StartMs  int64           `json:"start_ms"`
	EndMs    *int64          `json:"end_ms,omitempty"`
	Value    json.RawMessage `json:"value"`

	sk []byte // sort key, windowSortKey(KeyBytes, StartMs)
}

func (e windowEntry) sortKey() []byte { return e.sk }

// windowSortKey is the order of windows in HTTP answers and what their
// continuation tokens hold: by serialized key, then by start. The key's
// bytes are escaped (0x00 as 0x00 0xFF) and end with 0x00 0x01, so that a
// key sorts before the keys it is a prefix of whatever the starts; the
// start follows as 8 big-endian bytes with the sign bit flipped.
func windowSortKey(kb []byte, startMs int64) []byte {
	out := make([]byte, 0, len(kb)+2+8+4)
	for _, c := range kb {
		out = append(out, c)
		if c == 0 {
			out = append(out, 0xFF)
		}
	}
	out = append(out, 0, 1)
	return binary.BigEndian.AppendUint64(out, uint64(startMs)^(1<<63))
}

// errBadWindowToken is the error of a token that is not a window
// position this handler wrote.
var errBadWindowToken = errors.New("bad continuation token (not one this handler wrote for windows)")

// parseWindowSortKey splits a windowSortKey into key bytes and start.
func parseWindowSortKey(b []byte) (kb []byte, startMs int64, err error) {
	kb = []byte{}
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			kb = append(kb, b[i])
			continue
		}
		if i+1 >= len(b) {
			return nil, 0, errBadWindowToken
		}
		switch b[i+1] {
		case 0xFF:
			kb = append(kb, 0)
			i++
		case 1:
			rest := b[i+2:]
			if len(rest) != 8 {
				return nil, 0, errBadWindowToken
			}
			return kb, int64(binary.BigEndian.Uint64(rest) ^ (1 << 63)), nil
		default:
			return nil, 0, errBadWindowToken
		}
	}
	return nil, 0, errBadWindowToken
}

// formatWindowTime renders a window bound as RFC 3339 in UTC with
// milliseconds.
func formatWindowTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

type windowQuery[K, V any] struct {
	keyCodec[K]
	values serde.Serde[V]
	opts   store.WindowOptions
}

// WindowCodec returns the StoreCodec of a window store of K to V with
// the given serdes and options: how the HTTP handler parses, serializes
// and renders its keys and windows (a window's end is its start plus
// wo.Size, when that is set). Package topology calls it for every window
// store it declares.
func WindowCodec[K, V any](keys serde.Serde[K], values serde.Serde[V], wo store.WindowOptions) StoreCodec {
	return &windowQuery[K, V]{keyCodec: keyCodec[K]{keys: keys}, values: values, opts: wo}
}

func (q *windowQuery[K, V]) windowSize() time.Duration { return q.opts.Size }

// entry renders one window; kb is the key serialized.
func (q *windowQuery[K, V]) entry(kb []byte, k K, startMs int64, v V) (windowEntry, error) {
	kj, err := q.keyJSON(k)
	if err != nil {
		return windowEntry{}, err
	}
	vj, err := valueJSON(q.values, v)
	if err != nil {
		return windowEntry{}, err
	}
	e := windowEntry{KeyBytes: kb, Key: kj, Start: formatWindowTime(startMs), StartMs: startMs, Value: vj,
		sk: windowSortKey(kb, startMs)}
	if size := q.opts.Size.Milliseconds(); size > 0 && startMs <= math.MaxInt64-size {
		end := startMs + size
		e.End, e.EndMs = formatWindowTime(end), &end
	}
	return e, nil
}

func typedWindowStore[K, V any](st any, name string) (store.WindowStore[K, V], error) {
	s, ok := st.(store.WindowStore[K, V])
	if !ok {
		return nil, &processor.StoreTypeError{Store: name,
			Want: reflect.TypeFor[store.WindowStore[K, V]]().String(), Got: fmt.Sprintf("%T", st)}
	}
	return s, nil
}

func (q *windowQuery[K, V]) localFetch(rt *runtime.Runtime, id assign.TaskID, name, topic string, k any, from, to int64, limit int) ([]windowEntry, bool, error) {
	kk, _ := k.(K)
	kb, err := q.keyBytes(topic, k)
	if err != nil {
		return nil, false, err
	}
	it, err := openWindowIter(rt, id, name, func(s store.WindowStore[K, V]) (store.Iterator[time.Time, V], error) {
		return s.FetchRange(kk, time.UnixMilli(from), time.UnixMilli(to))
	})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	out := []windowEntry{}
	for it.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		e, err := q.entry(kb, kk, it.Key().UnixMilli(), it.Value())
		if err != nil {
			return nil, false, err
		}
		out = append(out, e)
	}
	return out, false, it.Err()
}

// windowCandidate is a window read by localFetchAll, rendered only if it
// makes the page.
type windowCandidate[K, V any] struct {
	sk, kb []byte
	k      K
	start  int64
	v      V
}

func (q *windowQuery[K, V]) localFetchAll(rt *runtime.Runtime, tasks []assign.TaskID, name, topic string, from, to int64, after []byte, limit int) ([]windowEntry, bool, error) {
	// A window store iterates by time segment first, so the first windows
	// by key come from anywhere in [from, to]: read them all, keeping the
	// first limit+1 by sort key (at most twice that in memory).
	best := newFirstN(limit+1, func(c windowCandidate[K, V]) []byte { return c.sk })
	for _, id := range tasks {
		it, err := openWindowIter(rt, id, name, func(s store.WindowStore[K, V]) (store.Iterator[store.Windowed[K], V], error) {
			return s.FetchAll(time.UnixMilli(from), time.UnixMilli(to))
		})
		if err != nil {
			return nil, false, err
		}
		for it.Next() {
			w := it.Key()
			kb, err := q.keyBytes(topic, w.Key)
			if err != nil {
				it.Close()
				return nil, false, err
			}
			start := w.Start.UnixMilli()
			sk := windowSortKey(kb, start)
			if after != nil && bytes.Compare(sk, after) <= 0 {
				continue
			}
			if !best.admits(sk) {
				continue
			}
			best.add(windowCandidate[K, V]{sk: sk, kb: kb, k: w.Key, start: start, v: it.Value()})
		}
		err = it.Err()
		it.Close()
		if err != nil {
			return nil, false, err
		}
	}
	page := best.result()
	more := len(page) > limit
	if more {
		page = page[:limit]
	}
	out := make([]windowEntry, 0, len(page))
	for _, c := range page {
		e, err := q.entry(c.kb, c.k, c.start, c.v)
		if err != nil {
			return nil, false, err
		}
		out = append(out, e)
	}
	return out, more, nil
}

// firstN keeps the n items with the smallest sort keys (all distinct) of
// those added to it, holding at most 2n at a time.
type firstN[T any] struct {
	n     int
	key   func(T) []byte
	items []T
	// bound, once n items are kept, is the largest kept sort key: no item
	// at or above it can be among the first n.
	bound []byte
}

func newFirstN[T any](n int, key func(T) []byte) *firstN[T] {
	return &firstN[T]{n: max(n, 1), key: key}
}

// admits reports whether an item of sort key sk may be among the first n.
func (f *firstN[T]) admits(sk []byte) bool { return f.bound == nil || bytes.Compare(sk, f.bound) < 0 }

// add adds an item that admits accepted.
func (f *firstN[T]) add(item T) {
	f.items = append(f.items, item)
	if len(f.items) >= 2*f.n {
		f.trim()
	}
}

func (f *firstN[T]) trim() {
	slices.SortFunc(f.items, func(a, b T) int { return bytes.Compare(f.key(a), f.key(b)) })
	if len(f.items) >= f.n {
		clear(f.items[f.n:])
		f.items = f.items[:f.n]
		f.bound = f.key(f.items[f.n-1])
	}
}

// result returns the first n items (fewer if fewer were added), by sort
// key.
func (f *firstN[T]) result() []T {
	f.trim()
	return f.items
}

// guardedWindowIter is a window store iterator of one task in a query:
// the runtime closes it (kill) if the task closes first, after which
// Next returns false and Err is ErrIteratorInvalidated.
type guardedWindowIter[KK, V any] struct {
	mu     sync.Mutex
	it     store.Iterator[KK, V]
	killed bool
	closed bool
	done   func()
	k      KK
	v      V
	err    error
}

// openWindowIter opens fetch's iterator on the window store name of
// local task id, registered with the runtime so that closing the task
// invalidates it.
func openWindowIter[K, V, KK any](rt *runtime.Runtime, id assign.TaskID, name string,
	fetch func(store.WindowStore[K, V]) (store.Iterator[KK, V], error)) (*guardedWindowIter[KK, V], error) {
	g := &guardedWindowIter[KK, V]{}
	done, err := rt.OpenIterator(id, name, func(st any) (func(), error) {
		s, err := typedWindowStore[K, V](st, name)
		if err != nil {
			return nil, err
		}
		it, err := fetch(s)
		if err != nil {
			return nil, err
		}
		g.it = it
		return g.kill, nil
	})
	if err != nil {
		return nil, err
	}
	g.done = done
	return g, nil
}

func (g *guardedWindowIter[KK, V]) kill() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed && !g.killed {
		g.killed = true
		g.it.Close()
	}
}

// Next implements store.Iterator.
func (g *guardedWindowIter[KK, V]) Next() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.err != nil {
		return false
	}
	if g.killed {
		g.err = ErrIteratorInvalidated
		return false
	}
	if !g.it.Next() {
		g.err = g.it.Err()
		return false
	}
	g.k, g.v = g.it.Key(), g.it.Value()
	return true
}

// Key implements store.Iterator.
func (g *guardedWindowIter[KK, V]) Key() KK { return g.k }

// Value implements store.Iterator.
func (g *guardedWindowIter[KK, V]) Value() V { return g.v }

// Err implements store.Iterator.
func (g *guardedWindowIter[KK, V]) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Close implements store.Iterator.
func (g *guardedWindowIter[KK, V]) Close() error {
	g.mu.Lock()
	var err error
	if !g.closed && !g.killed {
		err = g.it.Close()
	}
	g.closed = true
	done := g.done
	g.done = nil
	g.mu.Unlock()
	if done != nil {
		done()
	}
	return err
}

// concatIter iterates its sources one after the other.
type concatIter[KK, V any] struct {
	srcs []*guardedWindowIter[KK, V]
	i    int
	err  error
}

func (c *concatIter[KK, V]) Next() bool {
	for c.err == nil && c.i < len(c.srcs) {
		s := c.srcs[c.i]
		if s.Next() {
			return true
		}
		if err := s.Err(); err != nil {
			c.err = err
			return false
		}
		c.i++
	}
	return false
}

func (c *concatIter[KK, V]) Key() KK    { return c.srcs[c.i].Key() }
func (c *concatIter[KK, V]) Value() V   { return c.srcs[c.i].Value() }
func (c *concatIter[KK, V]) Err() error { return c.err }

func (c *concatIter[KK, V]) Close() error {
	var errs []error
	for _, s := range c.srcs {
		errs = append(errs, s.Close())
	}
	c.i = len(c.srcs)
	return errors.Join(errs...)
}

// WindowView is read-only access to one window store across the tasks of
// this App instance. Fetch and FetchRange route the key to its partition
// as KeyValueView.Get does (murmur2 of the key serialized with the
// store's key serde) and read it if this instance runs that task;
// FetchAll reads this instance's tasks (for the whole application's
// windows, use the HTTP handler, which gathers from every instance). A
// WindowView is safe for concurrent use.
//
// Times are those of store.WindowStore: window starts have millisecond
// precision, time bounds are inclusive, and windows past the store's
// retention are left out. Iterators must be closed; if the task of a
// store closes (rebalance or shutdown) while an iterator is open, the
// iterator stops and its Err is ErrIteratorInvalidated.
type WindowView[K, V any] struct {
	app  Handle
	name string
	spec *task.StoreSpec
	q    *windowQuery[K, V]
}

// Window returns a read-only view of the window store named storeName of
// app, whose keys are K and values V. It fails with a
// *processor.UnknownStoreError when the topology has no such store and
// with a *processor.StoreTypeError when the store is not a window store
// of K to V (a key-value store among them).
func Window[K, V any](app App, storeName string) (*WindowView[K, V], error) {
	a, err := handleOf(app, "Window")
	if err != nil {
		return nil, err
	}
	spec := a.rt.Graph().Stores[storeName]
	if spec == nil {
		return nil, &processor.UnknownStoreError{Store: storeName, Connected: a.storeNames()}
	}
	q, ok := spec.Query.(*windowQuery[K, V])
	if !ok {
		return nil, viewTypeError[store.WindowStore[K, V]](spec)
	}
	return &WindowView[K, V]{app: a, name: storeName, spec: spec, q: q}, nil
}

// Name returns the store's name.
func (v *WindowView[K, V]) Name() string { return v.name }

// WindowSize returns the width of the store's windows
// (store.WindowOptions.Size): a window starting at s ends at s plus it. 0
// when the store's windows have no one width.
func (v *WindowView[K, V]) WindowSize() time.Duration { return v.q.opts.Size }

// local returns the task of key when this instance runs it: a
// *NotLocalError when another instance does, a *NotReadyError before the
// first assignment.
func (v *WindowView[K, V]) local(key K) (assign.TaskID, error) {
	kb, err := v.q.keyBytes(v.app.serdeTopic(v.spec), key)
	if err != nil {
		return assign.TaskID{}, fmt.Errorf("query: store %q: %w", v.name, err)
	}
	loc, err := v.app.locate(context.Background(), v.spec, kb)
	if err != nil {
		return assign.TaskID{}, err
	}
	if !loc.local {
		return assign.TaskID{}, &NotLocalError{Store: v.name, Partition: loc.task.Partition, Task: loc.task.String(), Endpoint: loc.host.Endpoint}
	}
	return loc.task, nil
}

// Fetch returns key's window starting at start. It returns a
// *NotLocalError when another instance runs the key's task and a
// *NotReadyError while the task is restoring or the group rebalancing.
func (v *WindowView[K, V]) Fetch(key K, start time.Time) (V, bool, error) {
	var zero V
	id, err := v.local(key)
	if err != nil {
		return zero, false, err
	}
	var out V
	var found bool
	err = v.app.rt.ReadStore(id, v.name, func(st any) error {
		s, err := typedWindowStore[K, V](st, v.name)
		if err != nil {
			return err
		}
		out, found, err = s.Fetch(key, start)
		return err
	})
	if err != nil {
		return zero, false, v.app.queryErr(v.name, err)
	}
	return out, found, nil
}

// FetchRange iterates key's windows whose start is in [from, to], in
// start order; the iterator yields each window's start and value. It
// fails as Fetch does when the key's task is not here or not ready.
func (v *WindowView[K, V]) FetchRange(key K, from, to time.Time) (store.Iterator[time.Time, V], error) {
	id, err := v.local(key)
	if err != nil {
		return nil, err
	}
	it, err := openWindowIter(v.app.rt, id, v.name, func(s store.WindowStore[K, V]) (store.Iterator[time.Time, V], error) {
		return s.FetchRange(key, from, to)
	})
	if err != nil {
		return nil, v.app.queryErr(v.name, err)
	}
	return it, nil
}

// FetchAll iterates the windows of every key held by this instance whose
// start is in [from, to]: task by task in partition order, each task's
// windows in store.WindowStore.FetchAll's order (by time segment, then
// key, then start). It fails with a *NotReadyError while a task of the
// store assigned here is restoring or the group rebalancing.
func (v *WindowView[K, V]) FetchAll(from, to time.Time) (store.Iterator[store.Windowed[K], V], error) {
	tasks, err := v.app.localTasksOf(v.spec)
	if err != nil {
		return nil, err
	}
	c := &concatIter[store.Windowed[K], V]{}
	for _, id := range tasks {
		it, err := openWindowIter(v.app.rt, id, v.name, func(s store.WindowStore[K, V]) (store.Iterator[store.Windowed[K], V], error) {
			return s.FetchAll(from, to)
		})
		if err != nil {
			c.Close()
			return nil, v.app.queryErr(v.name, err)
		}
		c.srcs = append(c.srcs, it)
	}
	return c, nil
}

// Metadata returns where key lives: its partition and task, and the
// instance that runs the task. It fails with a *NotReadyError before the
// first assignment.
func (v *WindowView[K, V]) Metadata(key K) (KeyMetadata, error) {
	kb, err := v.q.keyBytes(v.app.serdeTopic(v.spec), key)
	if err != nil {
		return KeyMetadata{}, fmt.Errorf("query: store %q: %w", v.name, err)
	}
	loc, err := v.app.locate(context.Background(), v.spec, kb)
	if err != nil {
		return KeyMetadata{}, err
	}
	v.app.withCopies(context.Background(), &loc)
	return loc.metadata(v.name), nil
}

// Status returns the state of the store's tasks on this instance.
func (v *WindowView[K, V]) Status() StoreStatus { return v.app.storeStatus(v.name, v.spec) }
