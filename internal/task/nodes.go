package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/brookstream/brook/internal/meter"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
)

// Node is one node instance inside a task. Only this package implements it;
// get one from SourceNode, ProcessorNode or SinkNode.
type Node interface {
	// bind attaches the node to its task and to its children.
	bind(t *Task, spec *NodeSpec, children []Node) error
	init() error
	close() error
}

// receiver is a node that accepts records of type Record[K,V] from its
// parents. The builder's typed handles guarantee that every child of a node
// emitting Record[K,V] is a receiver[K,V].
type receiver[K, V any] interface {
	Node
	receive(r processor.Record[K, V]) error
}

// rawSource is a source node instance.
type rawSource interface {
	Node
	processRaw(rec *RawRecord) error
}

func bindChildren[K, V any](parent string, children []Node, specs []string) ([]receiver[K, V], error) {
	out := make([]receiver[K, V], len(children))
	for i, c := range children {
		r, ok := c.(receiver[K, V])
		if !ok {
			return nil, fmt.Errorf("node %q: child %q does not accept %T records", parent, specs[i], processor.Record[K, V]{})
		}
		out[i] = r
	}
	return out, nil
}

func forwardAll[K, V any](children []receiver[K, V], r processor.Record[K, V]) error {
	for _, c := range children {
		if err := c.receive(r); err != nil {
			return err
		}
	}
	return nil
}

// SourceNode returns the instance factory of a source node that
// deserializes keys and values with the given serdes. extract, if not nil,
// picks the record timestamp from the deserialized record (whose Timestamp
// is the Kafka timestamp) and the task's current stream time.
func SourceNode[K, V any](keys serde.Serde[K], values serde.Serde[V], extract func(r processor.Record[K, V], streamTime time.Time) (time.Time, error)) func() Node {
	keysCtx, valuesCtx := withContext(keys), withContext(values)
	return func() Node {
		return &sourceNode[K, V]{keys: keysCtx, values: valuesCtx, extract: extract}
	}
}

// withContext returns s's DeserializeContext when s has one, else a
// function that ignores the context.
func withContext[T any](s serde.Serde[T]) func(ctx context.Context, topic string, data []byte) (T, error) {
	if cd, ok := s.(serde.ContextDeserializer[T]); ok {
		return cd.DeserializeContext
	}
	return func(_ context.Context, topic string, data []byte) (T, error) { return s.Deserialize(topic, data) }
}

type sourceNode[K, V any] struct {
	t          *Task
	spec       *NodeSpec
	keys       func(ctx context.Context, topic string, data []byte) (K, error)
	values     func(ctx context.Context, topic string, data []byte) (V, error)
	extract    func(processor.Record[K, V], time.Time) (time.Time, error)
	children   []receiver[K, V]
	childNames []string
	m          *meter.Node
}

func (s *sourceNode[K, V]) bind(t *Task, spec *NodeSpec, children []Node) (err error) {
	s.t, s.spec, s.childNames = t, spec, spec.Children
	s.m = t.meter.Node(spec.Name, "source")
	s.children, err = bindChildren[K, V](spec.Name, children, spec.Children)
	return err
}

func (s *sourceNode[K, V]) init() error  { return nil }
func (s *sourceNode[K, V]) close() error { return nil }

func (s *sourceNode[K, V]) processRaw(rec *RawRecord) error {
	s.m.Received()
	k, err := s.keys(s.t.ctx, rec.Topic, rec.Key)
	if err != nil {
		return s.t.deserializationFailed(s.spec.Name, "key", err)
	}
	v, err := s.values(s.t.ctx, rec.Topic, rec.Value)
	if err != nil {
		return s.t.deserializationFailed(s.spec.Name, "value", err)
	}
	r := processor.Record[K, V]{Key: k, Value: v, Timestamp: rec.Timestamp, Headers: rec.Headers}
	if s.extract != nil {
		ts, err := s.extract(r, s.t.streamTime)
		if err != nil {
			return s.t.deserializationFailed(s.spec.Name, "timestamp", err)
		}
		r.Timestamp = ts
	}
	s.t.observe(r.Timestamp)
	return forwardAll(s.children, r)
}

// ProcessorNode returns the instance factory of a processor node; each
// instance gets a fresh processor from supplier.
func ProcessorNode[KIn, VIn, KOut, VOut any](supplier func() processor.Processor[KIn, VIn, KOut, VOut]) func() Node {
	return func() Node {
		return &procNode[KIn, VIn, KOut, VOut]{supplier: supplier}
	}
}

