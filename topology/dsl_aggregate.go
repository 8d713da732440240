package topology

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// This file holds the key-value aggregations of the DSL (docs/DSL.md):
// Count, Reduce and Aggregate of a KGroupedStream, and GroupTableBy with
// CountTable, ReduceTable and AggregateTable of a KGroupedTable. Each
// returns a KTable backed by a key-value store named by the user, logged
// to "<application-id>-<name>-changelog" unless WithoutLogging is given.
//
// Aggregations are package functions, named after what they aggregate
// (Count for a grouped stream, CountTable for a grouped table,
// CountSessions for session windows), because Go functions cannot be
// overloaded and Aggregate introduces a type.

// aggFuncs is an aggregation as the processors run it: an optional
// initial aggregate and how a value is added (have is false when there is
// no aggregate yet and init gave none: Reduce starts from the first
// value).
type aggFuncs[K, V, A any] struct {
	init func() (A, bool)
	add  func(key K, value V, agg A, have bool) (A, error)
}

func countFuncs[K, V any]() aggFuncs[K, V, int64] {
	return aggFuncs[K, V, int64]{
		init: func() (int64, bool) { return 0, true },
		add:  func(_ K, _ V, n int64, _ bool) (int64, error) { return n + 1, nil },
	}
}

func reduceFuncs[K, V any](fn func(agg, value V) (V, error)) aggFuncs[K, V, V] {
	return aggFuncs[K, V, V]{
		init: func() (V, bool) { var zero V; return zero, false },
		add: func(_ K, v V, agg V, have bool) (V, error) {
			if !have {
				return v, nil
			}
			return fn(agg, v)
		},
	}
}

func aggregateFuncs[K, V, A any](init func() A, add func(key K, value V, agg A) (A, error)) aggFuncs[K, V, A] {
	return aggFuncs[K, V, A]{
		init: func() (A, bool) { return init(), true },
		add:  func(k K, v V, agg A, _ bool) (A, error) { return add(k, v, agg) },
	}
}

// Count declares a processor node named name that counts the records of
// each key of g, and the key-value store name that holds the counts
// (opts apply to it). It returns the table of counts: every record
// forwards its key's new count as an update. Records with a null key or
// value are dropped, counted and logged (see docs/DSL.md).
func Count[K, V any](g KGroupedStream[K, V], name string, opts ...StoreOption) KTable[K, int64] {
	return aggregateStream(g, name, countFuncs[K, V](), serde.Int64(), opts)
}

// Reduce declares a processor node named name that combines the values of
// each key of g with fn (fn(aggregate, value) returns the new aggregate;
// a key's first value is its first aggregate), and the key-value store
// name that holds the aggregates (opts apply to it). The store's value
// serde is g's (see WithSerdes). An error from fn goes to the processing
// error handler and leaves the aggregate unchanged.
func Reduce[K, V any](g KGroupedStream[K, V], name string, fn func(agg, value V) (V, error), opts ...StoreOption) KTable[K, V] {
	if nilFunc(g.b, name, "reduce", fn == nil) {
		return KTable[K, V]{}
	}
	return aggregateStream(g, name, reduceFuncs[K](fn), g.values, opts)
}

// Aggregate declares a processor node named name that folds the values of
// each key of g into an aggregate of type A: a key starts from init() and
// each record replaces its aggregate by add(key, value, aggregate). The
// aggregates live in the key-value store name, serialized by aggSerde
// (opts apply to the store). An error from add goes to the processing
// error handler and leaves the aggregate unchanged.
func Aggregate[K, V, A any](g KGroupedStream[K, V], name string, init func() A, add func(key K, value V, agg A) (A, error), aggSerde serde.Serde[A], opts ...StoreOption) KTable[K, A] {
	if nilFunc(g.b, name, "initializer", init == nil) || nilFunc(g.b, name, "aggregator", add == nil) {
		return KTable[K, A]{}
	}
	return aggregateStream(g, name, aggregateFuncs(init, add), aggSerde, opts)
}

