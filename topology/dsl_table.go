package topology

import (
	"context"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// This file is the table half of the DSL (docs/DSL.md).

// Change is one update of a table as it flows through the graph: the
// key's new value, or, with Deleted set, the deletion of the key (a
// tombstone; Value is then the zero V). A table node emits
// Record[K, Change[V]], so deletions travel explicitly instead of as nil
// values, which Go's value types cannot express.
type Change[V any] struct {
	// Value is the key's new value; the zero V when Deleted.
	Value V
	// Deleted marks a tombstone: the key is no longer in the table.
	Deleted bool
}

// Update returns the change that sets a key to v.
func Update[V any](v V) Change[V] { return Change[V]{Value: v} }

// Deletion returns the change that deletes a key.
func Deletion[V any]() Change[V] { return Change[V]{Deleted: true} }

// KTable is a typed handle to a table: a changelog of the latest value of
// every key. A table from TableOf, and the result of a key-value
// aggregation (Count, Reduce, Aggregate, CountTable...) or of a table
// join (JoinTables, JoinTablesByForeignKey...), is materialized in a
// key-value store; tables derived by Filter, FilterNot and
// MapTableValues are not (they forward each change as it comes and keep
// no state), nor are session aggregations' results (their session store
// is not a key-value store).
//
// The type is KTable rather than Table because Table is the function that
// declares a bare table store.
type KTable[K, V any] struct {
	b     *Builder
	name  string
	store string
	// keys and values are the serdes the table carries (as KStream's).
	keys   serde.Serde[K]
	values serde.Serde[V]
	// look is how joins read the table (dsl_streamtable.go); zero for a
	// table read through its store, or that cannot be read.
	look tableLookup[K, V]
}

// TableOf declares a table named name over topic, a compacted topic: the
// same nodes and store as Table ("<name>-source" reads the topic,
// "<name>-materialize" writes the store "name"), and the materialize node
// forwards every change after writing it, a record with a null value as a
// deletion. Processors may read the store through Store, and interactive
// queries see it, as for Table.
//
// With the option Versioned(history) the table keeps each key's history
// for history in a versioned store (see Versioned): joins then read the
// value valid at the stream record's time.
func TableOf[K, V any](b *Builder, name, topic string, keys serde.Serde[K], values serde.Serde[V], opts ...StoreOption) KTable[K, V] {
	if b == nil {
		return KTable[K, V]{}
	}
	var cfg storeConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.versioned {
		return versionedTable(b, name, topic, keys, values, cfg)
	}
	_, n := declareTable(b, name, topic, keys, values, opts, func(ref KeyValueStoreRef[K, V]) processor.Processor[K, tableEntry[V], K, Change[V]] {
		return &changeMaterializer[K, V]{ref: ref}
	})
	return KTable[K, V]{b: b, name: n.name, store: name, keys: keys, values: values, look: kvLookup[K, V](name)}
}

// Name returns the name of the node that emits the table's changes.
func (t KTable[K, V]) Name() string { return t.name }

// Node returns the node that emits the table's changes, for the Processor
// API.
func (t KTable[K, V]) Node() Node[K, Change[V]] { return Node[K, Change[V]]{b: t.b, name: t.name} }

// Store returns the table's key-value store, for WithStores and queries;
// ok is false for a derived table, which has no store, and for a
// versioned table (see VersionedStore).
func (t KTable[K, V]) Store() (ref KeyValueStoreRef[K, V], ok bool) {
	return KeyValueStoreRef[K, V]{name: t.store}, t.store != ""
}

// ToStream declares a processor node named name that forwards every
// change of the table as a record: updates and deletions alike, so
// nothing is lost. Write it to a topic with ChangeSerde to produce a
// changelog with tombstones, or drop deletions explicitly with a Filter.
func (t KTable[K, V]) ToStream(name string) KStream[K, Change[V]] {
	if t.b == nil {
		return KStream[K, Change[V]]{}
	}
	n := process(t.b, name, []Node[K, Change[V]]{t.Node()}, func() processor.Processor[K, Change[V], K, Change[V]] {
		return processor.Func[K, Change[V], K, Change[V]](func(ctx processor.Context[K, Change[V]], r processor.Record[K, Change[V]]) error {
			return ctx.Forward(r)
		})
	}, nil)
	out := KStream[K, Change[V]]{b: t.b, name: n.name, keys: t.keys}
	if t.values != nil {
		out.values = ChangeSerde(t.values)
	}
	return out
}

// tableStage declares a processor node over a table's changes.
func tableStage[K, V, VOut any](t KTable[K, V], name string, fn processor.Func[K, Change[V], K, Change[VOut]]) KTable[K, VOut] {
	if t.b == nil {
		return KTable[K, VOut]{}
	}
	n := process(t.b, name, []Node[K, Change[V]]{t.Node()}, func() processor.Processor[K, Change[V], K, Change[VOut]] { return fn }, nil)
	out := KTable[K, VOut]{b: t.b, name: n.name, keys: t.keys}
	out.values, _ = any(t.values).(serde.Serde[VOut])
	return out
}

// Filter declares a processor node named name: the table of the keys
// whose value keep accepts. An update that keep rejects is forwarded as a
// deletion of its key (a key that leaves the filter must leave the
// derived table), as Kafka Streams' KTable.filter does; so downstream may
// see deletions of keys it never saw, which a consumer of a table must
// accept anyway. Deletions pass through.
func (t KTable[K, V]) Filter(name string, keep func(key K, value V) bool) KTable[K, V] {
	nilFunc(t.b, name, "filter", keep == nil)
	out := tableStage(t, name, func(ctx processor.Context[K, Change[V]], r processor.Record[K, Change[V]]) error {
		if !r.Value.Deleted && !keep(r.Key, r.Value.Value) {
			return ctx.Forward(processor.Revalue(r, Deletion[V]()))
		}
		return ctx.Forward(r)
	})
	out.look = deriveLookup(t.lookup(), func(k K, v V) (V, bool, error) { return v, keep(k, v), nil })
	return out
}

// FilterNot is Filter with the predicate negated: updates that drop
// accepts become deletions.
func (t KTable[K, V]) FilterNot(name string, drop func(key K, value V) bool) KTable[K, V] {
	nilFunc(t.b, name, "filter-not", drop == nil)
	out := tableStage(t, name, func(ctx processor.Context[K, Change[V]], r processor.Record[K, Change[V]]) error {
		if !r.Value.Deleted && drop(r.Key, r.Value.Value) {
			return ctx.Forward(processor.Revalue(r, Deletion[V]()))
		}
		return ctx.Forward(r)
	})
	out.look = deriveLookup(t.lookup(), func(k K, v V) (V, bool, error) { return v, !drop(k, v), nil })
	return out
}

// MapTableValues declares a processor node named name: the table whose
// values are fn of t's. Deletions pass through without calling fn. An
// error from fn goes to the processing error handler. (It is not named
// MapValues because Go functions cannot be overloaded on KStream and
// KTable.)
func MapTableValues[K, V, VOut any](t KTable[K, V], name string, fn func(key K, value V) (VOut, error)) KTable[K, VOut] {
	nilFunc(t.b, name, "map-values", fn == nil)
	out := tableStage(t, name, func(ctx processor.Context[K, Change[VOut]], r processor.Record[K, Change[V]]) error {
		if r.Value.Deleted {
			return ctx.Forward(processor.Revalue(r, Deletion[VOut]()))
		}
		v, err := fn(r.Key, r.Value.Value)
		if err != nil {
			return err
		}
		return ctx.Forward(processor.Revalue(r, Update(v)))
	})
	out.look = deriveLookup(t.lookup(), func(k K, v V) (VOut, bool, error) {
		w, err := fn(k, v)
		return w, err == nil, err
	})
	return out
}

// ChangeSerde returns a serde of table changes over values: an update is
// serialized by values, a deletion as a null value (a Kafka tombstone),
// and a null value deserializes to a deletion. Use it to write a table's
// changes to a topic (KTable.ToStream, then KStream.To).
func ChangeSerde[V any](values serde.Serde[V]) serde.Serde[Change[V]] { return changeSerde[V]{values} }

type changeSerde[V any] struct{ values serde.Serde[V] }

func (s changeSerde[V]) Serialize(topic string, c Change[V]) ([]byte, error) {
	if c.Deleted {
		return nil, nil
	}
	return s.values.Serialize(topic, c.Value)
}

func (s changeSerde[V]) Deserialize(topic string, data []byte) (Change[V], error) {
	if data == nil {
		return Deletion[V](), nil
	}
	v, err := s.values.Deserialize(topic, data)
	return Update(v), err
}

// Preflight checks the value serde, if it needs a check, so that wrapping
// an Avro serde keeps its start-up check.
func (s changeSerde[V]) Preflight(ctx context.Context, topic string) error {
	if p, ok := s.values.(serde.Preflighter); ok {
		return p.Preflight(ctx, topic)
	}
	return nil
}

// DeserializeContext is Deserialize bounded by ctx when the value serde
// can wait on a remote system (serde.ContextDeserializer).
func (s changeSerde[V]) DeserializeContext(ctx context.Context, topic string, data []byte) (Change[V], error) {
	if data == nil {
		return Deletion[V](), nil
	}
	cd, ok := s.values.(serde.ContextDeserializer[V])
	if !ok {
		return s.Deserialize(topic, data)
	}
	v, err := cd.DeserializeContext(ctx, topic, data)
	return Update(v), err
}

// changeMaterializer writes each record of a table's topic to its store,
// then forwards it as a Change.
type changeMaterializer[K, V any] struct {
	ref   KeyValueStoreRef[K, V]
	store store.KeyValueStore[K, V]
}

func (m *changeMaterializer[K, V]) Init(ctx processor.Context[K, Change[V]]) (err error) {
	m.store, err = m.ref.From(ctx)
	return err
}

func (m *changeMaterializer[K, V]) Process(ctx processor.Context[K, Change[V]], r processor.Record[K, tableEntry[V]]) error {
	if r.Value.tombstone {
		if err := m.store.Delete(r.Key); err != nil {
			return err
		}
		return ctx.Forward(processor.Revalue(r, Deletion[V]()))
	}
	if err := m.store.Put(r.Key, r.Value.value); err != nil {
		return err
	}
	return ctx.Forward(processor.Revalue(r, Update(r.Value.value)))
}

func (m *changeMaterializer[K, V]) Close() error { return nil }
