package topology

import (
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// StoreOption configures a store declaration.
type StoreOption func(*storeConfig)

type storeConfig struct {
	unlogged bool
	inMemory bool
}

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
	spec.KeyType, spec.ValueType = typeName[K](), typeName[V]()
	spec.Open = kvOpen(spec.Name, keys, values)
	spec.Query = query.KeyValueCodec(keys, values)
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

func kvOpen[K, V any](name string, keys serde.Serde[K], values serde.Serde[V]) func(store.Engine, ...store.Option) any {
	return func(e store.Engine, opts ...store.Option) any {
		return store.NewKeyValueStore(name, e, keys, values, opts...)
	}
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
	addKVStore(b, task.StoreSpec{Name: name, InMemory: cfg.inMemory, SourceTopic: topic}, keys, values)
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
