package topology

import (
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
)

// This file is the record-stream half of the DSL (docs/DSL.md). Every
// operation declares ordinary nodes on the Builder, named by the user, so
// Describe, the TestDriver and the Kafka runtime see them as they see
// hand-written ones.
//
// Go has no method type parameters: operations that keep the key and
// value types are methods of KStream, operations that change a type are
// package functions taking the stream as their first argument.

// KStream is a typed handle to a stream of records of type Record[K,V]:
// a source, or the output of a DSL operation. It is a value; copying it is
// cheap, and every operation on it adds a node to its Builder.
//
// The zero KStream belongs to no Builder: operations on it declare
// nothing, and Build refuses it where it is used as a parent.
//
// The type is KStream rather than Stream because Go has one namespace per
// package and Stream is the function that declares one.
type KStream[K, V any] struct {
	b          *Builder
	name       string
	keyChanged bool
	// keys and values are the serdes the stream carries: a source's, kept
	// by every operation whose output type is the same (a serde depends
	// only on the type), nil after one that changed it. Repartitioning and
	// aggregations use them unless given others.
	keys   serde.Serde[K]
	values serde.Serde[V]
}

// KeyValue is one output pair of FlatMap.
type KeyValue[K, V any] struct {
	Key   K
	Value V
}

// KV returns KeyValue{Key: k, Value: v}.
func KV[K, V any](k K, v V) KeyValue[K, V] { return KeyValue[K, V]{Key: k, Value: v} }

// Stream declares a source node named name that reads topic (and any
// topics added with WithTopics; a WithTimestampExtractor option applies
// as for Source) and returns the stream of its records.
func Stream[K, V any](b *Builder, name, topic string, keys serde.Serde[K], values serde.Serde[V], opts ...SourceOption) KStream[K, V] {
	s := FromNode(Source(b, name, topic, keys, values, opts...))
	s.keys, s.values = keys, values
	return s
}

// FromNode turns a node of the Processor API (a Source, Process or Merge
// handle) into a DSL stream, so a hand-written processor can feed DSL
// operations. A source keeps its key; any other node may have changed it,
// so the stream counts as key-changed (see KStream.KeyChanged).
func FromNode[K, V any](n Node[K, V]) KStream[K, V] {
	changed := true
	if n.b != nil {
		if d, ok := n.b.nodeByName[n.name]; ok && d.spec.Kind == task.Source {
			changed = false
		}
	}
	return KStream[K, V]{b: n.b, name: n.name, keyChanged: changed}
}

// Node returns the stream's node for the Processor API: Process,
// ProcessFunc, Sink and Merge accept it as a parent.
func (s KStream[K, V]) Node() Node[K, V] { return Node[K, V]{b: s.b, name: s.name} }

// Name returns the name of the node that emits the stream.
func (s KStream[K, V]) Name() string { return s.name }

// KeyChanged reports whether an operation upstream (Map, SelectKey,
// FlatMap, or a Processor API node) may have changed the record keys, so
// records may no longer sit in the partition of their key. Grouping and
// joining such a stream goes through a repartition topic (GroupByKey,
// Repartition; docs/DSL.md).
func (s KStream[K, V]) KeyChanged() bool { return s.keyChanged }

// stage declares a DSL processor node child of parent and returns its
// stream.
func stage[KIn, VIn, KOut, VOut any](parent KStream[KIn, VIn], name string, keyChanged bool, fn processor.Func[KIn, VIn, KOut, VOut]) KStream[KOut, VOut] {
	if parent.b == nil {
		// The zero KStream belongs to no Builder: there is nowhere to
		// declare the node or report the problem. Its result is zero too,
		// and Build refuses it wherever it is used as a parent.
		return KStream[KOut, VOut]{}
	}
	n := process(parent.b, name, []Node[KIn, VIn]{parent.Node()}, func() processor.Processor[KIn, VIn, KOut, VOut] { return fn }, nil)
	out := KStream[KOut, VOut]{b: parent.b, name: n.name, keyChanged: parent.keyChanged || keyChanged}
	// A serde depends only on its type: where the operation kept a type,
	// the parent's serde still fits.
	out.keys, _ = any(parent.keys).(serde.Serde[KOut])
	out.values, _ = any(parent.values).(serde.Serde[VOut])
	return out
}

// nilFunc records a problem when a user function is nil and reports
// whether it was.
func nilFunc(b *Builder, name, what string, isNil bool) bool {
	if isNil {
		b.dslProblem(name, "%s function is nil", what)
	}
	return isNil
}

// dslProblem records an InvalidNode problem; it does nothing on a nil
// Builder (a zero handle, refused where it is used).
func (b *Builder) dslProblem(node, format string, args ...any) {
	if b != nil {
		b.problem(InvalidNode, node, "", "", format, args...)
	}
}

