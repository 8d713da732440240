package query

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"

	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/meter"
	"github.com/brookstream/brook/internal/runtime"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// ErrIteratorInvalidated is the Err of a query iterator whose task closed
// (a rebalance or shutdown) before the iteration ended. Retry the query.
var ErrIteratorInvalidated = runtime.ErrIteratorInvalidated

// App is an application instance whose stores can be queried:
// *topology.App is one. Its one method hands this package the running
// side of the App; the Handle is opaque.
type App interface {
	QueryHandle() Handle
}

// Handle carries an App's runtime to this package without exposing it: it
// has no exported field or method. The zero Handle belongs to no App.
type Handle struct{ rt *runtime.Runtime }

// NewHandle wraps the runtime of an App; package topology calls it in
// App.QueryHandle. Code outside brook cannot name the runtime's type and
// has no use for it.
func NewHandle(rt *runtime.Runtime) Handle { return Handle{rt: rt} }

// handleOf returns app's Handle, or an error naming what (the calling
// function) when app is nil or has no runtime.
func handleOf(app App, what string) (Handle, error) {
	if app == nil {
		return Handle{}, fmt.Errorf("query: %s needs an App", what)
	}
	h := app.QueryHandle()
	if h.rt == nil {
		return Handle{}, fmt.Errorf("query: %s needs an App made by topology.NewApp", what)
	}
	return h, nil
}

// endpoint returns the App's query endpoint, "" for the zero Handle.
func (a Handle) endpoint() string {
	if a.rt == nil {
		return ""
	}
	return a.rt.Endpoint()
}

// state returns the App's state.
func (a Handle) state() State { return a.rt.State() }

// meter returns the App's measurements (nil: it measures nothing).
func (a Handle) meter() *meter.App {
	if a.rt == nil {
		return nil
	}
	return a.rt.Meter()
}

// State is an App's lifecycle state (the same type as topology.State).
type State = runtime.State

// NotLocalError says that the key asked for belongs to a task another
// instance runs. Endpoint is that instance's query endpoint ("" if it has
// none); the HTTP handler forwards such queries there.
type NotLocalError struct {
	Store     string
	Partition int32
	// Task is the task holding the key ("<sub-topology>_<partition>").
	Task     string
	Endpoint string
	// Standbys are the instances keeping a standby or warm-up copy of
	// the task, when the assignment of the whole group was known: a view
	// made WithStaleReads on one of them (or an HTTP key lookup with
	// ?stale=true) answers from its copy.
	Standbys []StandbyHost
}

// Error implements error.
func (e *NotLocalError) Error() string {
	return fmt.Sprintf("query: store %q partition %d (task %s) is hosted by %q, not this instance", e.Store, e.Partition, e.Task, e.Endpoint)
}

// NotReadyError says that a store cannot be read yet: its task is
// restoring, or the group is rebalancing, or no assignment is known. Ask
// again later.
type NotReadyError struct {
	Store string
	// Task is the task that is not ready, "" when no assignment is known.
	Task string
	// State is the App's state.
	State State
	// Restoring lists the restore progress of stores still restoring
	// here.
	Restoring []RestoreStatus
	// Err is why the owner of a task cannot be found yet, when that is
	// the reason: the group is rebalancing, or the group coordinator
	// (whose description of the group says who owns what) cannot be
	// asked.
	Err error
}