func aggregateStream[K, V, A any](g KGroupedStream[K, V], name string, fns aggFuncs[K, V, A], aggSerde serde.Serde[A], opts []StoreOption) KTable[K, A] {
	if g.b == nil {
		return KTable[K, A]{}
	}
	if !checkSerde(g.b, name, "key", g.keys) || !checkSerde(g.b, name, "aggregate", aggSerde) {
		return KTable[K, A]{}
	}
	ref := timestampedKeyValueStore(g.b, name, g.keys, aggSerde, opts)
	n := process(g.b, name, []Node[K, V]{g.stream().Node()}, func() processor.Processor[K, V, K, Change[A]] {
		return &streamAggregator[K, V, A]{store: ref.name, fns: fns, drops: newDropper[K, V]()}
	}, []ProcessOption{WithStores(name)})
	return KTable[K, A]{b: g.b, name: n.name, store: name, keys: g.keys, values: aggSerde}
}

// streamAggregator runs Count, Reduce and Aggregate of a grouped stream
// as Kafka Streams' KStreamAggregate and KStreamReduce do: the output
// timestamp is the larger of the record's and the stored aggregate's.
type streamAggregator[K, V, A any] struct {
	store string
	fns   aggFuncs[K, V, A]
	kv    store.TimestampedKeyValueStore[K, A]
	drops *dropper[K, V]
}

func (p *streamAggregator[K, V, A]) Init(ctx processor.Context[K, Change[A]]) (err error) {
	p.kv, err = processor.TimestampedKeyValueStore[K, A](ctx, p.store)
	return err
}

func (p *streamAggregator[K, V, A]) Process(ctx processor.Context[K, Change[A]], r processor.Record[K, V]) error {
	if p.drops.nullKeyOrValue(ctx, r) {
		return nil
	}
	agg, ts, have, err := p.kv.GetWithTimestamp(r.Key)
	if err != nil {
		return err
	}
	out := r.Timestamp
	if !have {
		agg, have = p.fns.init()
	} else if ts.After(out) {
		out = ts
	}
	agg, err = p.fns.add(r.Key, r.Value, agg, have)
	if err != nil {
		return err
	}
	if err := p.kv.PutWithTimestamp(r.Key, agg, out); err != nil {
		return err
	}
	return ctx.Forward(processor.Record[K, Change[A]]{Key: r.Key, Value: Update(agg), Timestamp: out, Headers: r.Headers})
}

func (p *streamAggregator[K, V, A]) Close() error { return nil }

// dropper drops, counts and logs the records an aggregation cannot take.
// Kafka Streams drops them too and counts them in its dropped-records
// metric; brook counts them in the App's metrics (package metrics,
// records dropped by reason), and each warning carries the node's
// running count (dropped_total, per task).
type dropper[K, V any] struct {
	nilKey, nilValue bool // whether K and V can be nil at all
	dropped          int64
}

func newDropper[K, V any]() *dropper[K, V] {
	return &dropper[K, V]{nilKey: nillable[K](), nilValue: nillable[V]()}
}

// nullKeyOrValue reports (after logging it) that r has a null key (a null
// key on the wire, or a nil key of a pointer, slice, map or interface
// type) or a nil value: such a record cannot be aggregated.
func (d *dropper[K, V]) nullKeyOrValue(ctx recordLogger, r processor.Record[K, V]) bool {
	reason := d.nullReason(ctx, r)
	if reason == "" {
		return false
	}
	d.drop(ctx, reason, r.Timestamp)
	return true
}

// nullReason returns why nullKeyOrValue drops r ("null key" or "null
// value"), or "" if it keeps it; it logs nothing.
func (d *dropper[K, V]) nullReason(ctx recordLogger, r processor.Record[K, V]) string {
	md, ok := ctx.RecordMetadata()
	switch {
	case ok && md.NullKey, d.nilKey && isNil(r.Key):
		return "null key"
	case d.nilValue && isNil(r.Value):
		return "null value"
	}
	return ""
}

func (d *dropper[K, V]) drop(ctx recordLogger, reason string, ts time.Time, attrs ...any) {
	d.dropped++
	countDrop(ctx, dropReason(reason))
	md, _ := ctx.RecordMetadata()
	ctx.Logger().Warn("brook: aggregation dropped a record", append([]any{"action", "none if such records are expected; otherwise fix the producer (null keys or values), or raise the window's Grace for late records", "reason", reason, "dropped_total", d.dropped,
		"topic", md.Topic, "partition", md.Partition, "offset", md.Offset, "timestamp_ms", ts.UnixMilli()}, attrs...)...)
}