// Filter declares a processor node named name that forwards the records
// for which keep returns true and drops the others.
func (s KStream[K, V]) Filter(name string, keep func(key K, value V) bool) KStream[K, V] {
	nilFunc(s.b, name, "filter", keep == nil)
	return stage(s, name, false, func(ctx processor.Context[K, V], r processor.Record[K, V]) error {
		if keep(r.Key, r.Value) {
			return ctx.Forward(r)
		}
		return nil
	})
}

// FilterNot declares a processor node named name that drops the records
// for which drop returns true and forwards the others.
func (s KStream[K, V]) FilterNot(name string, drop func(key K, value V) bool) KStream[K, V] {
	nilFunc(s.b, name, "filter-not", drop == nil)
	return stage(s, name, false, func(ctx processor.Context[K, V], r processor.Record[K, V]) error {
		if drop(r.Key, r.Value) {
			return nil
		}
		return ctx.Forward(r)
	})
}

// Peek declares a processor node named name that calls fn for each record
// and forwards the record unchanged (for logging or metrics; fn must not
// change shared state that the processing relies on).
func (s KStream[K, V]) Peek(name string, fn func(key K, value V)) KStream[K, V] {
	nilFunc(s.b, name, "peek", fn == nil)
	return stage(s, name, false, func(ctx processor.Context[K, V], r processor.Record[K, V]) error {
		fn(r.Key, r.Value)
		return ctx.Forward(r)
	})
}

// Merge declares a processor node named name that forwards every record
// of s and of others, in the order the task processes them. The merged
// stream is key-changed if any input is.
func (s KStream[K, V]) Merge(name string, others ...KStream[K, V]) KStream[K, V] {
	if s.b == nil {
		return KStream[K, V]{}
	}
	parents := []Node[K, V]{s.Node()}
	changed := s.keyChanged
	for _, o := range others {
		parents = append(parents, o.Node())
		changed = changed || o.keyChanged
	}
	n := Merge(s.b, name, parents...)
	return KStream[K, V]{b: s.b, name: n.name, keyChanged: changed, keys: s.keys, values: s.values}
}

// To declares a sink node named name that serializes the stream's records
// with keys and values and sends them to topic, with their timestamps and
// headers. The App checks at start-up that topic exists.
func (s KStream[K, V]) To(name, topic string, keys serde.Serde[K], values serde.Serde[V], opts ...SinkOption) {
	if s.b == nil {
		return
	}
	Sink(s.b, name, topic, s.Node(), keys, values, opts...)
}

// ToTopicFunc declares a sink node named name that sends each record to
// the topic topicFn picks for it. Those topics cannot be checked at
// start-up: a record for a topic that does not exist fails when it is
// sent, and an error or empty topic from topicFn goes to the production
// error handler (see DynamicSink).
func (s KStream[K, V]) ToTopicFunc(name string, topicFn TopicFunc[K, V], keys serde.Serde[K], values serde.Serde[V], opts ...SinkOption) {
	if s.b == nil {
		return
	}
	DynamicSink(s.b, name, topicFn, s.Node(), keys, values, opts...)
}

// Split declares a processor node named name that routes each record to
// the first branch whose predicate accepts it (in the order the branches
// are declared), else to the default branch, else nowhere: a record that
// matches no branch and finds no default branch is dropped, as in Kafka
// Streams' split(). Declare all branches before Build.
func (s KStream[K, V]) Split(name string) *Splitter[K, V] {
	sp := &Splitter[K, V]{parent: s, name: name, state: &splitState[K, V]{}}
	st := sp.state
	sp.node = stage(s, name, false, func(ctx processor.Context[K, V], r processor.Record[K, V]) error {
		for _, br := range st.branches {
			if br.pred(r.Key, r.Value) {
				return ctx.ForwardTo(br.node, r)
			}
		}
		if st.defaultNode != "" {
			return ctx.ForwardTo(st.defaultNode, r)
		}
		return nil
	})
	return sp
}

// Splitter declares the branches of a Split. Each branch is a
// pass-through processor node named "<split name>-<branch name>", child of
// the split node.
type Splitter[K, V any] struct {
	parent KStream[K, V]
	name   string
	node   KStream[K, V]
	state  *splitState[K, V]
}

type splitState[K, V any] struct {
	branches    []splitBranch[K, V]
	defaultNode string
}

type splitBranch[K, V any] struct {
	node string
	pred func(K, V) bool
}