// Error implements error.
func (e *NotReadyError) Error() string {
	var msg string
	if e.Task == "" {
		msg = fmt.Sprintf("query: store %q is not ready: no assignment yet (state %s)", e.Store, e.State)
	} else {
		msg = fmt.Sprintf("query: store %q is not ready: task %s is restoring or rebalancing (state %s)", e.Store, e.Task, e.State)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns Err.
func (e *NotReadyError) Unwrap() error { return e.Err }

// StoreCodec is the type-erased query side of a store, which package
// topology's builder attaches to each store it declares (KeyValueCodec,
// WindowCodec). It has no exported method.
type StoreCodec interface {
	keyFormat() string
	parseKey(text string) (any, error)
	keyBytes(topic string, k any) ([]byte, error)
	keyJSON(k any) (json.RawMessage, error)
}

// kvCodec is the StoreCodec of a key-value store.
type kvCodec interface {
	StoreCodec
	localGet(rt *runtime.Runtime, id assign.TaskID, name string, k any) (json.RawMessage, bool, error)
	localScan(rt *runtime.Runtime, tasks []assign.TaskID, name string, lo, hi []byte, limit int) ([]scanEntry, bool, error)
	copyGet(rt *runtime.Runtime, id assign.TaskID, name string, k any) (json.RawMessage, bool, ReadSource, error)
}

// scanEntry is one key of a range answer.
type scanEntry struct {
	KeyBytes []byte          `json:"kb"` // serialized key: merge order and token
	Key      json.RawMessage `json:"key"`
	Value    json.RawMessage `json:"value"`
}

// keyCodec parses, serializes and renders the keys of a store of K.
type keyCodec[K any] struct {
	keys serde.Serde[K]
}

type kvQuery[K, V any] struct {
	keyCodec[K]
	values serde.Serde[V]
}

// KeyValueCodec returns the StoreCodec of a key-value store of K to V with
// the given serdes: how the HTTP handler parses, serializes and renders
// its keys and values. Package topology calls it for every key-value
// store it declares.
func KeyValueCodec[K, V any](keys serde.Serde[K], values serde.Serde[V]) StoreCodec {
	return &kvQuery[K, V]{keyCodec: keyCodec[K]{keys: keys}, values: values}
}

// keyFormat says how the HTTP handler parses a key of this store.
func (q *keyCodec[K]) keyFormat() string {
	var k K
	switch any(&k).(type) {
	case *string:
		return "string"
	case *int32:
		return "int32 (decimal)"
	case *int64:
		return "int64 (decimal)"
	case *int:
		return "int (decimal)"
	case *[]byte:
		return "bytes (base64)"
	}
	return "JSON"
}

const maxKeyText = 4096

func (q *keyCodec[K]) parseKey(text string) (any, error) {
	if len(text) > maxKeyText {
		return nil, fmt.Errorf("key is longer than %d bytes", maxKeyText)
	}
	var k K
	switch p := any(&k).(type) {
	case *string:
		*p = text
	case *int32:
		n, err := strconv.ParseInt(text, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("key %q is not an int32", text)
		}
		*p = int32(n)
	case *int64:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("key %q is not an int64", text)
		}
		*p = n
	case *int:
		n, err := strconv.Atoi(text)
		if err != nil {
			return nil, fmt.Errorf("key %q is not an int", text)
		}
		*p = n
	case *[]byte:
		b, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			if b, err = base64.RawURLEncoding.DecodeString(text); err != nil {
				return nil, fmt.Errorf("key is not base64")
			}
		}
		*p = b
	default:
		if err := json.Unmarshal([]byte(text), &k); err != nil {
			return nil, fmt.Errorf("key is not a JSON %T: %v", k, err)
		}
	}
	return k, nil
}

func (q *keyCodec[K]) keyBytes(topic string, k any) ([]byte, error) {
	kk, ok := k.(K)
	if !ok {
		return nil, fmt.Errorf("key %T is not a %T", k, kk)
	}
	b, err := q.keys.Serialize(topic, kk)
	if err != nil {
		return nil, fmt.Errorf("serialize key: %w", err)
	}
	return b, nil
}

func (q *keyCodec[K]) keyJSON(k any) (json.RawMessage, error) {
	kk, _ := k.(K)
	if j, ok := any(q.keys).(serde.JSONValuer[K]); ok {
		return j.ValueJSON(kk)
	}
	return json.Marshal(kk)
}

func (q *kvQuery[K, V]) valueJSON(v V) (json.RawMessage, error) { return valueJSON(q.values, v) }

// valueJSON renders v as JSON: through values when it is a
// serde.JSONValuer, else through encoding/json.
func valueJSON[V any](values serde.Serde[V], v V) (json.RawMessage, error) {
	if j, ok := any(values).(serde.JSONValuer[V]); ok {
		return j.ValueJSON(v)
	}
	return json.Marshal(v)
}

func typedStore[K, V any](st any, name string) (store.KeyValueStore[K, V], error) {
	s, ok := st.(store.KeyValueStore[K, V])
	if !ok {
		return nil, &processor.StoreTypeError{Store: name,
			Want: reflect.TypeFor[store.KeyValueStore[K, V]]().String(), Got: fmt.Sprintf("%T", st)}
	}
	return s, nil
}

func (q *kvQuery[K, V]) localGet(rt *runtime.Runtime, id assign.TaskID, name string, k any) (json.RawMessage, bool, error) {
	var out json.RawMessage
	var found bool
	err := rt.ReadStore(id, name, q.getJSON(name, k, &out, &found))
	return out, found, err
}

// getJSON returns the read of key k from store name as JSON, into out
// (found says whether the key was there), for ReadStore and
// ReadCopyStore.
func (q *kvQuery[K, V]) getJSON(name string, k any, out *json.RawMessage, found *bool) func(st any) error {
	kk, _ := k.(K)
	return func(st any) error {
		s, err := typedStore[K, V](st, name)
		if err != nil {
			return err
		}
		v, ok, err := s.Get(kk)
		if err != nil || !ok {
			return err
		}
		*found = true
		*out, err = q.valueJSON(v)
		return err
	}
}

