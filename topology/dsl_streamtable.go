package topology

import (
	"time"

	"github.com/brookstream/brook/processor"
)

// This file holds the stream–table joins of the DSL (docs/DSL.md,
// "Joins"): Join and LeftJoin look each stream record's key up in a
// table and forward the joiner's result.
//
// A join node reads the table through a lookup (tableLookup): the store
// of the table (TableOf, an aggregation) or, for a table derived by
// Filter, FilterNot or MapTableValues, the store of the table it derives
// from with the derivations applied on read, as Kafka Streams' value
// getters do. Connecting the node to that store puts the stream and the
// table in one sub-topology, so their topics must be co-partitioned
// (checked at start-up).

// tableGetter returns a table's value for key: the latest one, or, for a
// versioned table, the one valid at at.
type tableGetter[K, V any] func(key K, at time.Time) (value V, found bool, err error)

// tableLookup is how a join reads a table: the store it reads and how to
// open a getter over it in a processor's context. The zero tableLookup
// reads nothing (a table without a store of its own or of an ancestor).
type tableLookup[K, V any] struct {
	store string
	// versioned is set when the store keeps history (TableOf with
	// Versioned): lookups are by time.
	versioned bool
	open      func(processor.StoreProvider) (tableGetter[K, V], error)
}

// lookup returns how to read t: its own lookup if it has one (TableOf,
// derived tables), else its key-value store (aggregations).
func (t KTable[K, V]) lookup() tableLookup[K, V] {
	if t.look.open != nil {
		return t.look
	}
	if t.store == "" {
		return tableLookup[K, V]{}
	}
	return kvLookup[K, V](t.store)
}

// kvLookup reads the latest value of a key-value store.
func kvLookup[K, V any](name string) tableLookup[K, V] {
	return tableLookup[K, V]{store: name, open: func(ctx processor.StoreProvider) (tableGetter[K, V], error) {
		kv, err := processor.KeyValueStore[K, V](ctx, name)
		if err != nil {
			return nil, err
		}
		return func(key K, _ time.Time) (V, bool, error) { return kv.Get(key) }, nil
	}}
}

// deriveLookup reads a derived table: the parent's value passed through
// fn, which returns the derived value and whether the key is in the
// derived table.
func deriveLookup[K, V, VOut any](parent tableLookup[K, V], fn func(key K, value V) (VOut, bool, error)) tableLookup[K, VOut] {
	if parent.open == nil {
		return tableLookup[K, VOut]{}
	}
	return tableLookup[K, VOut]{store: parent.store, versioned: parent.versioned, open: func(ctx processor.StoreProvider) (tableGetter[K, VOut], error) {
		get, err := parent.open(ctx)
		if err != nil {
			return nil, err
		}
		return func(key K, at time.Time) (VOut, bool, error) {
			var zero VOut
			v, found, err := get(key, at)
			if err != nil || !found {
				return zero, false, err
			}
			return fn(key, v)
		}, nil
	}}
}

// Join declares a stream–table inner join: a processor node named name
// that looks each record of s up in t by its key and forwards
// joiner(key, value, tableValue) with the record's key, timestamp and
// headers. A record whose key is not in t (or was deleted) produces
// nothing; a record with a null key or a nil value is dropped with a
// warning. Only records of s trigger output: updates of t change what
// later records of s find and produce nothing themselves (Kafka Streams'
// KStream#join(KTable)).
//
// The lookup is the table's value at processing time, which is its latest
// value; for a table declared with Versioned it is the value that was
// valid at the stream record's timestamp. A table derived by Filter,
// FilterNot or MapTableValues is read through the store of the table it
// derives from, with the derivations applied on read (no store of its
// own). A table with no store behind it (a session aggregation's) is
// refused by Build.
//
// The node is connected to the table's store, so s and t are processed
// by one task per partition and their topics must be co-partitioned
// (the App checks at start-up). A key-changed s (see KStream.KeyChanged)
// is repartitioned first through "<application-id>-<n>-repartition",
// where n is the WithRepartitionName option or name; its partition count
// follows t's topic unless WithPartitions gives one, and its serdes come
// from s or WithSerdes. An error from joiner goes to the processing
// error handler.
func Join[K, V, VT, VR any](s KStream[K, V], t KTable[K, VT], name string, joiner func(key K, value V, tableValue VT) (VR, error), opts ...RepartitionOption) KStream[K, VR] {
	if nilFunc(s.b, name, "joiner", joiner == nil) {
		return KStream[K, VR]{}
	}
	return streamTableJoin(s, t, name, false, func(k K, v V, vt VT, _ bool) (VR, error) { return joiner(k, v, vt) }, opts)
}

