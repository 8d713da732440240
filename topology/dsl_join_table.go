package topology

import (
	"time"

	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// This file holds the table–table joins of the DSL (docs/DSL.md, "Joins"):
// JoinTables, LeftJoinTables and OuterJoinTables. Both tables are
// materialized and co-partitioned; each side's changes look up the other
// side's current value in its store, as Kafka Streams' KTableKTableJoin
// processors do with caching off. The result is materialized in a
// key-value store named by the user, so it can be queried, joined and
// aggregated further.

// tableJoinKind tells inner, left and outer table joins apart.
type tableJoinKind int

const (
	innerTableJoin tableJoinKind = iota
	leftTableJoin
	outerTableJoin
)

// tableJoiner is the joiner of every table join kind: found flags say
// which sides have a value (inner joins call it with both, left joins
// with the left).
type tableJoiner[K, V1, V2, VR any] func(key K, left V1, leftFound bool, right V2, rightFound bool) (VR, error)

// JoinTables declares the inner join of tables a and b, which must be
// materialized (from TableOf or an aggregation) and co-partitioned (same
// keys in the same partitions): a key is in the result while both tables
// have it, with the value joiner(key, aValue, bValue). It declares the
// processor nodes "<name>-left" (a's changes, reading b's store),
// "<name>-right" (b's changes, reading a's store) and name, which
// materializes the result in the key-value store name (values serialized
// by values; opts apply to the store) and forwards each change. Both
// tables' stores join one sub-topology, so their topics must have the
// same partition count (checked at start-up).
//
// As Kafka Streams' KTable.join with caching off: an update on either
// side forwards the joined value if the other side has the key; a
// deletion on either side forwards a deletion if the other side has the
// key. An update carries the larger of the two sides' timestamps (a
// side's timestamp is known when its store keeps timestamps, as an
// aggregation's does; a TableOf store does not, and counts as the
// earliest). An error from joiner goes to the processing error handler
// and leaves the result unchanged.
func JoinTables[K, V1, V2, VR any](a KTable[K, V1], b KTable[K, V2], name string, joiner func(key K, left V1, right V2) (VR, error), values serde.Serde[VR], opts ...StoreOption) KTable[K, VR] {
	if nilFunc(a.b, name, "joiner", joiner == nil) {
		return KTable[K, VR]{}
	}
	return joinTables(a, b, name, innerTableJoin, func(k K, l V1, _ bool, r V2, _ bool) (VR, error) { return joiner(k, l, r) }, values, opts)
}

// LeftJoinTables declares the left join of tables a and b (see
// JoinTables for the nodes, store and co-partitioning): a key is in the
// result while a has it, with the value joiner(key, aValue, bValue,
// bFound); bFound is false, and bValue the zero value, while b does not
// have the key (Go has no null).
//
// As Kafka Streams' KTable.leftJoin with caching off: an update of a
// forwards the joined value; a deletion in a forwards a deletion (if the
// key was in the result); an update or a deletion in b forwards
// joiner(key, aValue, ...) again if a has the key, with bFound false after
// a deletion.
func LeftJoinTables[K, V1, V2, VR any](a KTable[K, V1], b KTable[K, V2], name string, joiner func(key K, left V1, right V2, rightFound bool) (VR, error), values serde.Serde[VR], opts ...StoreOption) KTable[K, VR] {
	if nilFunc(a.b, name, "joiner", joiner == nil) {
		return KTable[K, VR]{}
	}
	return joinTables(a, b, name, leftTableJoin, func(k K, l V1, _ bool, r V2, rok bool) (VR, error) { return joiner(k, l, r, rok) }, values, opts)
}

// OuterJoinTables declares the outer join of tables a and b (see
// JoinTables for the nodes, store and co-partitioning): a key is in the
// result while a or b has it, with the value joiner(key, aValue, aFound,
// bValue, bFound); a side without the key has found false and the zero
// value.
//
// As Kafka Streams' KTable.outerJoin with caching off: an update on
// either side forwards the joined value; a deletion on one side forwards
// joiner with that side not found if the other side has the key, else a
// deletion (if the key was in the result).
func OuterJoinTables[K, V1, V2, VR any](a KTable[K, V1], b KTable[K, V2], name string, joiner func(key K, left V1, leftFound bool, right V2, rightFound bool) (VR, error), values serde.Serde[VR], opts ...StoreOption) KTable[K, VR] {
	if nilFunc(a.b, name, "joiner", joiner == nil) {
		return KTable[K, VR]{}
	}
	return joinTables(a, b, name, outerTableJoin, tableJoiner[K, V1, V2, VR](joiner), values, opts)
}

// requireStore reports (as a Build problem) a table with no store, which
// a join cannot look up.
func requireStore[K, V any](b *Builder, node, side string, t KTable[K, V]) bool {
	if t.store != "" {
		return true
	}
	b.dslProblem(node, "the %s table %q has no store: a join looks up the current values of its tables, so they must be materialized (a table from TableOf or an aggregation); write the derived table to a topic and read it back with TableOf", side, t.name)
	return false
}

func joinTables[K, V1, V2, VR any](a KTable[K, V1], b KTable[K, V2], name string, kind tableJoinKind, joiner tableJoiner[K, V1, V2, VR], values serde.Serde[VR], opts []StoreOption) KTable[K, VR] {
	bld := a.b
	if bld == nil || b.b == nil {
		if bld == nil {
			bld = b.b
		}
		bld.dslProblem(name, "a table join needs two tables declared on a Builder; one of them is a zero KTable")
		return KTable[K, VR]{}
	}
	if b.b != bld {
		bld.dslProblem(name, "the tables of a join were declared on different Builders")
		return KTable[K, VR]{}
	}
	if !requireStore(bld, name, "left", a) || !requireStore(bld, name, "right", b) ||
		!checkSerde(bld, name, "key", a.keys) || !checkSerde(bld, name, "result value", values) {
		return KTable[K, VR]{}
	}
	ref := timestampedKeyValueStore(bld, name, a.keys, values, opts)
	left := process(bld, name+"-left", []Node[K, Change[V1]]{a.Node()}, func() processor.Processor[K, Change[V1], K, Change[VR]] {
		return &tableJoinSide[K, V1, V2, VR]{other: b.store, result: ref.name, kind: kind, thisLeft: true,
			join: func(k K, this V1, thisOK bool, other V2, otherOK bool) (VR, error) {
				return joiner(k, this, thisOK, other, otherOK)
			}}
	}, []ProcessOption{WithStores(b.store, ref.name)})
	right := process(bld, name+"-right", []Node[K, Change[V2]]{b.Node()}, func() processor.Processor[K, Change[V2], K, Change[VR]] {
		return &tableJoinSide[K, V2, V1, VR]{other: a.store, result: ref.name, kind: kind,
			join: func(k K, this V2, thisOK bool, other V1, otherOK bool) (VR, error) {
				return joiner(k, other, otherOK, this, thisOK)
			}}
	}, []ProcessOption{WithStores(a.store, ref.name)})
	n := process(bld, name, []Node[K, Change[VR]]{left, right}, func() processor.Processor[K, Change[VR], K, Change[VR]] {
		return &resultMaterializer[K, VR]{store: ref.name}
	}, []ProcessOption{WithStores(ref.name)})
	return KTable[K, VR]{b: bld, name: n.name, store: name, keys: a.keys, values: values}
}

// tableReader reads a table's store with the timestamps it keeps (none,
// the zero time, for a store that keeps none, such as TableOf's).
type tableReader[K, V any] struct {
	ts store.TimestampedKeyValueStore[K, V]
	kv store.KeyValueStore[K, V]
}

func openTableReader[K, V any](ctx processor.StoreProvider, name string) (tableReader[K, V], error) {
	if ts, err := processor.TimestampedKeyValueStore[K, V](ctx, name); err == nil {
		return tableReader[K, V]{ts: ts}, nil
	}
	kv, err := processor.KeyValueStore[K, V](ctx, name)
	return tableReader[K, V]{kv: kv}, err
}

func (r tableReader[K, V]) get(k K) (V, time.Time, bool, error) {
	if r.ts != nil {
		return r.ts.GetWithTimestamp(k)
	}
	v, ok, err := r.kv.Get(k)
	return v, time.Time{}, ok, err
}

// tableJoinSide processes one side's changes of a table join (Kafka
// Streams' KTableKTableInnerJoin, LeftJoin, RightJoin and OuterJoin
// processors). Kafka Streams decides some cases on the side's old value,
// which it sends for left and outer joins; brook's Change has none, and
// the result store stands in for it: where the other side has no value,
// the key is in a left or outer join's result exactly when this side had
// a value.
type tableJoinSide[K, VThis, VOther, VR any] struct {
	other, result string
	kind          tableJoinKind
	// thisLeft is set on the left table's side.
	thisLeft bool
	join     func(key K, this VThis, thisOK bool, other VOther, otherOK bool) (VR, error)
	others   tableReader[K, VOther]
	results  store.KeyValueStore[K, VR]
	nilKey   bool
	dropped  int64
}

func (p *tableJoinSide[K, VThis, VOther, VR]) Init(ctx processor.Context[K, Change[VR]]) (err error) {
	p.nilKey = nillable[K]()
	if p.others, err = openTableReader[K, VOther](ctx, p.other); err != nil {
		return err
	}
	p.results, err = processor.KeyValueStore[K, VR](ctx, p.result)
	return err
}

func (p *tableJoinSide[K, VThis, VOther, VR]) Process(ctx processor.Context[K, Change[VR]], r processor.Record[K, Change[VThis]]) error {
	if md, ok := ctx.RecordMetadata(); ok && md.NullKey || p.nilKey && isNil(r.Key) {
		// A join matches equal keys: a null key matches nothing (Kafka
		// Streams skips it the same way).
		p.dropped++
		countDrop(ctx, metrics.DropNullKey)
		ctx.Logger().Warn("brook: table join dropped a record with a null key", "action", "none if such records are expected; otherwise fix the producer that writes null keys", "dropped_total", p.dropped,
			"topic", md.Topic, "partition", md.Partition, "offset", md.Offset)
		return nil
	}
	other, ots, otherOK, err := p.others.get(r.Key)
	if err != nil {
		return err
	}
	ts := r.Timestamp
	if otherOK && ots.After(ts) {
		ts = ots
	}
	deleted := r.Value.Deleted
	forward := func(c Change[VR]) error {
		return ctx.Forward(processor.Record[K, Change[VR]]{Key: r.Key, Value: c, Timestamp: ts, Headers: r.Headers})
	}
	joined := func() error {
		v, err := p.join(r.Key, r.Value.Value, !deleted, other, otherOK)
		if err != nil {
			return err
		}
		return forward(Update(v))
	}
	// inResult stands for Kafka Streams' "old value != null" test (see
	// the type's doc).
	inResult := func() (bool, error) {
		_, ok, err := p.results.Get(r.Key)
		return ok, err
	}
	switch {
	case p.kind == innerTableJoin:
		if !otherOK {
			return nil
		}
		if deleted {
			return forward(Deletion[VR]())
		}
		return joined()
	case p.kind == leftTableJoin && !p.thisLeft:
		// The right side of a left join (Kafka Streams'
		// KTableKTableRightJoin): only keys the left side has.
		if !otherOK {
			return nil
		}
		return joined()
	default: // the left side of a left join, either side of an outer join
		if !otherOK && deleted {
			if ok, err := inResult(); err != nil || !ok {
				return err
			}
		}
		if deleted && (p.kind == leftTableJoin || !otherOK) {
			return forward(Deletion[VR]())
		}
		return joined()
	}
}

func (p *tableJoinSide[K, VThis, VOther, VR]) Close() error { return nil }

// resultMaterializer writes a join's result changes to its store, with
// their timestamps, and forwards them.
type resultMaterializer[K, V any] struct {
	store string
	kv    store.TimestampedKeyValueStore[K, V]
}

func (p *resultMaterializer[K, V]) Init(ctx processor.Context[K, Change[V]]) (err error) {
	p.kv, err = processor.TimestampedKeyValueStore[K, V](ctx, p.store)
	return err
}

func (p *resultMaterializer[K, V]) Process(ctx processor.Context[K, Change[V]], r processor.Record[K, Change[V]]) error {
	var err error
	if r.Value.Deleted {
		err = p.kv.Delete(r.Key)
	} else {
		err = p.kv.PutWithTimestamp(r.Key, r.Value.Value, r.Timestamp)
	}
	if err != nil {
		return err
	}
	return ctx.Forward(r)
}

func (p *resultMaterializer[K, V]) Close() error { return nil }