func (q *kvQuery[K, V]) localScan(rt *runtime.Runtime, tasks []assign.TaskID, name string, lo, hi []byte, limit int) ([]scanEntry, bool, error) {
	it, err := openMerged[K, V](rt, tasks, name, lo, hi, false)
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	var out []scanEntry
	for it.Next() {
		if len(out) == limit {
			return out, true, nil
		}
		kj, err := q.keyJSON(it.Key())
		if err != nil {
			return nil, false, err
		}
		vj, err := q.valueJSON(it.Value())
		if err != nil {
			return nil, false, err
		}
		out = append(out, scanEntry{KeyBytes: bytes.Clone(it.KeyBytes()), Key: kj, Value: vj})
	}
	return out, false, it.Err()
}

// guardedIter is one task's iterator in a query: the runtime closes it
// (kill) if the task closes first.
type guardedIter[K, V any] struct {
	mu     sync.Mutex
	it     store.KeyBytesIterator[K, V]
	killed bool
	closed bool
	done   func()

	// head: the current pair, when has.
	has bool
	kb  []byte
	k   K
	v   V
	err error
}

func (g *guardedIter[K, V]) kill() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed && !g.killed {
		g.killed = true
		g.it.Close()
	}
}

// advance moves to the next pair.
func (g *guardedIter[K, V]) advance() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.has = false
	if g.closed || g.err != nil {
		return
	}
	if g.killed {
		g.err = ErrIteratorInvalidated
		return
	}
	if !g.it.Next() {
		g.err = g.it.Err()
		return
	}
	g.has, g.kb, g.k, g.v = true, append(g.kb[:0], g.it.KeyBytes()...), g.it.Key(), g.it.Value()
}

func (g *guardedIter[K, V]) close() {
	g.mu.Lock()
	if !g.closed && !g.killed {
		g.it.Close()
	}
	g.closed = true
	g.mu.Unlock()
	if g.done != nil {
		g.done()
		g.done = nil
	}
}

// mergedIter merges the iterators of several tasks' stores by serialized
// key. It implements store.KeyBytesIterator.
type mergedIter[K, V any] struct {
	srcs    []*guardedIter[K, V]
	reverse bool
	started bool
	cur     *guardedIter[K, V]
	err     error
	kb      []byte
	k       K
	v       V
}

func openMerged[K, V any](rt *runtime.Runtime, tasks []assign.TaskID, name string, lo, hi []byte, reverse bool) (*mergedIter[K, V], error) {
	return openMergedCopies[K, V](rt, tasks, nil, name, lo, hi, reverse)
}

// openMergedCopies is openMerged over the active tasks and, for a stale
// read, this instance's copies of other tasks.
func openMergedCopies[K, V any](rt *runtime.Runtime, tasks, copies []assign.TaskID, name string, lo, hi []byte, reverse bool) (*mergedIter[K, V], error) {
	m := &mergedIter[K, V]{reverse: reverse}
	type source struct {
		id   assign.TaskID
		copy bool
	}
	var srcs []source
	for _, id := range tasks {
		srcs = append(srcs, source{id: id})
	}
	for _, id := range copies {
		srcs = append(srcs, source{id: id, copy: true})
	}
	for _, src := range srcs {
		id := src.id
		g := &guardedIter[K, V]{}
		open := rt.OpenIterator
		if src.copy {
			open = func(id assign.TaskID, name string, open func(st any) (func(), error)) (func(), error) {
				done, _, err := rt.OpenCopyIterator(id, name, open)
				return done, err
			}
		}
		done, err := open(id, name, func(st any) (func(), error) {
			s, err := typedStore[K, V](st, name)
			if err != nil {
				return nil, err
			}
			it, err := store.IterateBytes(s, lo, hi, reverse)
			if err != nil {
				return nil, err
			}
			g.it = it
			return g.kill, nil
		})
		if err != nil {
			m.Close()
			return nil, err
		}
		g.done = done
		m.srcs = append(m.srcs, g)
	}
	return m, nil
}

func (m *mergedIter[K, V]) Next() bool {
	if m.err != nil {
		return false
	}
	if !m.started {
		m.started = true
		for _, s := range m.srcs {
			s.advance()
		}
	} else if m.cur != nil {
		m.cur.advance()
	}
	m.cur = nil
	for _, s := range m.srcs {
		if s.err != nil {
			m.err = s.err
			return false
		}
		if !s.has {
			continue
		}
		if m.cur == nil {
			m.cur = s
			continue
		}
		c := bytes.Compare(s.kb, m.cur.kb)
		if (!m.reverse && c < 0) || (m.reverse && c > 0) {
			m.cur = s
		}
	}
	if m.cur == nil {
		return false
	}
	m.kb, m.k, m.v = m.cur.kb, m.cur.k, m.cur.v
	return true
}