// procNode runs a processor and is also its processor.Context.
type procNode[KIn, VIn, KOut, VOut any] struct {
	t        *Task
	spec     *NodeSpec
	supplier func() processor.Processor[KIn, VIn, KOut, VOut]
	p        processor.Processor[KIn, VIn, KOut, VOut]
	children []receiver[KOut, VOut]
	stores   map[string]any
	logger   *slog.Logger
	inited   bool
	m        *meter.Node
}

var _ processor.Context[int, int] = (*procNode[int, int, int, int])(nil)

func (n *procNode[KIn, VIn, KOut, VOut]) bind(t *Task, spec *NodeSpec, children []Node) (err error) {
	n.t, n.spec = t, spec
	n.m = t.meter.Node(spec.Name, "processor")
	if n.children, err = bindChildren[KOut, VOut](spec.Name, children, spec.Children); err != nil {
		return err
	}
	n.stores = make(map[string]any, len(spec.Stores))
	for _, name := range spec.Stores {
		if s, ok := t.stores[name]; ok {
			n.stores[name] = s.typed
			continue
		}
		g, ok := t.globals[name]
		if !ok {
			return fmt.Errorf("node %q: store %q is not open in task %s", spec.Name, name, t.id)
		}
		n.stores[name] = g
	}
	n.logger = t.log.With("node", spec.Name)
	n.p = n.supplier()
	if n.p == nil {
		return fmt.Errorf("node %q: supplier returned a nil processor", spec.Name)
	}
	return nil
}

func (n *procNode[KIn, VIn, KOut, VOut]) init() error {
	if err := n.p.Init(n); err != nil {
		return fmt.Errorf("node %q: init: %w", n.spec.Name, err)
	}
	n.inited = true
	return nil
}

func (n *procNode[KIn, VIn, KOut, VOut]) close() error {
	if !n.inited {
		return nil // Close only what Init prepared.
	}
	n.inited = false
	if err := n.p.Close(); err != nil {
		return fmt.Errorf("node %q: close: %w", n.spec.Name, err)
	}
	return nil
}

func (n *procNode[KIn, VIn, KOut, VOut]) receive(r processor.Record[KIn, VIn]) error {
	n.m.Received()
	if err := n.p.Process(n, r); err != nil {
		return n.t.processingFailed(n.spec.Name, err, false)
	}
	return nil
}

func (n *procNode[KIn, VIn, KOut, VOut]) StateStore(name string) (any, error) {
	if s, ok := n.stores[name]; ok {
		return s, nil
	}
	if g, ok := n.t.globals[name]; ok {
		// A global store is readable from every processor, connected or
		// not (as in Kafka Streams); the view refuses writes.
		return g, nil
	}
	return nil, &processor.UnknownStoreError{Node: n.spec.Name, Store: name, Connected: append([]string(nil), n.spec.Stores...)}
}

func (n *procNode[KIn, VIn, KOut, VOut]) Forward(r processor.Record[KOut, VOut]) error {
	if n.t.initializing {
		return fmt.Errorf("task: node %q: cannot forward during Init", n.spec.Name)
	}
	return forwardAll(n.children, r)
}

func (n *procNode[KIn, VIn, KOut, VOut]) ForwardTo(child string, r processor.Record[KOut, VOut]) error {
	if n.t.initializing {
		return fmt.Errorf("task: node %q: cannot forward during Init", n.spec.Name)
	}
	for i, name := range n.spec.Children {
		if name == child {
			return n.children[i].receive(r)
		}
	}
	return &processor.UnknownChildError{Node: n.spec.Name, Child: child, Children: append([]string(nil), n.spec.Children...)}
}

func (n *procNode[KIn, VIn, KOut, VOut]) Schedule(interval time.Duration, typ processor.PunctuationType, fn processor.Punctuator) (processor.Cancellable, error) {
	return n.t.schedule(n.spec.Name, interval, typ, fn)
}

func (n *procNode[KIn, VIn, KOut, VOut]) RecordMetadata() (processor.RecordMetadata, bool) {
	return n.t.recordMetadata()
}

