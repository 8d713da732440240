package topology

import (
	"context"
	"fmt"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// This file is the DSL's global tables and their joins (docs/DSL.md,
// "Global tables").

// GlobalKTable is a typed handle to a global table (GlobalTable): a
// table that every instance of the application holds whole.
type GlobalKTable[K, V any] struct {
	b      *Builder
	store  string
	topic  string
	keys   serde.Serde[K]
	values serde.Serde[V]
}

// GlobalTable declares a global table named name over topic, a compacted
// topic: every instance of the application reads all partitions of topic
// into one local key-value store named name (LevelDB unless InMemory is
// given), outside every sub-topology and task, as Kafka Streams' global
// tables. The topic is the store's changelog: nothing is written
// elsewhere. A record with a null value deletes its key.
//
//   - Restore: before the first task processes a record, Run reads every
//     partition of topic up to the end offsets it takes at start
//     (read_committed under exactly-once); from the offsets checkpointed
//     in the state directory when the local store has them, so a restart
//     reads only the tail. Progress goes to Config.RestoreListener.
//   - Then a reader goroutine of the instance keeps the store current as
//     records arrive: a stream record joins the value the store holds
//     when it is processed (processing time, as in Kafka Streams).
//   - The topic's partition count is independent of every other topic's:
//     global tables are not co-partitioned with anything.
//   - A record whose key or value cannot be deserialized goes to the
//     topology's deserialization handler, as a source's record does
//     (docs/RUNTIME.md, "Global tables").
//
// Every processor of the topology may read the store: JoinGlobal and
// LeftJoinGlobal do, and a hand-written processor gets it by name with
// processor.KeyValueStore (connecting it with WithStores is optional). It
// is read-only: a write returns an error matching ErrGlobalStoreReadOnly.
// Interactive queries (query.KeyValue, the HTTP handler) answer from the
// local copy without forwarding. WithoutLogging is refused: the topic is
// the changelog.
func GlobalTable[K, V any](b *Builder, name, topic string, keys serde.Serde[K], values serde.Serde[V], opts ...StoreOption) GlobalKTable[K, V] {
	if b == nil {
		return GlobalKTable[K, V]{}
	}
	var cfg storeConfig
	for _, o := range opts {
		o(&cfg)
	}
	if topic == "" {
		b.problem(InvalidStore, "", "", name, "a global table needs a topic")
	}
	if cfg.unlogged {
		b.problem(InvalidStore, "", topic, name, "a global table cannot be WithoutLogging: its topic is its changelog")
	}
	spec := task.StoreSpec{Name: name, Kind: "key-value", InMemory: cfg.inMemory, SourceTopic: topic, Global: true,
		Open: kvOpen(name, keys, values), Query: query.KeyValueCodec(keys, values)}
	spec.ReadOnly = func(typed any) any {
		if s, ok := typed.(store.KeyValueStore[K, V]); ok {
			return readOnlyKV[K, V]{KeyValueStore: s}
		}
		return typed
	}
	spec.Decode = globalDecoder(keys, values)
	addStore(b, spec, keys, values)
	// The store's serdes are checked against the topic's subjects, as a
	// source's are.
	b.addPreflights(name, []string{topic}, keys, values)
	return GlobalKTable[K, V]{b: b, store: name, topic: topic, keys: keys, values: values}
}

// globalDecoder deserializes a global table's record to check it, waiting
// for the schema registry as long as ctx allows (serde.ContextDeserializer).
func globalDecoder[K, V any](keys serde.Serde[K], values serde.Serde[V]) func(ctx context.Context, topic string, key, value []byte) (string, error) {
	return func(ctx context.Context, topic string, key, value []byte) (string, error) {
		if keys == nil || values == nil {
			return "key", fmt.Errorf("topology: global table has no serdes")
		}
		if _, err := deserializeContext(ctx, keys, topic, key); err != nil {
			return "key", err
		}
		if value == nil {
			return "", nil // a tombstone
		}
		if _, err := deserializeContext(ctx, values, topic, value); err != nil {
			return "value", err
		}
		return "", nil
	}
}

func deserializeContext[T any](ctx context.Context, s serde.Serde[T], topic string, data []byte) (T, error) {
	if cd, ok := s.(serde.ContextDeserializer[T]); ok {
		return cd.DeserializeContext(ctx, topic, data)
	}
	return s.Deserialize(topic, data)
}

// Name returns the global table's name, which is its store's.
func (t GlobalKTable[K, V]) Name() string { return t.store }

// Topic returns the topic the global table reads.
func (t GlobalKTable[K, V]) Topic() string { return t.topic }

// Store returns the global table's store, for WithStores (optional: every
// processor can read a global store) and queries.
func (t GlobalKTable[K, V]) Store() KeyValueStoreRef[K, V] {
	return KeyValueStoreRef[K, V]{name: t.store}
}

// ErrGlobalStoreReadOnly is matched (errors.Is) by the error of a write
// (Put, PutIfAbsent, Delete) to a global table's store from a processor:
// only the table's topic writes it.
var ErrGlobalStoreReadOnly = task.ErrGlobalStoreReadOnly

// readOnlyKV is the view processors get of a global store: reads pass,
// writes fail with ErrGlobalStoreReadOnly.
type readOnlyKV[K, V any] struct {
	store.KeyValueStore[K, V]
}

func (s readOnlyKV[K, V]) refuse() error {
	return fmt.Errorf("topology: store %q: %w", s.Name(), ErrGlobalStoreReadOnly)
}

// Put implements store.KeyValueStore: it refuses.
func (s readOnlyKV[K, V]) Put(K, V) error { return s.refuse() }

// PutIfAbsent implements store.KeyValueStore: it refuses.
func (s readOnlyKV[K, V]) PutIfAbsent(K, V) (V, bool, error) {
	var zero V
	return zero, false, s.refuse()
}

// Delete implements store.KeyValueStore: it refuses.
func (s readOnlyKV[K, V]) Delete(K) error { return s.refuse() }

// JoinGlobal declares a processor node named name that joins each record
// of s with the global table gt (an inner join, Kafka Streams'
// KStream#join(GlobalKTable, ...)): keySelector(key, value) gives the
// table key to look up; when gt holds it, the node forwards
// joiner(key, value, tableValue) with the record's key, timestamp and
// headers; when it does not, the record is dropped. The lookup reads the
// table as it is when the record is processed. No repartitioning: every
// task reads the whole table, so s may be keyed any way. An error from
// keySelector or joiner goes to the processing error handler.
//
// As in Kafka Streams, a record with a nil value (pointer, slice, map or
// interface types) is dropped, and so is a record whose selected key is
// nil; each drop is logged as a warning ("brook: join dropped a record")
// with the node's running count, topic, partition and offset. keySelector
// is not called for a nil value.
func JoinGlobal[K, V, GK, GV, VR any](s KStream[K, V], gt GlobalKTable[GK, GV], name string,
	keySelector func(key K, value V) (GK, error), joiner func(key K, value V, tableValue GV) (VR, error)) KStream[K, VR] {
	if nilFunc(s.b, name, "key selector", keySelector == nil) || nilFunc(s.b, name, "joiner", joiner == nil) {
		return KStream[K, VR]{}
	}
	return joinGlobal(s, gt, name, false, keySelector, func(k K, v V, gv GV, found bool) (VR, bool, error) {
		if !found {
			var zero VR
			return zero, false, nil
		}
		out, err := joiner(k, v, gv)
		return out, true, err
	})
}

// LeftJoinGlobal is JoinGlobal as a left join (Kafka Streams'
// KStream#leftJoin(GlobalKTable, ...)): every record of s gives one
// output, joiner(key, value, tableValue, found), where found reports
// whether gt holds the selected key (tableValue is the zero GV when it
// does not: Go has no null). A nil selected key is joined with found
// false, without a lookup; a record with a nil value is dropped with a
// warning, as JoinGlobal drops it (Kafka Streams does the same).
func LeftJoinGlobal[K, V, GK, GV, VR any](s KStream[K, V], gt GlobalKTable[GK, GV], name string,
	keySelector func(key K, value V) (GK, error), joiner func(key K, value V, tableValue GV, found bool) (VR, error)) KStream[K, VR] {
	if nilFunc(s.b, name, "key selector", keySelector == nil) || nilFunc(s.b, name, "joiner", joiner == nil) {
		return KStream[K, VR]{}
	}
	return joinGlobal(s, gt, name, true, keySelector, func(k K, v V, gv GV, found bool) (VR, bool, error) {
		out, err := joiner(k, v, gv, found)
		return out, true, err
	})
}

// joinGlobal declares the join node: join says what a record and its
// lookup give, and whether to forward it; left says whether a nil
// selected key is joined (with found false) rather than dropped.
func joinGlobal[K, V, GK, GV, VR any](s KStream[K, V], gt GlobalKTable[GK, GV], name string, left bool,
	keySelector func(K, V) (GK, error), join func(K, V, GV, bool) (VR, bool, error)) KStream[K, VR] {
	if s.b == nil {
		return KStream[K, VR]{}
	}
	if gt.b != s.b || gt.store == "" {
		s.b.dslProblem(name, "the global table must be declared with GlobalTable on the stream's Builder")
		return KStream[K, VR]{}
	}
	ref := gt.Store()
	n := process(s.b, name, []Node[K, V]{s.Node()}, func() processor.Processor[K, V, K, VR] {
		return &globalJoiner[K, V, GK, GV, VR]{ref: ref, left: left, keySelector: keySelector, join: join,
			nilValue: nillable[V](), nilKey: nillable[GK]()}
	}, []ProcessOption{WithStores(gt.store)})
	// A join keeps the stream's keys where they are.
	out := KStream[K, VR]{b: s.b, name: n.name, keyChanged: s.keyChanged, keys: s.keys}
	out.values, _ = any(s.values).(serde.Serde[VR])
	return out
}

// globalJoiner runs JoinGlobal and LeftJoinGlobal, as Kafka Streams'
// KStreamGlobalKTableJoinProcessor.
type globalJoiner[K, V, GK, GV, VR any] struct {
	ref         KeyValueStoreRef[GK, GV]
	table       store.KeyValueStore[GK, GV]
	left        bool
	keySelector func(K, V) (GK, error)
	join        func(K, V, GV, bool) (VR, bool, error)
	// nilValue and nilKey say whether V and GK can be nil at all;
	// dropped counts the records dropped for a nil value or join key.
	nilValue, nilKey bool
	dropped          int64
}

func (j *globalJoiner[K, V, GK, GV, VR]) Init(ctx processor.Context[K, VR]) (err error) {
	j.table, err = j.ref.From(ctx)
	return err
}

func (j *globalJoiner[K, V, GK, GV, VR]) Process(ctx processor.Context[K, VR], r processor.Record[K, V]) error {
	if j.nilValue && isNil(r.Value) {
		// A nil value is no record to join (Kafka Streams drops it too).
		j.drop(ctx, "null value", r)
		return nil
	}
	gk, err := j.keySelector(r.Key, r.Value)
	if err != nil {
		return fmt.Errorf("key selector: %w", err)
	}
	var gv GV
	found := false
	if j.nilKey && isNil(gk) {
		// No key to look up: the left join joins the record with no
		// table value, the inner join drops it (Kafka Streams too).
		if !j.left {
			j.drop(ctx, "null join key", r)
			return nil
		}
	} else if gv, found, err = j.table.Get(gk); err != nil {
		return fmt.Errorf("global table %q: get: %w", j.ref.name, err)
	}
	out, ok, err := j.join(r.Key, r.Value, gv, found)
	if err != nil {
		return fmt.Errorf("joiner: %w", err)
	}
	if !ok {
		return nil
	}
	return ctx.Forward(processor.Revalue(r, out))
}

// drop logs a record the join cannot take, with the node's running count
// (Kafka Streams counts them in its dropped-records metric).
func (j *globalJoiner[K, V, GK, GV, VR]) drop(ctx processor.Context[K, VR], reason string, r processor.Record[K, V]) {
	j.dropped++
	md, _ := ctx.RecordMetadata()
	ctx.Logger().Warn("brook: join dropped a record", "reason", reason, "dropped_total", j.dropped,
		"topic", md.Topic, "partition", md.Partition, "offset", md.Offset, "timestamp_ms", r.Timestamp.UnixMilli(),
		"action", "none if such records are expected; otherwise fix the producer (null values) or the key selector")
}

func (j *globalJoiner[K, V, GK, GV, VR]) Close() error { return nil }