func (m *mergedIter[K, V]) Key() K           { return m.k }
func (m *mergedIter[K, V]) Value() V         { return m.v }
func (m *mergedIter[K, V]) KeyBytes() []byte { return m.kb }
func (m *mergedIter[K, V]) Err() error       { return m.err }

func (m *mergedIter[K, V]) Close() error {
	for _, s := range m.srcs {
		s.close()
	}
	m.srcs, m.cur = nil, nil
	return nil
}

// KeyValueView is read-only access to one key-value store across the
// tasks of this App instance. Get routes the key to the partition the
// default partitioner picks (murmur2 of the key serialized with the
// store's key serde) and reads it if this instance runs that task; Range,
// Prefix and All merge this instance's tasks in key order (for the whole
// application's keys, use the HTTP handler, which gathers from every
// instance). A KeyValueView is safe for concurrent use.
//
// Iterators must be closed; if the task of a store closes (rebalance or
// shutdown) while an iterator is open, the iterator stops and its Err is
// ErrIteratorInvalidated.
type KeyValueView[K, V any] struct {
	app  Handle
	name string
	spec *task.StoreSpec
	q    *kvQuery[K, V]
	// stale: WithStaleReads was given.
	stale bool
}

var _ store.ReadOnlyKeyValueStore[string, int64] = (*KeyValueView[string, int64])(nil)

// KeyValue returns a read-only view of the key-value store named
// storeName of app, whose keys are K and values V. It fails with a
// *processor.UnknownStoreError when the topology has no such store and
// with a *processor.StoreTypeError when the store is not a key-value store
// of K to V.
//
// With WithStaleReads, the view also reads this instance's standby and
// warm-up copies of tasks it does not run (see GetFrom).
func KeyValue[K, V any](app App, storeName string, opts ...ViewOption) (*KeyValueView[K, V], error) {
	a, err := handleOf(app, "KeyValue")
	if err != nil {
		return nil, err
	}
	spec := a.rt.Graph().Stores[storeName]
	if spec == nil {
		return nil, &processor.UnknownStoreError{Store: storeName, Connected: a.storeNames()}
	}
	q, ok := spec.Query.(*kvQuery[K, V])
	if !ok {
		return nil, viewTypeError[store.KeyValueStore[K, V]](spec)
	}
	vc := viewOptions(opts)
	return &KeyValueView[K, V]{app: a, name: storeName, spec: spec, q: q, stale: vc.stale}, nil
}

// viewTypeError is the error of a view of spec asked for as a Want: a
// store of another kind or other types, or one that cannot be queried.
func viewTypeError[Want any](spec *task.StoreSpec) error {
	got := fmt.Sprintf("%s store of %s to %s", spec.Kind, spec.KeyType, spec.ValueType)
	if spec.Query == nil {
		got += " that cannot be queried"
	}
	return &processor.StoreTypeError{Store: spec.Name, Want: reflect.TypeFor[Want]().String(), Got: got}
}

// Name returns the store's name.
func (v *KeyValueView[K, V]) Name() string { return v.name }

// Get returns the value of key. It returns a *NotLocalError when another
// instance runs the key's task and a *NotReadyError while the task is
// restoring or the group rebalancing. On a view made WithStaleReads it
// may answer from a standby or warm-up copy; GetFrom says which.
func (v *KeyValueView[K, V]) Get(key K) (V, bool, error) {
	out, found, _, err := v.GetFrom(key)
	return out, found, err
}

