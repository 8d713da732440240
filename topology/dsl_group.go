package topology

import (
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/serde"
)

// This file is the grouping half of the DSL: repartition topics and the
// grouped streams that aggregations (dsl_aggregate.go, dsl_window.go)
// start from.
//
// A key-changing operation (Map, SelectKey, FlatMap, a Processor API
// node) may leave records in partitions that do not match their new keys.
// Before records are grouped by key, such a stream is written to an
// internal topic "<application-id>-<name>-repartition" (partitioned by the
// new key, murmur2 as the producer) and read back by a new sub-topology,
// whose tasks then see each key in one place. The App creates the topic at
// start-up, works out its partition count, and deletes the records it has
// consumed and committed; under exactly-once the write is part of the
// writing task's transaction.

// RepartitionOption configures a repartition step (Repartition, and the
// one GroupBy or GroupByKey add on a key-changed stream).
type RepartitionOption func(*repartitionConfig)

type repartitionConfig struct {
	keys, values any
	partitions   int32
	name         string
}

// WithSerdes gives the key and value serdes of a repartition topic (and
// of the stores of an aggregation that needs them). Streams from Stream,
// and operations that keep a type, carry their serdes, so this is needed
// only after an operation that changed a type. Build reports serdes of the
// wrong types.
func WithSerdes[K, V any](keys serde.Serde[K], values serde.Serde[V]) RepartitionOption {
	return func(c *repartitionConfig) { c.keys, c.values = keys, values }
}

// WithPartitions sets the partition count of a repartition topic. Without
// it the App uses the partition count of the other topics its reading
// sub-topology is co-partitioned with, else the largest partition count
// of the topics of the sub-topologies that write to it (as Kafka
// Streams).
func WithPartitions(n int32) RepartitionOption {
	return func(c *repartitionConfig) { c.partitions = n }
}

// WithRepartitionName names the repartition topic GroupByKey adds on a
// key-changed stream: "<application-id>-<name>-repartition". Without it
// the name is the key-changed stream's node name.
func WithRepartitionName(name string) RepartitionOption {
	return func(c *repartitionConfig) { c.name = name }
}

// KGroupedStream is a stream grouped by key: the input of Count, Reduce,
// Aggregate, SessionWindowedBy and the time-window aggregations. Each key's records are in one partition of
// the grouping node's sub-topology.
type KGroupedStream[K, V any] struct {
	b      *Builder
	name   string
	keys   serde.Serde[K]
	values serde.Serde[V]
}

// Name returns the name of the node whose records are grouped.
func (g KGroupedStream[K, V]) Name() string { return g.name }

// stream returns the grouped records as a stream (same node).
func (g KGroupedStream[K, V]) stream() KStream[K, V] {
	return KStream[K, V]{b: g.b, name: g.name, keys: g.keys, values: g.values}
}

func applyRepartitionOptions[K, V any](b *Builder, node string, s KStream[K, V], opts []RepartitionOption) (repartitionConfig, serde.Serde[K], serde.Serde[V]) {
	var c repartitionConfig
	for _, o := range opts {
		o(&c)
	}
	keys, values := s.keys, s.values
	if c.keys != nil {
		k, ok := c.keys.(serde.Serde[K])
		if !ok {
			b.dslProblem(node, "key serde is a %T, but the stream's keys are %s", c.keys, typeName[K]())
		} else {
			keys = k
		}
	}
	if c.values != nil {
		v, ok := c.values.(serde.Serde[V])
		if !ok {
			b.dslProblem(node, "value serde is a %T, but the stream's values are %s", c.values, typeName[V]())
		} else {
			values = v
		}
	}
	if c.partitions < 0 {
		b.dslProblem(node, "repartition partition count %d is negative", c.partitions)
	}
	return c, keys, values
}

// Repartition declares a repartition step named name: the stream's records
// are written to the internal topic "<application-id>-<name>-repartition",
// partitioned by key, and read back by a new sub-topology. Its nodes are
// the sink "<name>-repartition-sink" and the source
// "<name>-repartition-source". Serdes come from
// the stream (see WithSerdes); WithPartitions sets the partition count.
// The result is not key-changed: its records sit in the partitions of
// their keys.
func (s KStream[K, V]) Repartition(name string, opts ...RepartitionOption) KStream[K, V] {
	if s.b == nil {
		return KStream[K, V]{}
	}
	c, keys, values := applyRepartitionOptions(s.b, name, s, opts)
	return repartition(s, name, c.partitions, keys, values)
}

