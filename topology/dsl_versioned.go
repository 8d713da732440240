package topology

import (
	"time"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// This file holds versioned tables (Kafka Streams' versioned state
// stores, KIP-889 and KIP-914): TableOf with Versioned keeps each key's
// history, so a stream–table join reads the value that was valid at the
// stream record's time.

// Versioned makes TableOf keep each key's history for history in a
// versioned store (store.VersionedKeyValueStore) instead of the latest
// value only: every record of the topic is a version of its key valid
// from the record's timestamp until the key's next version, a tombstone
// a deletion at its time. Records may arrive out of order: a late record
// is filed into the history at its time, and the latest by timestamp is
// the key's current value.
//
// A stream–table join (Join, LeftJoin) against the table, or a table
// derived from it, joins the value valid at each stream record's
// timestamp. Lookups and late table records older than the table's
// observed stream time (its largest record timestamp) minus history find
// nothing: the join treats the key as absent, and the late record is
// dropped with a warning. Older history is dropped from the store.
//
// Unlike a plain TableOf, a versioned table keeps a changelog of its own,
// "<application-id>-<name>-changelog" (compacted; WithoutLogging is
// refused), because a version's time is its record's timestamp, which a
// restore from the table's topic does not see. The materialize node
// forwards a change only when a record becomes its key's latest version
// (Kafka Streams does not forward out-of-order updates of versioned
// tables either). Other stores ignore the option; a history below 1 ms is
// refused by Build.
func Versioned(history time.Duration) StoreOption {
	return func(c *storeConfig) { c.versioned, c.history = true, history }
}

// VersionedStoreRef is a typed handle to a declared versioned key-value
// store.
type VersionedStoreRef[K, V any] struct{ name string }

// Name returns the store's name, for WithStores.
func (r VersionedStoreRef[K, V]) Name() string { return r.name }

// From returns the store from a processor's context; the store must be
// connected to the processor.
func (r VersionedStoreRef[K, V]) From(ctx processor.StoreProvider) (store.VersionedKeyValueStore[K, V], error) {
	return processor.VersionedKeyValueStore[K, V](ctx, r.name)
}

// VersionedStore declares a versioned key-value store named name for the
// Processor API (see store.VersionedKeyValueStore): per key, the values
// put with their validity times, kept for history behind the store's
// observed stream time. Connect it to the processors that use it with
// WithStores. Its changelog topic is "<application-id>-<name>-changelog"
// (compacted) unless WithoutLogging is given. Versioned stores are not
// queryable through package query or over HTTP yet.
func VersionedStore[K, V any](b *Builder, name string, keys serde.Serde[K], values serde.Serde[V], history time.Duration, opts ...StoreOption) VersionedStoreRef[K, V] {
	var cfg storeConfig
	for _, o := range opts {
		o(&cfg)
	}
	addVersionedStore(b, name, "", keys, values, history, cfg)
	return VersionedStoreRef[K, V]{name: name}
}

func addVersionedStore[K, V any](b *Builder, name, tableTopic string, keys serde.Serde[K], values serde.Serde[V], history time.Duration, cfg storeConfig) {
	vo := store.VersionedOptions{HistoryRetention: history}
	if err := vo.Validate(); err != nil {
		b.problem(InvalidStore, "", "", name, "%v", err)
	}
	spec := task.StoreSpec{Name: name, Kind: "versioned", Logged: !cfg.unlogged, InMemory: cfg.inMemory, TableTopic: tableTopic}
	spec.Open = func(e store.Engine, o ...store.Option) (any, error) {
		return store.NewVersionedKeyValueStore(name, e, keys, values, vo, o...)
	}
	addStore(b, spec, keys, values)
}

// versionedTable declares TableOf with Versioned: the versioned store
// name, the source "<name>-source" and the processor "<name>-materialize".
func versionedTable[K, V any](b *Builder, name, topic string, keys serde.Serde[K], values serde.Serde[V], cfg storeConfig) KTable[K, V] {
	if cfg.unlogged {
		// Its topic is processed from the committed offset on: without a
		// changelog a task that moves would start with no history.
		b.problem(InvalidStore, "", "", name, "a versioned table needs its changelog; WithoutLogging is refused")
	}
	addVersionedStore(b, name, topic, keys, values, cfg.history, cfg)
	var entries serde.Serde[tableEntry[V]]
	if values != nil {
		entries = tableEntrySerde[V]{values}
	}
	src := Source(b, name+"-source", topic, keys, entries)
	if d, ok := b.nodeByName[src.name]; ok && d.spec.Kind == task.Source {
		d.spec.ValueType = typeName[V]()
	}
	b.addPreflights(name+"-source", []string{topic}, nil, values)
	n := Process(b, name+"-materialize", src, func() processor.Processor[K, tableEntry[V], K, Change[V]] {
		return &versionedMaterializer[K, V]{name: name}
	}, WithStores(name))
	return KTable[K, V]{b: b, name: n.name, keys: keys, values: values, look: versionedLookup[K, V](name)}
}

// versionedLookup reads the value of a versioned store valid at a time.
func versionedLookup[K, V any](name string) tableLookup[K, V] {
	return tableLookup[K, V]{store: name, versioned: true, open: func(ctx processor.StoreProvider) (tableGetter[K, V], error) {
		vs, err := processor.VersionedKeyValueStore[K, V](ctx, name)
		if err != nil {
			return nil, err
		}
		return func(key K, at time.Time) (V, bool, error) {
			r, found, err := vs.GetAsOf(key, at)
			return r.Value, found, err
		}, nil
	}}
}

// VersionedStore returns the versioned store of a table declared with
// Versioned, for WithStores; ok is false for any other table.
func (t KTable[K, V]) VersionedStore() (ref VersionedStoreRef[K, V], ok bool) {
	if !t.look.versioned || t.look.store == "" || t.b == nil {
		return VersionedStoreRef[K, V]{}, false
	}
	if d, found := t.b.nodeByName[t.name]; !found || d.spec.Kind != task.Processor || len(d.spec.Stores) != 1 || d.spec.Stores[0] != t.look.store {
		// A table derived from a versioned one reads its parent's store
		// but does not own it.
		return VersionedStoreRef[K, V]{}, false
	}
	return VersionedStoreRef[K, V]{name: t.look.store}, true
}

// versionedMaterializer files each record of a versioned table's topic
// into its store at the record's timestamp and forwards the records that
// become their key's latest version.
type versionedMaterializer[K, V any] struct {
	name    string
	store   store.VersionedKeyValueStore[K, V]
	dropped int64
}

func (m *versionedMaterializer[K, V]) Init(ctx processor.Context[K, Change[V]]) (err error) {
	m.store, err = processor.VersionedKeyValueStore[K, V](ctx, m.name)
	return err
}

func (m *versionedMaterializer[K, V]) Process(ctx processor.Context[K, Change[V]], r processor.Record[K, tableEntry[V]]) error {
	var res store.PutResult
	var err error
	change := Update(r.Value.value)
	if r.Value.tombstone {
		change = Deletion[V]()
		res, err = m.store.Delete(r.Key, r.Timestamp)
	} else {
		res, err = m.store.Put(r.Key, r.Value.value, r.Timestamp)
	}
	if err != nil {
		return err
	}
	switch res {
	case store.PutLatest:
		return ctx.Forward(processor.Revalue(r, change))
	case store.PutExpired:
		m.dropped++
		countDrop(ctx, metrics.DropLate) // too old for the history: Kafka Streams counts it as dropped too
		md, _ := ctx.RecordMetadata()
		ctx.Logger().Warn("brook: versioned table dropped a record older than its history retention", "action", "raise the table's history retention (Versioned) if records this old must be kept",
			"store", m.name, "dropped_total", m.dropped, "topic", md.Topic, "partition", md.Partition, "offset", md.Offset,
			"timestamp_ms", r.Timestamp.UnixMilli(), "observed_ms", m.store.ObservedTime().UnixMilli(),
			"history_retention", m.store.HistoryRetention())
	}
	return nil
}

func (m *versionedMaterializer[K, V]) Close() error { return nil }