// GetFrom is Get that also says which copy of the key's task answered:
// the active task (Role "active", Lag 0) or, on a view made
// WithStaleReads, this instance's standby or warm-up copy of the task
// when the task does not run here, with the copy's lag. A copy answers
// only once it has listed its changelogs' ends; until then, and while it
// stops, the read fails with a *NotReadyError (whose Err is a
// *runtime.CopyNotOpenError saying why). Without a copy here, the key
// of a task run elsewhere is a *NotLocalError, whose Standbys lists
// the instances with copies.
func (v *KeyValueView[K, V]) GetFrom(key K) (V, bool, ReadSource, error) {
	var zero V
	kb, err := v.q.keyBytes(v.app.serdeTopic(v.spec), key)
	if err != nil {
		return zero, false, ReadSource{}, fmt.Errorf("query: store %q: %w", v.name, err)
	}
	loc, err := v.app.locateFor(context.Background(), v.spec, kb, v.stale)
	if err != nil {
		return zero, false, ReadSource{}, err
	}
	if !loc.local {
		return zero, false, ReadSource{}, loc.notLocal(v.name)
	}
	var out V
	var found bool
	read := func(st any) error {
		s, err := typedStore[K, V](st, v.name)
		if err != nil {
			return err
		}
		out, found, err = s.Get(key)
		return err
	}
	src := ReadSource{Task: taskName(loc.task), Partition: loc.task.Partition, Role: runtime.RoleActive}
	if loc.copyRole != "" {
		var info runtime.CopyRead
		info, err = v.app.rt.ReadCopyStore(loc.task, v.name, read)
		src = copySource(info)
	} else {
		err = v.app.rt.ReadStore(loc.task, v.name, read)
	}
	if err != nil {
		return zero, false, ReadSource{}, v.app.queryErr(v.name, err)
	}
	return out, found, src, nil
}

func (v *KeyValueView[K, V]) scan(lo, hi []byte, reverse bool) (store.Iterator[K, V], error) {
	tasks, err := v.app.localTasksOf(v.spec)
	if err != nil {
		return nil, err
	}
	var copies []assign.TaskID
	if v.stale {
		copies = v.app.readableCopiesOf(v.spec, tasks)
	}
	it, err := openMergedCopies[K, V](v.app.rt, tasks, copies, v.name, lo, hi, reverse)
	if err != nil {
		return nil, v.app.queryErr(v.name, err)
	}
	return it, nil
}

func (v *KeyValueView[K, V]) bounds(from, to K) (lo, hi []byte, err error) {
	topic := v.app.serdeTopic(v.spec)
	if lo, err = v.q.keyBytes(topic, from); err != nil {
		return nil, nil, err
	}
	if hi, err = v.q.keyBytes(topic, to); err != nil {
		return nil, nil, err
	}
	if lo == nil {
		lo = []byte{}
	}
	if hi == nil {
		hi = []byte{}
	}
	return lo, hi, nil
}

// Range iterates this instance's keys in [from, to), ascending by
// serialized key.
func (v *KeyValueView[K, V]) Range(from, to K) (store.Iterator[K, V], error) {
	lo, hi, err := v.bounds(from, to)
	if err != nil {
		return nil, fmt.Errorf("query: store %q: %w", v.name, err)
	}
	return v.scan(lo, hi, false)
}

// ReverseRange iterates this instance's keys in [from, to), descending.
func (v *KeyValueView[K, V]) ReverseRange(from, to K) (store.Iterator[K, V], error) {
	lo, hi, err := v.bounds(from, to)
	if err != nil {
		return nil, fmt.Errorf("query: store %q: %w", v.name, err)
	}
	return v.scan(lo, hi, true)
}

// Prefix iterates this instance's keys whose serialized bytes start with
// the serialized prefix, ascending.
func (v *KeyValueView[K, V]) Prefix(prefix K) (store.Iterator[K, V], error) {
	p, err := v.q.keyBytes(v.app.serdeTopic(v.spec), prefix)
	if err != nil {
		return nil, fmt.Errorf("query: store %q: %w", v.name, err)
	}
	if len(p) == 0 {
		return v.scan(nil, nil, false)
	}
	return v.scan(p, store.PrefixEnd(p), false)
}

// All iterates every key of this instance, ascending.
func (v *KeyValueView[K, V]) All() (store.Iterator[K, V], error) { return v.scan(nil, nil, false) }

// ApproximateCount sums the estimates of this instance's tasks.
func (v *KeyValueView[K, V]) ApproximateCount() (int64, error) {
	tasks, err := v.app.localTasksOf(v.spec)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, id := range tasks {
		err := v.app.rt.ReadStore(id, v.name, func(st any) error {
			s, err := typedStore[K, V](st, v.name)
			if err != nil {
				return err
			}
			n, err := s.ApproximateCount()
			total += n
			return err
		})
		if err != nil {
			return 0, v.app.queryErr(v.name, err)
		}
	}
	return total, nil
}