// LeftJoin declares a stream–table left join: as Join, but a record whose
// key is not in t produces joiner(key, value, zero, false) instead of
// nothing, and a record with a null key (and a value) is joined the same
// way rather than dropped, as Kafka Streams does since 3.7 (KIP-962).
// found tells whether tableValue comes from the table. Records with a nil
// value are dropped with a warning.
func LeftJoin[K, V, VT, VR any](s KStream[K, V], t KTable[K, VT], name string, joiner func(key K, value V, tableValue VT, found bool) (VR, error), opts ...RepartitionOption) KStream[K, VR] {
	if nilFunc(s.b, name, "joiner", joiner == nil) {
		return KStream[K, VR]{}
	}
	return streamTableJoin(s, t, name, true, joiner, opts)
}

func streamTableJoin[K, V, VT, VR any](s KStream[K, V], t KTable[K, VT], name string, left bool, joiner func(K, V, VT, bool) (VR, error), opts []RepartitionOption) KStream[K, VR] {
	if s.b == nil {
		return KStream[K, VR]{}
	}
	if t.b == nil {
		s.b.dslProblem(name, "joins a table that belongs to no Builder (a zero KTable)")
		return KStream[K, VR]{}
	}
	if t.b != s.b {
		s.b.dslProblem(name, "joins stream %q and table %q of different Builders", s.name, t.name)
		return KStream[K, VR]{}
	}
	look := t.lookup()
	if look.open == nil {
		s.b.dslProblem(name, "table %q has no key-value store to look records up in (a session aggregation's result); join a table from TableOf, a key-value aggregation, or a table derived from one", t.name)
		return KStream[K, VR]{}
	}
	c, keys, values := applyRepartitionOptions(s.b, name, s, opts)
	if s.keyChanged {
		rname := c.name
		if rname == "" {
			rname = name
		}
		s = repartition(s, rname, c.partitions, keys, values)
		if s.b == nil {
			return KStream[K, VR]{}
		}
	}
	n := process(s.b, name, []Node[K, V]{s.Node()}, func() processor.Processor[K, V, K, VR] {
		return &streamTableJoiner[K, V, VT, VR]{look: look, left: left, joiner: joiner, nulls: newDropper[K, V]()}
	}, []ProcessOption{WithStores(look.store)})
	return KStream[K, VR]{b: s.b, name: n.name, keys: s.keys}
}

// streamTableJoiner runs Join and LeftJoin, as Kafka Streams'
// KStreamKTableJoinProcessor.
type streamTableJoiner[K, V, VT, VR any] struct {
	look   tableLookup[K, VT]
	left   bool
	joiner func(K, V, VT, bool) (VR, error)
	get    tableGetter[K, VT]
	nulls  *dropper[K, V]
}

func (j *streamTableJoiner[K, V, VT, VR]) Init(ctx processor.Context[K, VR]) (err error) {
	j.get, err = j.look.open(ctx)
	return err
}

func (j *streamTableJoiner[K, V, VT, VR]) Process(ctx processor.Context[K, VR], r processor.Record[K, V]) error {
	var vt VT
	found := false
	md, _ := ctx.RecordMetadata()
	switch {
	case j.nulls.nilValue && isNil(r.Value):
		// A nil value is no record to join (Kafka Streams drops it too).
		j.drop(ctx, "null value", r)
		return nil
	case md.NullKey || j.nulls.nilKey && isNil(r.Key):
		if !j.left {
			j.drop(ctx, "null key", r)
			return nil
		}
		// KIP-962: a left join joins a null-key record with no table
		// value rather than dropping it.
	default:
		var err error
		vt, found, err = j.get(r.Key, r.Timestamp)
		if err != nil {
			return err
		}
	}
	if !found && !j.left {
		return nil
	}
	out, err := j.joiner(r.Key, r.Value, vt, found)
	if err != nil {
		return err
	}
	return ctx.Forward(processor.Record[K, VR]{Key: r.Key, Value: out, Timestamp: r.Timestamp, Headers: r.Headers})
}

// drop logs a record the join cannot take, with the node's running count
// (Kafka Streams counts them in its dropped-records metric).
func (j *streamTableJoiner[K, V, VT, VR]) drop(ctx processor.Context[K, VR], reason string, r processor.Record[K, V]) {
	j.nulls.dropped++
	countDrop(ctx, dropReason(reason))
	md, _ := ctx.RecordMetadata()
	ctx.Logger().Warn("brook: join dropped a record", "action", "none if such records are expected; otherwise fix the producer (null keys or values) or the key selector", "reason", reason, "dropped_total", j.nulls.dropped,
		"topic", md.Topic, "partition", md.Partition, "offset", md.Offset, "timestamp_ms", r.Timestamp.UnixMilli())
}

func (j *streamTableJoiner[K, V, VT, VR]) Close() error { return nil }