func (n *procNode[KIn, VIn, KOut, VOut]) TaskID() processor.TaskID { return n.t.id }
func (n *procNode[KIn, VIn, KOut, VOut]) NodeName() string         { return n.spec.Name }
func (n *procNode[KIn, VIn, KOut, VOut]) StreamTime() time.Time    { return n.t.streamTime }
func (n *procNode[KIn, VIn, KOut, VOut]) WallClockTime() time.Time { return n.t.wallTime }
func (n *procNode[KIn, VIn, KOut, VOut]) RequestCommit()           { n.t.commitRequested = true }
func (n *procNode[KIn, VIn, KOut, VOut]) Logger() *slog.Logger     { return n.logger }

// CountDropped implements DropCounter.
func (n *procNode[KIn, VIn, KOut, VOut]) CountDropped(reason metrics.DropReason) { n.m.Dropped(reason) }

// SinkNode returns the instance factory of a sink node. Exactly one of
// topic and topicFn is set. partition, if not nil, picks the partition
// from the record and the topic's partition count; otherwise the producer
// picks it (murmur2 of the key bytes).
func SinkNode[K, V any](topic string, topicFn func(processor.Record[K, V]) (string, error), keys serde.Serde[K], values serde.Serde[V],
	partition func(topic string, key K, value V, numPartitions int32) (int32, error)) func() Node {
	return func() Node {
		return &sinkNode[K, V]{topic: topic, topicFn: topicFn, keys: keys, values: values, partition: partition}
	}
}

type sinkNode[K, V any] struct {
	t         *Task
	spec      *NodeSpec
	topic     string
	topicFn   func(processor.Record[K, V]) (string, error)
	keys      serde.Serde[K]
	values    serde.Serde[V]
	partition func(string, K, V, int32) (int32, error)
	// lineage is the end of the node's lineage header value
	// (Task.LineageSuffix).
	lineage []byte
	m       *meter.Node
}

func (s *sinkNode[K, V]) bind(t *Task, spec *NodeSpec, children []Node) error {
	s.t, s.spec = t, spec
	s.m = t.meter.Node(spec.Name, "sink")
	if s.topicFn == nil {
		// The spec's topic, not the one the factory was made with: an
		// internal topic's name is only known once the graph runs for an
		// application (Graph.ForApplication).
		s.topic = spec.SinkTopic
	}
	if len(children) > 0 {
		return fmt.Errorf("sink %q: a sink cannot have children", spec.Name)
	}
	return nil
}

func (s *sinkNode[K, V]) init() error  { return nil }
func (s *sinkNode[K, V]) close() error { return nil }

func (s *sinkNode[K, V]) receive(r processor.Record[K, V]) error {
	s.m.Received()
	out := processor.ProducedRecord{Topic: s.topic, Partition: -1, Timestamp: r.Timestamp, Headers: r.Headers}
	if s.topicFn != nil {
		topic, err := s.topicFn(r)
		if err == nil && topic == "" {
			err = errors.New("topic function returned an empty topic")
		}
		if err != nil {
			return s.t.productionFailed(s.spec.Name, out, fmt.Errorf("choose topic: %w", err))
		}
		out.Topic = topic
	}
	kb, err := s.keys.Serialize(out.Topic, r.Key)
	if err != nil {
		return s.t.productionFailed(s.spec.Name, out, fmt.Errorf("serialize key: %w", err))
	}
	vb, err := s.values.Serialize(out.Topic, r.Value)
	if err != nil {
		return s.t.productionFailed(s.spec.Name, out, fmt.Errorf("serialize value: %w", err))
	}
	out.Key, out.Value = kb, vb
	if s.partition != nil {
		n, err := s.t.collector.PartitionCount(out.Topic)
		if err == nil {
			out.Partition, err = s.partition(out.Topic, r.Key, r.Value, n)
			if err == nil && (out.Partition < 0 || out.Partition >= n) {
				err = fmt.Errorf("partitioner chose partition %d of %d", out.Partition, n)
			}
		}
		if err != nil {
			out.Partition = -1
			return s.t.productionFailed(s.spec.Name, out, fmt.Errorf("choose partition: %w", err))
		}
	}
	from := s.t.origin(s.spec.Name)
	if s.t.lineage {
		if s.lineage == nil {
			s.lineage = s.t.LineageSuffix(s.spec.Name)
		}
		out.Headers = s.t.withLineage(out.Headers, from, s.lineage)
	}
	if err := s.t.collector.Send(out, from); err != nil {
		return s.t.productionFailed(s.spec.Name, out, err)
	}
	if s.m != nil { // not inlined: skip the call when nothing is measured
		s.m.Produced(out.Timestamp)
	}
	return nil
}