// Metadata returns where key lives: its partition and task, and the
// instance that runs the task. It fails with a *NotReadyError before the
// first assignment.
func (v *KeyValueView[K, V]) Metadata(key K) (KeyMetadata, error) {
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

// KeyMetadata says where a key of a store lives.
type KeyMetadata struct {
	Store     string `json:"store"`
	Partition int32  `json:"partition"`
	// Task is "<sub-topology>_<partition>".
	Task string `json:"task"`
	// Endpoint is the query endpoint of the instance running the task,
	// "" if it has none.
	Endpoint string `json:"endpoint"`
	MemberID string `json:"member_id"`
	// Local reports that this instance runs the task.
	Local bool `json:"local"`
	// Generation is the consumer-group generation of the assignment.
	Generation int32 `json:"generation"`
	// Standbys are the instances that keep a standby or warm-up copy of
	// the task (Kafka Streams' KeyQueryMetadata.standbyHosts): a stale
	// read (WithStaleReads, or ?stale=true over HTTP) may be answered
	// by them. Empty when the task has none, or when the assignment of
	// the whole group cannot be had now (rebalancing, coordinator
	// unreachable).
	Standbys []StandbyHost `json:"standbys"`
}

// GlobalTaskName is the Task of a global store's answers and metadata
// (topology.GlobalTable): the store belongs to no task, and every
// instance holds it whole.
const GlobalTaskName = "global"

// taskName is id as answers name it: "<sub-topology>_<partition>", or
// GlobalTaskName.
func taskName(id assign.TaskID) string {
	if id == runtime.GlobalTask {
		return GlobalTaskName
	}
	return id.String()
}

func (l location) metadata(store string) KeyMetadata {
	md := KeyMetadata{Store: store, Partition: l.task.Partition, Task: taskName(l.task),
		Endpoint: l.host.Endpoint, MemberID: l.host.MemberID, Local: l.local && l.copyRole == "", Generation: l.gen,
		Standbys: l.copies}
	if md.Standbys == nil {
		md.Standbys = []StandbyHost{}
	}
	return md
}

// Instance is one instance of the application in the current assignment.
type Instance struct {
	Endpoint string `json:"endpoint"`
	MemberID string `json:"member_id"`
	// Self marks this instance.
	Self bool `json:"self"`
	// Tasks are the tasks it runs ("<sub-topology>_<partition>").
	Tasks []string `json:"tasks"`
	// Standby are the tasks it keeps a standby copy of
	// (topology.Config.NumStandbyReplicas), Warmup those it warms up to
	// take them over; both are kept current from the changelogs.
	Standby []string `json:"standby"`
	Warmup  []string `json:"warmup"`
}

// Instances returns every instance of app with its tasks, from the
// current assignment, and its generation; false before the first
// assignment, while the group rebalances, when the group coordinator
// cannot be asked (the instance list comes from its description of the
// group), or for a nil App.
func Instances(app App) ([]Instance, int32, bool) {
	a, err := handleOf(app, "Instances")
	if err != nil {
		return nil, 0, false
	}
	ins, gen, err := a.instances(context.Background())
	return ins, gen, err == nil
}

// instances lists the instances of the current assignment, which the
// assignor assembles from the group coordinator's description of the
// group (assign.Strategy.Routing): an error while the group rebalances
// or the coordinator cannot be reached.
func (a Handle) instances(ctx context.Context) ([]Instance, int32, error) {
	asg, err := a.rt.Strategy().Routing(ctx)
	if err != nil {
		return nil, 0, err
	}
	out := []Instance{}
	for i, host := range asg.Hosts {
		in := Instance{Endpoint: host.Endpoint, MemberID: host.MemberID, Self: i == asg.Self, Tasks: []string{},
			Standby: []string{}, Warmup: []string{}}
		for _, t := range host.Tasks {
			in.Tasks = append(in.Tasks, t.String())
		}
		for _, t := range host.Standby {
			in.Standby = append(in.Standby, t.String())
		}
		for _, t := range host.Warmup {
			in.Warmup = append(in.Warmup, t.String())
		}
		out = append(out, in)
	}
	return out, asg.Generation, nil
}

// Status returns the state of the store's tasks on this instance.
func (v *KeyValueView[K, V]) Status() StoreStatus { return v.app.storeStatus(v.name, v.spec) }

// StoreStatus describes a store on one instance.
type StoreStatus struct {
	Store     string `json:"store"`
	Kind      string `json:"kind"`
	KeyType   string `json:"key_type"`
	ValueType string `json:"value_type"`
	// KeyFormat says how the HTTP handler parses keys of this store.
	KeyFormat string `json:"key_format"`
	// WindowSizeMs is the width of a window store's windows in
	// milliseconds (store.WindowOptions.Size); absent (0) for other kinds
	// and for window stores whose windows have no one width.
	WindowSizeMs int64 `json:"window_size_ms,omitempty"`
	// SubTopology is the sub-topology whose tasks hold the store; -1 for
	// a global table's store, which every instance holds whole (its one
	// task is GlobalTaskName).
	SubTopology int32 `json:"sub_topology"`
	// Tasks are the store's tasks assigned to this instance.
	Tasks []TaskStatus `json:"tasks"`
	// Restoring is the restore progress of this store's partitions in
	// tasks being opened here (restoring, or restored and waiting for the
	// task's other stores).
	Restoring []RestoreStatus `json:"restoring,omitempty"`
	// Standbys are this instance's standby and warm-up copies of the
	// store's tasks, with their lag (Kafka Streams'
	// allLocalStorePartitionLags); absent when there are none.
	Standbys []CopyStatus `json:"standbys,omitempty"`
}

// RestoreStatus is the restore progress of one store partition: Restored
// of Total changelog offsets.
type RestoreStatus struct {
	Store     string `json:"store"`
	Partition int32  `json:"partition"`
	Restored  int64  `json:"restored"`
	Total     int64  `json:"total"`
	// Records is the number of changelog records applied so far
	// (Restored and Total count offsets).
	Records int64 `json:"records"`
}

func restoreStatuses(ps []store.RestoreProgress) []RestoreStatus {
	out := make([]RestoreStatus, 0, len(ps))
	for _, p := range ps {
		out = append(out, RestoreStatus(p))
	}
	return out
}

// TaskStatus is the state of one task of a store on this instance.
type TaskStatus struct {
	Task string `json:"task"`
	// State is "ready" (open and queryable) or "restoring" (assigned
	// here, not open yet: restoring, or the group is rebalancing).
	State string `json:"state"`
	// Lag is how far the task is behind the end of each source
	// partition (the table topic for a table): its freshness.
	Lag []PartitionLag `json:"lag,omitempty"`
}

// PartitionLag is one source partition's lag.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Position is the offset of the next record to process.
	Position int64 `json:"position"`
	// End is the high-water mark from the consumer's last fetch.
	End int64 `json:"end"`
	// Lag is End - Position.
	Lag int64 `json:"lag"`
}