// recordLogger is the part of a processor.Context a dropper uses.
type recordLogger interface {
	RecordMetadata() (processor.RecordMetadata, bool)
	Logger() *slog.Logger
}

// nillable reports whether values of T can be nil.
func nillable[T any]() bool {
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface, reflect.Chan, reflect.Func:
		return true
	}
	return false
}

// KGroupedTable is a table re-grouped by a new key (GroupTableBy): the
// input of CountTable, ReduceTable and AggregateTable. Its records are
// the additions and subtractions of the source table's changes, in the
// partition of their new key.
type KGroupedTable[K, V any] struct {
	b      *Builder
	name   string
	keys   serde.Serde[K]
	values serde.Serde[V]
}

// Name returns the name of the node whose records are grouped.
func (g KGroupedTable[K, V]) Name() string { return g.name }

// tableDelta is a grouped table's record: the value to subtract from the
// key's aggregate (a value that left the group) and the value to add (one
// that joined it). A key moving within one group carries both.
type tableDelta[V any] struct {
	New, Old       V
	HasNew, HasOld bool
}

// tableDeltaSerde writes a delta as a flags byte (1: new, 2: old), the
// new value's length (uint32, big-endian) and bytes, then the old value's
// bytes.
type tableDeltaSerde[V any] struct{ values serde.Serde[V] }

func (s tableDeltaSerde[V]) Serialize(topic string, d tableDelta[V]) ([]byte, error) {
	var flags byte
	var nb, ob []byte
	var err error
	if d.HasNew {
		flags |= 1
		if nb, err = s.values.Serialize(topic, d.New); err != nil {
			return nil, err
		}
	}
	if d.HasOld {
		flags |= 2
		if ob, err = s.values.Serialize(topic, d.Old); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, 5+len(nb)+len(ob))
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, uint32(len(nb)))
	out = append(append(out, nb...), ob...)
	return out, nil
}

func (s tableDeltaSerde[V]) Deserialize(topic string, data []byte) (tableDelta[V], error) {
	var d tableDelta[V]
	if len(data) < 5 || data[0] > 3 {
		return d, &serde.DecodeError{Format: "table-delta", Topic: topic, SchemaID: -1, Kind: serde.ErrCorrupt,
			Err: fmt.Errorf("grouped-table record of %d bytes is not a delta", len(data))}
	}
	n := binary.BigEndian.Uint32(data[1:])
	if uint64(n) > uint64(len(data)-5) {
		return d, &serde.DecodeError{Format: "table-delta", Topic: topic, SchemaID: -1, Kind: serde.ErrTruncated,
			Err: fmt.Errorf("new value of %d bytes in a record of %d", n, len(data))}
	}
	var err error
	if data[0]&1 != 0 {
		d.HasNew = true
		if d.New, err = s.values.Deserialize(topic, data[5:5+n]); err != nil {
			return d, err
		}
	}
	if data[0]&2 != 0 {
		d.HasOld = true
		if d.Old, err = s.values.Deserialize(topic, data[5+n:]); err != nil {
			return d, err
		}
	}
	return d, nil
}

// selection is what a GroupTableBy node remembers of a source key: the
// group key and value it last added, which it subtracts when the source
// key changes or goes.
type selection[K, V any] struct {
	Key   K
	Value V
}

// selectionSerde writes the key's length (uint32, big-endian), the key
// and the value.
type selectionSerde[K, V any] struct {
	keys   serde.Serde[K]
	values serde.Serde[V]
}

func (s selectionSerde[K, V]) Serialize(topic string, sel selection[K, V]) ([]byte, error) {
	kb, err := s.keys.Serialize(topic, sel.Key)
	if err != nil {
		return nil, err
	}
	vb, err := s.values.Serialize(topic, sel.Value)
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(kb)+len(vb)), uint32(len(kb)))
	return append(append(out, kb...), vb...), nil
}