// Branch declares the branch named name: the records that pred accepts and
// no earlier branch accepted.
func (sp *Splitter[K, V]) Branch(name string, pred func(key K, value V) bool) KStream[K, V] {
	node := sp.name + "-" + name
	if !nilFunc(sp.parent.b, node, "branch predicate", pred == nil) {
		sp.state.branches = append(sp.state.branches, splitBranch[K, V]{node: node, pred: pred})
	}
	return sp.branchNode(name, node)
}

// Default declares the default branch named name: the records no branch
// accepted. A Split has at most one default branch.
func (sp *Splitter[K, V]) Default(name string) KStream[K, V] {
	node := sp.name + "-" + name
	if sp.state.defaultNode != "" {
		sp.parent.b.dslProblem(node, "split %q already has the default branch %q", sp.name, sp.state.defaultNode)
	} else {
		sp.state.defaultNode = node
	}
	return sp.branchNode(name, node)
}

func (sp *Splitter[K, V]) branchNode(name, node string) KStream[K, V] {
	if name == "" {
		sp.parent.b.dslProblem(node, "split %q has a branch with an empty name", sp.name)
	}
	return stage(sp.node, node, false, func(ctx processor.Context[K, V], r processor.Record[K, V]) error {
		return ctx.Forward(r)
	})
}

// Map declares a processor node named name that replaces each record's
// key and value by fn's; timestamp and headers are kept. The result is
// key-changed. An error from fn goes to the processing error handler.
func Map[K, V, KOut, VOut any](s KStream[K, V], name string, fn func(key K, value V) (KOut, VOut, error)) KStream[KOut, VOut] {
	nilFunc(s.b, name, "map", fn == nil)
	return stage(s, name, true, func(ctx processor.Context[KOut, VOut], r processor.Record[K, V]) error {
		k, v, err := fn(r.Key, r.Value)
		if err != nil {
			return err
		}
		return ctx.Forward(processor.Record[KOut, VOut]{Key: k, Value: v, Timestamp: r.Timestamp, Headers: r.Headers})
	})
}

// MapValues declares a processor node named name that replaces each
// record's value by fn's; key, timestamp and headers are kept. An error
// from fn goes to the processing error handler.
func MapValues[K, V, VOut any](s KStream[K, V], name string, fn func(key K, value V) (VOut, error)) KStream[K, VOut] {
	nilFunc(s.b, name, "map-values", fn == nil)
	return stage(s, name, false, func(ctx processor.Context[K, VOut], r processor.Record[K, V]) error {
		v, err := fn(r.Key, r.Value)
		if err != nil {
			return err
		}
		return ctx.Forward(processor.Revalue(r, v))
	})
}

// SelectKey declares a processor node named name that replaces each
// record's key by fn's; value, timestamp and headers are kept. The result
// is key-changed.
func SelectKey[K, V, KOut any](s KStream[K, V], name string, fn func(key K, value V) (KOut, error)) KStream[KOut, V] {
	nilFunc(s.b, name, "select-key", fn == nil)
	return stage(s, name, true, func(ctx processor.Context[KOut, V], r processor.Record[K, V]) error {
		k, err := fn(r.Key, r.Value)
		if err != nil {
			return err
		}
		return ctx.Forward(processor.Rekey(r, k))
	})
}

// FlatMap declares a processor node named name that forwards, in order,
// every pair fn returns for a record (none drops it), each with the
// record's timestamp and headers. The result is key-changed. The output
// records share the input's Headers slice; clone it before changing it.
func FlatMap[K, V, KOut, VOut any](s KStream[K, V], name string, fn func(key K, value V) ([]KeyValue[KOut, VOut], error)) KStream[KOut, VOut] {
	nilFunc(s.b, name, "flat-map", fn == nil)
	return stage(s, name, true, func(ctx processor.Context[KOut, VOut], r processor.Record[K, V]) error {
		kvs, err := fn(r.Key, r.Value)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			if err := ctx.Forward(processor.Record[KOut, VOut]{Key: kv.Key, Value: kv.Value, Timestamp: r.Timestamp, Headers: r.Headers}); err != nil {
				return err
			}
		}
		return nil
	})
}

// FlatMapValues declares a processor node named name that forwards, in
// order, one record per value fn returns (none drops the record), each
// with the input's key, timestamp and headers.
func FlatMapValues[K, V, VOut any](s KStream[K, V], name string, fn func(key K, value V) ([]VOut, error)) KStream[K, VOut] {
	nilFunc(s.b, name, "flat-map-values", fn == nil)
	return stage(s, name, false, func(ctx processor.Context[K, VOut], r processor.Record[K, V]) error {
		vs, err := fn(r.Key, r.Value)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if err := ctx.Forward(processor.Revalue(r, v)); err != nil {
				return err
			}
		}
		return nil
	})
}