// location is where a key lives.
type location struct {
	task  assign.TaskID
	host  assign.Host
	local bool
	gen   int32
	// copyRole is set when a stale read is to be answered from this
	// instance's standby or warm-up copy of task (local is then true
	// and host this instance): runtime.RoleStandby or RoleWarmup.
	copyRole string
	// copies are the other instances keeping a copy of task, when the
	// assignment of the whole group was consulted (see withCopies).
	copies []StandbyHost
	// noOwner: a stale read found no active owner of task in the
	// assignment; host is then unset and only copies may answer.
	noOwner bool
}

func (a Handle) storeNames() []string {
	var out []string
	for n := range a.rt.Graph().Stores {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// serdeTopic is the topic argument the store passes to its serdes.
func (a Handle) serdeTopic(spec *task.StoreSpec) string {
	return spec.SerdeTopic(a.rt.ApplicationID())
}

func (a Handle) groupOf(spec *task.StoreSpec) int32 {
	for _, st := range a.rt.Graph().SubTopologies {
		if slices.Contains(st.Stores, spec.Name) {
			return int32(st.ID)
		}
	}
	return -1
}

func (a Handle) notReady(name string, id assign.TaskID, known bool) *NotReadyError {
	e := &NotReadyError{Store: name, State: a.state()}
	if known {
		e.Task = taskName(id)
	}
	for _, p := range a.rt.RestoreProgress() {
		if p.Store == name {
			e.Restoring = append(e.Restoring, RestoreStatus(p))
		}
	}
	return e
}

// locate finds the task and host of a serialized key. A key of a task
// of this instance is local without asking anyone; for the others the
// owner comes from the whole assignment (assign.Strategy.Routing), and
// while it cannot be had the key is not ready.
func (a Handle) locate(ctx context.Context, spec *task.StoreSpec, kb []byte) (location, error) {
	return a.locateFor(ctx, spec, kb, false)
}

// locateFor is locate; with stale set, a key whose task is not active
// here is answered from this instance's readable copy of the task, if it
// holds one (copyRole), and when the assignment names no owner the
// location lists the instances with copies (noOwner).
func (a Handle) locateFor(ctx context.Context, spec *task.StoreSpec, kb []byte, stale bool) (location, error) {
	strategy := a.rt.Strategy()
	self := assign.Host{MemberID: strategy.MemberID(), Endpoint: a.endpoint()}
	if spec.Global {
		// Every instance holds a global store whole: answer here.
		if !a.rt.GlobalsReady() {
			return location{}, a.notReady(spec.Name, runtime.GlobalTask, true)
		}
		loc := location{task: runtime.GlobalTask, host: self, local: true}
		if own, ok := strategy.Local(); ok {
			loc.gen = own.Generation
		}
		return loc, nil
	}
	g := a.groupOf(spec)
	own, ok := strategy.Local()
	if !ok || own.Partitions[g] <= 0 {
		return location{}, a.notReady(spec.Name, assign.TaskID{}, false)
	}
	p, err := partition.ForKey(kb, own.Partitions[g])
	if err != nil {
		return location{}, fmt.Errorf("query: store %q: %w", spec.Name, err)
	}
	id := assign.TaskID{Group: g, Partition: p}
	if _, mine := slices.BinarySearchFunc(own.Tasks, id, assign.TaskID.Compare); mine {
		return location{task: id, host: self, local: true, gen: own.Generation}, nil
	}
	if stale {
		if role, ok := a.rt.CopyReadable(id); ok {
			return location{task: id, host: self, local: true, gen: own.Generation, copyRole: role}, nil
		}
	}
	asg, err := strategy.Routing(ctx)
	if err != nil {
		nr := a.notReady(spec.Name, id, true)
		nr.Err = err
		return location{}, nr
	}
	copies := copiesOf(asg, id)
	h, ok := asg.Owner(id)
	if !ok {
		if stale && len(copies) > 0 {
			return location{task: id, gen: asg.Generation, copies: copies, noOwner: true}, nil
		}
		return location{}, a.notReady(spec.Name, id, true)
	}
	local := asg.Self >= 0 && asg.Hosts[asg.Self].MemberID == h.MemberID
	return location{task: id, host: h, local: local, gen: asg.Generation, copies: copies}, nil
}

// localTasksOf returns this instance's open tasks of the store; a
// *NotReadyError if any task assigned here is not open.
func (a Handle) localTasksOf(spec *task.StoreSpec) ([]assign.TaskID, error) {
	if spec.Global {
		if !a.rt.GlobalsReady() {
			return nil, a.notReady(spec.Name, runtime.GlobalTask, true)
		}
		return []assign.TaskID{runtime.GlobalTask}, nil
	}
	g := a.groupOf(spec)
	asg, ok := a.rt.Strategy().Local()
	if !ok {
		return nil, a.notReady(spec.Name, assign.TaskID{}, false)
	}
	open := a.rt.OpenTasks()
	var out []assign.TaskID
	for _, id := range asg.Tasks {
		if id.Group != g {
			continue
		}
		if _, ok := slices.BinarySearchFunc(open, id, assign.TaskID.Compare); !ok {
			return nil, a.notReady(spec.Name, id, true)
		}
		out = append(out, id)
	}
	return out, nil
}

// queryErr turns a runtime error into the query errors.
func (a Handle) queryErr(name string, err error) error {
	var tn *runtime.TaskNotOpenError
	if errors.As(err, &tn) {
		return a.notReady(name, tn.Task, true)
	}
	var cn *runtime.CopyNotOpenError
	if errors.As(err, &cn) {
		nr := a.notReady(name, cn.Task, true)
		nr.Err = err
		return nr
	}
	return err
}

func (a Handle) storeStatus(name string, spec *task.StoreSpec) StoreStatus {
	st := StoreStatus{Store: name, Kind: spec.Kind, KeyType: spec.KeyType, ValueType: spec.ValueType, SubTopology: a.groupOf(spec), Tasks: []TaskStatus{}}
	if q, ok := spec.Query.(StoreCodec); ok {
		st.KeyFormat = q.keyFormat()
	}
	if q, ok := spec.Query.(windowCodec); ok {
		st.WindowSizeMs = q.windowSize().Milliseconds()
	}
	asg, ok := a.rt.Strategy().Local()
	if spec.Global {
		ts := TaskStatus{Task: GlobalTaskName, State: "restoring"}
		if a.rt.GlobalsReady() {
			ts.State = "ready"
		}
		st.Tasks = append(st.Tasks, ts)
		ok = false // no task of the assignment holds it
	}
	if ok {
		open := a.rt.OpenTasks()
		for _, id := range asg.Tasks {
			if id.Group != st.SubTopology {
				continue
			}
			ts := TaskStatus{Task: id.String(), State: "restoring"}
			if _, ok := slices.BinarySearchFunc(open, id, assign.TaskID.Compare); ok {
				ts.State = "ready"
				lags, _ := a.rt.Lag(id)
				for _, l := range lags {
					ts.Lag = append(ts.Lag, PartitionLag(l))
				}
			}
			st.Tasks = append(st.Tasks, ts)
		}
	}
	for _, p := range a.rt.RestoreProgress() {
		if p.Store == name {
			st.Restoring = append(st.Restoring, RestoreStatus(p))
		}
	}
	st.Standbys = a.copyStatuses(spec)
	return st
}