func (s selectionSerde[K, V]) Deserialize(topic string, data []byte) (selection[K, V], error) {
	var sel selection[K, V]
	if len(data) < 4 || uint64(binary.BigEndian.Uint32(data)) > uint64(len(data)-4) {
		return sel, &serde.DecodeError{Format: "table-selection", Topic: topic, SchemaID: -1, Kind: serde.ErrTruncated,
			Err: fmt.Errorf("selection of %d bytes", len(data))}
	}
	n := binary.BigEndian.Uint32(data)
	var err error
	if sel.Key, err = s.keys.Deserialize(topic, data[4:4+n]); err != nil {
		return sel, err
	}
	sel.Value, err = s.values.Deserialize(topic, data[4+n:])
	return sel, err
}

// GroupTableBy re-groups table t by the key and value selector picks for
// each of its rows, for CountTable, ReduceTable and AggregateTable. It
// declares a processor node named name, the key-value store
// "<name>-selected" (the group key and value last taken from each row of
// t, so that a change subtracts exactly what was added; opts apply to it)
// and the repartition topic "<application-id>-<name>-repartition" (nodes
// "<name>-repartition-sink" and "<name>-repartition-source"; WithPartitions
// sets its partition count). keys and values serialize the new keys and
// values.
//
// As Kafka Streams' KTable.groupBy: an update of a row subtracts its old
// value from its old group and adds the new value to its new group (one
// record carrying both when the group is the same); a deletion only
// subtracts. A selector returning a nil key or value (for pointer, slice,
// map or interface types) takes the row out of every group, with a
// warning. An error from selector goes to the processing error handler
// and leaves the row's groups unchanged.
func GroupTableBy[K, V, KOut, VOut any](t KTable[K, V], name string, selector func(key K, value V) (KOut, VOut, error), keys serde.Serde[KOut], values serde.Serde[VOut], opts ...RepartitionOption) KGroupedTable[KOut, VOut] {
	if t.b == nil {
		return KGroupedTable[KOut, VOut]{}
	}
	b := t.b
	if nilFunc(b, name, "group-by selector", selector == nil) ||
		!checkSerde(b, name, "key", t.keys) || !checkSerde(b, name, "group key", keys) || !checkSerde(b, name, "group value", values) {
		return KGroupedTable[KOut, VOut]{}
	}
	var c repartitionConfig
	for _, o := range opts {
		o(&c)
	}
	if c.keys != nil || c.values != nil || c.name != "" {
		b.dslProblem(name, "GroupTableBy takes its serdes as arguments and names its topic after the node; only WithPartitions applies")
	}
	if c.partitions < 0 {
		b.dslProblem(name, "repartition partition count %d is negative", c.partitions)
	}
	selRef := KeyValueStore(b, name+"-selected", t.keys, serde.Serde[selection[KOut, VOut]](selectionSerde[KOut, VOut]{keys, values}))
	n := process(b, name, []Node[K, Change[V]]{t.Node()}, func() processor.Processor[K, Change[V], KOut, tableDelta[VOut]] {
		return &tableRegrouper[K, V, KOut, VOut]{store: selRef.name, selector: selector,
			nilKey: nillable[KOut](), nilValue: nillable[VOut]()}
	}, []ProcessOption{WithStores(selRef.name)})
	deltas := KStream[KOut, tableDelta[VOut]]{b: b, name: n.name, keyChanged: true}
	r := repartition(deltas, name, c.partitions, keys, serde.Serde[tableDelta[VOut]](tableDeltaSerde[VOut]{values}))
	return KGroupedTable[KOut, VOut]{b: b, name: r.name, keys: keys, values: values}
}

// tableRegrouper is the GroupTableBy node (Kafka Streams'
// KTableRepartitionMap, with the selection remembered in a store rather
// than recomputed from an old value).
type tableRegrouper[K, V, KOut, VOut any] struct {
	store            string
	selector         func(K, V) (KOut, VOut, error)
	kv               store.KeyValueStore[K, selection[KOut, VOut]]
	nilKey, nilValue bool
	dropped          int64
}

func (p *tableRegrouper[K, V, KOut, VOut]) Init(ctx processor.Context[KOut, tableDelta[VOut]]) (err error) {
	p.kv, err = processor.KeyValueStore[K, selection[KOut, VOut]](ctx, p.store)
	return err
}

