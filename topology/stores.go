package topology

import (
	"time"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// StoreOption configures a store declaration.
type StoreOption func(*storeConfig)

type storeConfig struct {
	unlogged  bool
	inMemory  bool
	retention time.Duration
	// versioned and history: a versioned table (Versioned) and its
	// history retention.
	versioned bool
	history   time.Duration
}

// WithRetention keeps the windows of a windowed aggregation's store for at
// least d (Kafka Streams' Materialized.withRetention): by default a window
// is dropped once it has closed (size + grace; 2 × difference + grace for
// sliding windows), and a longer retention keeps closed windows
// queryable. A retention shorter than the default is ignored; other
// stores ignore the option.
func WithRetention(d time.Duration) StoreOption { return func(c *storeConfig) { c.retention = d } }

// WithoutLogging turns off the store's changelog: its content is lost when
// its task moves to another instance or local state is wiped. Stores are
// logged by default.
func WithoutLogging() StoreOption { return func(c *storeConfig) { c.unlogged = true } }

// InMemory keeps the store in memory instead of in a local LevelDB
// database; it is restored from its changelog after every restart.
func InMemory() StoreOption { return func(c *storeConfig) { c.inMemory = true } }

type storeDecl struct {
	spec  task.StoreSpec
	index int
}

// KeyValueStoreRef is a typed handle to a declared key-value store.
type KeyValueStoreRef[K, V any] struct{ name string }

// Name returns the store's name, for WithStores.
func (r KeyValueStoreRef[K, V]) Name() string { return r.name }

// From returns the store from a processor's context; the store must be
// connected to the processor.
func (r KeyValueStoreRef[K, V]) From(ctx processor.StoreProvider) (store.KeyValueStore[K, V], error) {
	return processor.KeyValueStore[K, V](ctx, r.name)
}

// KeyValueStore declares a key-value store named name, with keys and
// values stored through the given serdes. Connect it to the processors that
// use it with WithStores; Build rejects a store connected to none. Its
// changelog topic is "<application-id>-<name>-changelog" unless
// WithoutLogging is given.
func KeyValueStore[K, V any](b *Builder, name string, keys serde.Serde[K], values serde.Serde[V], opts ...StoreOption) KeyValueStoreRef[K, V] {
	var cfg storeConfig
	for _, o := range opts {
		o(&cfg)
	}
	addKVStore(b, task.StoreSpec{Name: name, Logged: !cfg.unlogged, InMemory: cfg.inMemory}, keys, values)
	return KeyValueStoreRef[K, V]{name: name}
}

func addKVStore[K, V any](b *Builder, spec task.StoreSpec, keys serde.Serde[K], values serde.Serde[V]) {
	spec.Kind = "key-value"
	spec.Open = kvOpen(spec.Name, keys, values)
	spec.Query = query.KeyValueCodec(keys, values)
	addStore(b, spec, keys, values)
}

// addStore checks and records a store declaration of any kind; spec has
// its Kind, Open and (optionally) Apply, Query and ChangelogRetention.
func addStore[K, V any](b *Builder, spec task.StoreSpec, keys serde.Serde[K], values serde.Serde[V]) {
	spec.KeyType, spec.ValueType = typeName[K](), typeName[V]()
	if spec.Name == "" {
		b.problem(InvalidStore, "", "", "", "a store has an empty name")
		return
	}
	if _, ok := b.storeByName[spec.Name]; ok {
		b.problem(DuplicateName, "", "", spec.Name, "store name used twice")
		return
	}
	if keys == nil || values == nil {
		b.problem(InvalidStore, "", "", spec.Name, "store needs a key serde and a value serde")
	}
	if spec.SourceTopic == "" {
		// A table's serdes are its source's (Table checks them there).
		b.addStorePreflights(spec.Name, keys, values)
	}
	d := &storeDecl{spec: spec, index: len(b.stores)}
	b.stores = append(b.stores, d)
	b.storeByName[spec.Name] = d
}

func kvOpen[K, V any](name string, keys serde.Serde[K], values serde.Serde[V]) func(store.Engine, ...store.Option) (any, error) {
	return func(e store.Engine, opts ...store.Option) (any, error) {
		return store.NewKeyValueStore(name, e, keys, values, opts...), nil
	}
}

// WindowChangelogExtraRetention is added to a window store's retention to
// give the retention.ms of its changelog topic (cleanup policy
// "compact,delete"): Kafka drops old windows from the changelog as the
// store drops expired segments, with a day's margin for clock skew
// between record times and the broker, as Kafka Streams does.
const WindowChangelogExtraRetention = 24 * time.Hour

// WindowStoreRef is a typed handle to a declared window store.
type WindowStoreRef[K, V any] struct{ name string }

// Name returns the store's name, for WithStores.
func (r WindowStoreRef[K, V]) Name() string { return r.name }

// From returns the store from a processor's context; the store must be
// connected to the processor.
func (r WindowStoreRef[K, V]) From(ctx processor.StoreProvider) (store.WindowStore[K, V], error) {
	return processor.WindowStore[K, V](ctx, r.name)
}

// WindowStore declares a window store named name (see store.WindowStore):
// values per key and window start, kept for wo.Retention of stream time
// and dropped a segment at a time. For a windowed aggregation give a
// retention of at least the window size plus its grace period. Connect it
// to the processors that use it with WithStores. Its changelog topic is
// "<application-id>-<name>-changelog" (cleanup policy "compact,delete",
// retention.ms = wo.Retention + WindowChangelogExtraRetention) unless
// WithoutLogging is given; a restore files each record under its segment.
// It is queryable through query.Window (QueryWindow) and over HTTP; set
// wo.Size for queries to report each window's end.
func WindowStore[K, V any](b *Builder, name string, keys serde.Serde[K], values serde.Serde[V], wo store.WindowOptions, opts ...StoreOption) WindowStoreRef[K, V] {
	var cfg storeConfig
	for _, o := range opts {
		o(&cfg)
	}
	if err := wo.Validate(); err != nil {
		b.problem(InvalidStore, "", "", name, "%v", err)
	}
	spec := task.StoreSpec{Name: name, Kind: "window", Logged: !cfg.unlogged, InMemory: cfg.inMemory,
		Apply: store.WindowStoreApply(wo), ChangelogRetention: wo.Retention + WindowChangelogExtraRetention,
		Query: query.WindowCodec(keys, values, wo)}
	spec.Open = func(e store.Engine, o ...store.Option) (any, error) {
		return store.NewWindowStore(name, e, keys, values, wo, o...)
	}
	addStore(b, spec, keys, values)
	return WindowStoreRef[K, V]{name: name}
}

// SessionStoreRef is a typed handle to a declared session store.
type SessionStoreRef[K, V any] struct{ name string }

// Name returns the store's name, for WithStores.
func (r SessionStoreRef[K, V]) Name() string { return r.name }

// From returns the store from a processor's context; the store must be
// connected to the processor.
func (r SessionStoreRef[K, V]) From(ctx processor.StoreProvider) (store.SessionStore[K, V], error) {
	return processor.SessionStore[K, V](ctx, r.name)
}

// SessionStore declares a session store named name (see
// store.SessionStore): one value per key and session, kept for
// so.Retention of stream time after the session's end and dropped a
// segment at a time. For a session aggregation give a retention of at
// least the inactivity gap plus the grace period (the DSL's session
// aggregations do). Connect it to the processors that use it with
// WithStores. Its changelog topic is "<application-id>-<name>-changelog"
// (cleanup policy "compact,delete", retention.ms = so.Retention +
// WindowChangelogExtraRetention) unless WithoutLogging is given; a
// restore files each record under its segment. Session stores are not
// queryable over HTTP or through package query yet.
func SessionStore[K, V any](b *Builder, name string, keys serde.Serde[K], values serde.Serde[V], so store.SessionOptions, opts ...StoreOption) SessionStoreRef[K, V] {
	var cfg storeConfig
	for _, o := range opts {
		o(&cfg)
	}
	if err := so.Validate(); err != nil {
		b.problem(InvalidStore, "", "", name, "%v", err)
	}
	spec := task.StoreSpec{Name: name, Kind: "session", Logged: !cfg.unlogged, InMemory: cfg.inMemory,
		Apply: store.SessionStoreApply(so), ChangelogRetention: so.Retention + WindowChangelogExtraRetention}
	spec.Open = func(e store.Engine, o ...store.Option) (any, error) {
		return store.NewSessionStore(name, e, keys, values, so, o...)
	}
	addStore(b, spec, keys, values)
	return SessionStoreRef[K, V]{name: name}
}

// timestampedKeyValueStore declares the store of a DSL aggregation: a
// key-value store of K to V (queryable as one, through package query and
// the HTTP handler) whose values carry the timestamp of their latest input
// (store.TimestampedKeyValueStore).
func timestampedKeyValueStore[K, V any](b *Builder, name string, keys serde.Serde[K], values serde.Serde[V], opts []StoreOption) KeyValueStoreRef[K, V] {
	var cfg storeConfig
	for _, o := range opts {
		o(&cfg)
	}
	spec := task.StoreSpec{Name: name, Kind: "key-value", Logged: !cfg.unlogged, InMemory: cfg.inMemory,
		Query: query.KeyValueCodec(keys, values)}
	spec.Open = func(e store.Engine, o ...store.Option) (any, error) {
		return store.NewTimestampedKeyValueStore(name, e, keys, values, o...), nil
	}
	addStore(b, spec, keys, values)
	return KeyValueStoreRef[K, V]{name: name}
}

// TTLStoreRef is a typed handle to a declared TTL store.
type TTLStoreRef[K, V any] struct{ name string }

// Name returns the store's name, for WithStores.
func (r TTLStoreRef[K, V]) Name() string { return r.name }

// From returns the store from a processor's context; the store must be
// connected to the processor.
func (r TTLStoreRef[K, V]) From(ctx processor.StoreProvider) (store.TTLStore[K, V], error) {
	return processor.TTLStore[K, V](ctx, r.name)
}

// TTLStore declares a TTL store named name (see store.TTLStore): a
// key-value store whose entries expire ttl of stream time after the event
// time they were put at. Expired entries are deleted through the store's
// expiry index (no full scan) and, for a logged store, tombstoned in the
// changelog, so the changelog topic is an ordinary compacted one:
// "<application-id>-<name>-changelog" unless WithoutLogging is given. A
// restore rebuilds the expiry index. TTL stores are not queryable over
// HTTP or through package query yet.
func TTLStore[K, V any](b *Builder, name string, keys serde.Serde[K], values serde.Serde[V], ttl time.Duration, opts ...StoreOption) TTLStoreRef[K, V] {
	var cfg storeConfig
	for _, o := range opts {
		o(&cfg)
	}
	to := store.TTLOptions{TTL: ttl}
	if err := to.Validate(); err != nil {
		b.problem(InvalidStore, "", "", name, "%v", err)
	}
	spec := task.StoreSpec{Name: name, Kind: "ttl", Logged: !cfg.unlogged, InMemory: cfg.inMemory,
		Apply: store.TTLStoreApply()}
	spec.Open = func(e store.Engine, o ...store.Option) (any, error) {
		return store.NewTTLStore(name, e, keys, values, to, o...)
	}
	addStore(b, spec, keys, values)
	return TTLStoreRef[K, V]{name: name}
}

// Table declares a key-value store named name that holds the latest value
// of every key of topic, a compacted topic: a source node "<name>-source"
// reads it and a processor "<name>-materialize" writes each record into
// the store (a record with a null value deletes its key). The topic
// doubles as the store's changelog, so the store is not logged again.
//
// Processors that read the table connect to it with WithStores(name); that
// puts them in the table's sub-topology, so their source topics must be
// co-partitioned with topic.
func Table[K, V any](b *Builder, name, topic string, keys serde.Serde[K], values serde.Serde[V], opts ...StoreOption) KeyValueStoreRef[K, V] {
	ref, _ := declareTable(b, name, topic, keys, values, opts, func(ref KeyValueStoreRef[K, V]) processor.Processor[K, tableEntry[V], K, V] {
		return &materializer[K, V]{ref: ref}
	})
	return ref
}

// declareTable declares a table's store, source and materialize node
// (see Table); mat supplies the materialize processor, which for TableOf
// also forwards each change.
func declareTable[K, V, VOut any](b *Builder, name, topic string, keys serde.Serde[K], values serde.Serde[V], opts []StoreOption,
	mat func(KeyValueStoreRef[K, V]) processor.Processor[K, tableEntry[V], K, VOut]) (KeyValueStoreRef[K, V], Node[K, VOut]) {
	var cfg storeConfig
	for _, o := range opts {
		o(&cfg)
	}
	ref := KeyValueStoreRef[K, V]{name: name}
	addKVStore(b, task.StoreSpec{Name: name, InMemory: cfg.inMemory, SourceTopic: topic, TableTopic: topic}, keys, values)
	var entries serde.Serde[tableEntry[V]]
	if values != nil {
		entries = tableEntrySerde[V]{values}
	}
	src := Source(b, name+"-source", topic, keys, entries)
	// The wrapper only carries tombstones: describe the source with the
	// user's value type.
	if d, ok := b.nodeByName[src.name]; ok && d.spec.Kind == task.Source {
		d.spec.ValueType = typeName[V]()
	}
	// The source's value serde wraps values (for tombstones) and hides
	// them from Source's preflight: check the table's own value serde
	// against the topic, as for any source.
	b.addPreflights(name+"-source", []string{topic}, nil, values)
	n := Process(b, name+"-materialize", src, func() processor.Processor[K, tableEntry[V], K, VOut] {
		return mat(ref)
	}, WithStores(name))
	return ref, n
}

// tableEntry is a table topic's value: a value, or a tombstone.
type tableEntry[V any] struct {
	value     V
	tombstone bool
}

type tableEntrySerde[V any] struct{ values serde.Serde[V] }

func (s tableEntrySerde[V]) Serialize(topic string, e tableEntry[V]) ([]byte, error) {
	if e.tombstone {
		return nil, nil
	}
	return s.values.Serialize(topic, e.value)
}

func (s tableEntrySerde[V]) Deserialize(topic string, data []byte) (tableEntry[V], error) {
	if data == nil {
		return tableEntry[V]{tombstone: true}, nil
	}
	v, err := s.values.Deserialize(topic, data)
	return tableEntry[V]{value: v}, err
}

type materializer[K, V any] struct {
	ref   KeyValueStoreRef[K, V]
	store store.KeyValueStore[K, V]
}

func (m *materializer[K, V]) Init(ctx processor.Context[K, V]) (err error) {
	m.store, err = m.ref.From(ctx)
	return err
}

func (m *materializer[K, V]) Process(_ processor.Context[K, V], r processor.Record[K, tableEntry[V]]) error {
	if r.Value.tombstone {
		return m.store.Delete(r.Key)
	}
	return m.store.Put(r.Key, r.Value.value)
}

func (m *materializer[K, V]) Close() error { return nil }