func repartition[K, V any](s KStream[K, V], name string, partitions int32, keys serde.Serde[K], values serde.Serde[V]) KStream[K, V] {
	b := s.b
	if name == "" {
		b.dslProblem("", "a repartition step has an empty name")
		return KStream[K, V]{}
	}
	if keys == nil || values == nil {
		b.dslProblem(name, "repartition topic needs a key serde and a value serde; the stream carries none after an operation that changed a type: give them with topology.WithSerdes")
		return KStream[K, V]{}
	}
	topic := task.RepartitionTopic(name)
	if _, dup := b.repartitions[topic]; dup {
		b.problem(DuplicateName, name, topic, "", "repartition topic declared twice; give each repartition step its own name")
		return KStream[K, V]{}
	}
	if b.repartitions == nil {
		b.repartitions = map[string]int32{}
	}
	b.repartitions[topic] = partitions
	Sink(b, name+"-repartition-sink", topic, s.Node(), keys, values)
	src := Source(b, name+"-repartition-source", topic, keys, values)
	return KStream[K, V]{b: b, name: src.name, keys: keys, values: values}
}

// GroupByKey groups the stream by its key. A key-changed stream (see
// KeyChanged) is repartitioned first, through the topic
// "<application-id>-<n>-repartition" where n is the WithRepartitionName
// option or the stream's node name; grouping the same key-changed stream
// twice reuses one repartition topic. Serdes come from the stream or
// WithSerdes; the repartition topic needs both.
func (s KStream[K, V]) GroupByKey(opts ...RepartitionOption) KGroupedStream[K, V] {
	if s.b == nil {
		return KGroupedStream[K, V]{}
	}
	c, keys, values := applyRepartitionOptions(s.b, s.name, s, opts)
	if !s.keyChanged {
		return KGroupedStream[K, V]{b: s.b, name: s.name, keys: keys, values: values}
	}
	name := c.name
	if name == "" {
		name = s.name
	}
	if prev, ok := s.b.grouped[s.name]; ok && prev.name == name {
		if g, ok := prev.stream.(KGroupedStream[K, V]); ok {
			return g
		}
	}
	r := repartition(s, name, c.partitions, keys, values)
	g := KGroupedStream[K, V]{b: s.b, name: r.name, keys: keys, values: values}
	if r.b != nil {
		if s.b.grouped == nil {
			s.b.grouped = map[string]groupedDecl{}
		}
		s.b.grouped[s.name] = groupedDecl{name: name, stream: g}
	}
	return g
}

// groupedDecl remembers the repartitioned grouping of a key-changed node.
type groupedDecl struct {
	name   string
	stream any
}

// GroupBy groups the stream by a new key that fn picks from each record:
// a processor node named name selects the key, and the records go through
// the repartition topic "<application-id>-<name>-repartition" (nodes
// "<name>-repartition-sink" and "<name>-repartition-source"). Serdes:
// keys (required, the new key type) and the stream's value serde or
// WithSerdes. An error from fn goes to the processing error handler.
func GroupBy[K, V, KOut any](s KStream[K, V], name string, fn func(key K, value V) (KOut, error), keys serde.Serde[KOut], opts ...RepartitionOption) KGroupedStream[KOut, V] {
	if s.b == nil {
		return KGroupedStream[KOut, V]{}
	}
	selected := SelectKey(s, name, fn)
	selected.keys = keys
	c, ks, vs := applyRepartitionOptions(s.b, name, selected, opts)
	r := repartition(selected, name, c.partitions, ks, vs)
	return KGroupedStream[KOut, V]{b: s.b, name: r.name, keys: ks, values: vs}
}

// checkSerde reports a missing serde an operation needs.
func checkSerde[T any](b *Builder, node, what string, s serde.Serde[T]) bool {
	if s == nil {
		b.dslProblem(node, "needs a %s serde for %s; the stream carries none after an operation that changed that type: give it with topology.WithSerdes or the operation's serde argument", what, typeName[T]())
		return false
	}
	return true
}