func (p *tableRegrouper[K, V, KOut, VOut]) Process(ctx processor.Context[KOut, tableDelta[VOut]], r processor.Record[K, Change[V]]) error {
	prev, hadPrev, err := p.kv.Get(r.Key)
	if err != nil {
		return err
	}
	var next selection[KOut, VOut]
	hasNext := false
	if !r.Value.Deleted {
		k, v, err := p.selector(r.Key, r.Value.Value)
		if err != nil {
			return err
		}
		next, hasNext = selection[KOut, VOut]{Key: k, Value: v}, true
		reason := ""
		switch {
		case p.nilKey && isNil(k):
			reason = "null key"
		case p.nilValue && isNil(v):
			reason = "null value"
		}
		if reason != "" {
			p.dropped++
			countDrop(ctx, dropReason(reason))
			md, _ := ctx.RecordMetadata()
			ctx.Logger().Warn("brook: group-by selected a null key or value; the row leaves its group", "action", "make the group-by selector return a non-null key if the row must stay counted", "reason", reason,
				"dropped_total", p.dropped, "topic", md.Topic, "partition", md.Partition, "offset", md.Offset)
			hasNext = false
		}
	}
	switch {
	case hasNext:
		err = p.kv.Put(r.Key, next)
	case hadPrev:
		err = p.kv.Delete(r.Key)
	}
	if err != nil {
		return err
	}
	out := func(k KOut, d tableDelta[VOut]) error {
		return ctx.Forward(processor.Record[KOut, tableDelta[VOut]]{Key: k, Value: d, Timestamp: r.Timestamp, Headers: r.Headers})
	}
	if hadPrev && hasNext && reflect.DeepEqual(prev.Key, next.Key) {
		return out(next.Key, tableDelta[VOut]{New: next.Value, HasNew: true, Old: prev.Value, HasOld: true})
	}
	if hadPrev {
		if err := out(prev.Key, tableDelta[VOut]{Old: prev.Value, HasOld: true}); err != nil {
			return err
		}
	}
	if hasNext {
		return out(next.Key, tableDelta[VOut]{New: next.Value, HasNew: true})
	}
	return nil
}

func (p *tableRegrouper[K, V, KOut, VOut]) Close() error { return nil }

// CountTable declares a processor node named name that counts the rows
// of each group of g, and the key-value store name that holds the counts
// (opts apply to it). A row joining a group adds one, a row leaving it
// (moved to another group, or deleted) subtracts one; a group whose rows
// have all left keeps the count 0 (as in Kafka Streams).
func CountTable[K, V any](g KGroupedTable[K, V], name string, opts ...StoreOption) KTable[K, int64] {
	return aggregateTable(g, name, countFuncs[K, V](),
		func(_ K, _ V, n int64) (int64, error) { return n - 1, nil }, serde.Int64(), opts)
}

// ReduceTable declares a processor node named name that combines the
// values of each group of g: adder(aggregate, value) for a value that
// joins the group (its first value is its first aggregate), subtractor(
// aggregate, value) for one that leaves it. The aggregates live in the
// key-value store name (g's value serde; opts apply to it). Errors go to
// the processing error handler.
func ReduceTable[K, V any](g KGroupedTable[K, V], name string, adder, subtractor func(agg, value V) (V, error), opts ...StoreOption) KTable[K, V] {
	if nilFunc(g.b, name, "adder", adder == nil) || nilFunc(g.b, name, "subtractor", subtractor == nil) {
		return KTable[K, V]{}
	}
	return aggregateTable(g, name, reduceFuncs[K](adder),
		func(_ K, v V, agg V) (V, error) { return subtractor(agg, v) }, g.values, opts)
}

// AggregateTable declares a processor node named name that folds the
// values of each group of g into an aggregate of type A: a group starts
// from init(); a value joining it is added with adder(key, value,
// aggregate), a value leaving it removed with subtractor(key, value,
// aggregate). The aggregates live in the key-value store name, serialized
// by aggSerde (opts apply to it). Errors go to the processing error
// handler.
func AggregateTable[K, V, A any](g KGroupedTable[K, V], name string, init func() A, adder, subtractor func(key K, value V, agg A) (A, error), aggSerde serde.Serde[A], opts ...StoreOption) KTable[K, A] {
	if nilFunc(g.b, name, "initializer", init == nil) || nilFunc(g.b, name, "adder", adder == nil) || nilFunc(g.b, name, "subtractor", subtractor == nil) {
		return KTable[K, A]{}
	}
	return aggregateTable(g, name, aggregateFuncs(init, adder), subtractor, aggSerde, opts)
}

func aggregateTable[K, V, A any](g KGroupedTable[K, V], name string, fns aggFuncs[K, V, A], sub func(K, V, A) (A, error), aggSerde serde.Serde[A], opts []StoreOption) KTable[K, A] {
	if g.b == nil {
		return KTable[K, A]{}
	}
	if !checkSerde(g.b, name, "key", g.keys) || !checkSerde(g.b, name, "aggregate", aggSerde) {
		return KTable[K, A]{}
	}
	ref := timestampedKeyValueStore(g.b, name, g.keys, aggSerde, opts)
	n := process(g.b, name, []Node[K, tableDelta[V]]{{b: g.b, name: g.name}}, func() processor.Processor[K, tableDelta[V], K, Change[A]] {
		return &tableAggregator[K, V, A]{store: ref.name, fns: fns, sub: sub}
	}, []ProcessOption{WithStores(name)})
	return KTable[K, A]{b: g.b, name: n.name, store: name, keys: g.keys, values: aggSerde}
}

// tableAggregator runs the aggregations of a grouped table as Kafka
// Streams' KTableAggregate and KTableReduce do: subtract the old value
// (if the group has an aggregate), then add the new one; the output
// timestamp is the larger of the record's and the stored aggregate's.
type tableAggregator[K, V, A any] struct {
	store string
	fns   aggFuncs[K, V, A]
	sub   func(K, V, A) (A, error)
	kv    store.TimestampedKeyValueStore[K, A]
}

func (p *tableAggregator[K, V, A]) Init(ctx processor.Context[K, Change[A]]) (err error) {
	p.kv, err = processor.TimestampedKeyValueStore[K, A](ctx, p.store)
	return err
}

func (p *tableAggregator[K, V, A]) Process(ctx processor.Context[K, Change[A]], r processor.Record[K, tableDelta[V]]) error {
	agg, ts, have, err := p.kv.GetWithTimestamp(r.Key)
	if err != nil {
		return err
	}
	out := r.Timestamp
	if have && ts.After(out) {
		out = ts
	}
	d := r.Value
	if d.HasOld && have {
		if agg, err = p.sub(r.Key, d.Old, agg); err != nil {
			return err
		}
	}
	if d.HasNew {
		if !have {
			agg, have = p.fns.init()
		}
		if agg, err = p.fns.add(r.Key, d.New, agg, have); err != nil {
			return err
		}
		have = true
	}
	if !have {
		// A subtraction from a group with no aggregate: nothing to undo.
		md, _ := ctx.RecordMetadata()
		ctx.Logger().Debug("brook: table aggregation: subtraction for a group with no aggregate", "topic", md.Topic, "partition", md.Partition, "offset", md.Offset)
		return nil
	}
	if err := p.kv.PutWithTimestamp(r.Key, agg, out); err != nil {
		return err
	}
	return ctx.Forward(processor.Record[K, Change[A]]{Key: r.Key, Value: Update(agg), Timestamp: out, Headers: r.Headers})
}

func (p *tableAggregator[K, V, A]) Close() error { return nil }

// countDrop counts a record the DSL processor behind ctx (its
// processor.Context) dropped, in the App's metrics (metrics.NodeSnapshot's
// Dropped); it does nothing when the App measures nothing.
func countDrop(ctx any, reason metrics.DropReason) { task.CountDropped(ctx, reason) }

// dropReason maps the reasons the DSL's log lines give to the metrics'.
func dropReason(reason string) metrics.DropReason {
	switch reason {
	case "null key":
		return metrics.DropNullKey
	case "null value":
		return metrics.DropNullValue
	case "late":
		return metrics.DropLate
	case "duplicate":
		return metrics.DropDuplicate
	}
	return metrics.DropError
}
