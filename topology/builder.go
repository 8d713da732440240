package topology

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"time"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
)

// Builder declares a topology: sources, processors, sinks and stores. The
// declaration functions never fail on the spot; they record problems and
// [Builder.Build] reports all of them at once. A Builder is not safe for
// concurrent use.
type Builder struct {
	nodes       []*nodeDecl
	nodeByName  map[string]*nodeDecl
	stores      []*storeDecl
	storeByName map[string]*storeDecl
	problems    []*ValidationError
	handlers    task.Handlers
	preflights  []preflight
	// storePreflights are the store serdes to check; their topic depends
	// on the store (and the application id for a logged store).
	storePreflights []storePreflight
	// deserTopics and procTopics are the topics the error handlers write
	// to (processor.TopicWriter).
	deserTopics, procTopics []string
	// repartitions are the declared repartition topics (placeholder
	// names, task.RepartitionTopic) and their partition counts (0 =
	// worked out at start-up); grouped remembers the repartitioned
	// grouping of key-changed nodes, so grouping one twice reuses it.
	repartitions map[string]int32
	grouped      map[string]groupedDecl
	// sessionAggs holds, per grouped stream and session windows, the
	// first session aggregation declared over them, for LateRecords.
	sessionAggs map[sessionWindowsID]sessionAggDecl
}

// preflight is a serde that must be checked against an external system
// (the schema registry) for a topic before the application joins its group.
type preflight struct {
	node, topic, part string
	check             serde.Preflighter
}

// addPreflights remembers the key and value serdes of a node that reads or
// writes topics and implement serde.Preflighter.
func (b *Builder) addPreflights(node string, topics []string, keys, values any) {
	for _, t := range topics {
		if p, ok := keys.(serde.Preflighter); ok && t != "" {
			b.preflights = append(b.preflights, preflight{node: node, topic: t, part: "key", check: p})
		}
		if p, ok := values.(serde.Preflighter); ok && t != "" {
			b.preflights = append(b.preflights, preflight{node: node, topic: t, part: "value", check: p})
		}
	}
}

// storePreflight is a store serde to check against the registry; its topic
// is the store's serde topic (task.StoreSpec.SerdeTopic).
type storePreflight struct {
	store, part string
	check       serde.Preflighter
}

// addStorePreflights remembers the key and value serdes of a store that
// implement serde.Preflighter.
func (b *Builder) addStorePreflights(name string, keys, values any) {
	if p, ok := keys.(serde.Preflighter); ok {
		b.storePreflights = append(b.storePreflights, storePreflight{store: name, part: "key", check: p})
	}
	if p, ok := values.(serde.Preflighter); ok {
		b.storePreflights = append(b.storePreflights, storePreflight{store: name, part: "value", check: p})
	}
}

type nodeDecl struct {
	spec    task.NodeSpec
	index   int
	parents []parentRef
}

type parentRef struct {
	b    *Builder
	name string
}

// Option configures a Builder.
type Option func(*Builder)

// ErrorHandlerFunc is the shape of deserialization and processing error
// handlers: processor.DeserializationHandler, processor.ProcessingHandler,
// processor.DeadLetterHandler, the result of processor.LogAndContinue, or
// a plain function literal.
type ErrorHandlerFunc interface {
	~func(processor.ErrorContext) processor.HandlerResponse
}

// WithDeserializationHandler sets the handler for source records whose key
// or value cannot be deserialized (or whose timestamp cannot be
// extracted). Without one, processing fails with a
// *processor.DeserializationError naming the topic, partition and offset.
// A handler that implements processor.TopicWriter (processor.DeadLetter's)
// has its topics checked for existence when the App starts.
func WithDeserializationHandler[H ErrorHandlerFunc](h H) Option {
	return func(b *Builder) {
		b.handlers.Deserialization = processor.DeserializationHandler(h)
		b.deserTopics = handlerTopics(h)
	}
}

// WithProcessingHandler sets the handler for errors returned by processors
// and punctuators. Without one, processing fails with a
// *processor.ProcessingError. A handler that implements
// processor.TopicWriter (processor.DeadLetter's) has its topics checked
// for existence when the App starts.
func WithProcessingHandler[H ErrorHandlerFunc](h H) Option {
	return func(b *Builder) {
		b.handlers.Processing = processor.ProcessingHandler(h)
		b.procTopics = handlerTopics(h)
	}
}

// handlerTopics returns the topics a handler writes to, if it says.
func handlerTopics(h any) []string {
	if tw, ok := h.(processor.TopicWriter); ok {
		return slices.Clone(tw.OutputTopics())
	}
	return nil
}

// WithProductionHandler sets the handler for records a sink cannot
// serialize or send. Without one, processing fails with a
// *processor.ProductionError.
func WithProductionHandler(h processor.ProductionHandler) Option {
	return func(b *Builder) { b.handlers.Production = h }
}

// New returns an empty Builder.
func New(opts ...Option) *Builder {
	b := &Builder{nodeByName: map[string]*nodeDecl{}, storeByName: map[string]*storeDecl{}}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Node is a typed handle to a node that emits records of type
// Record[K,V]. Processors and sinks take their parent as a Node, so a
// child whose input type differs from its parent's output type does not
// compile:
//
//	words := topology.Source(b, "words", "text", serde.String(), serde.String()) // Node[string, string]
//	topology.Process(b, "count", words, newCounter) // newCounter must take Record[string, string]
//
// A compile-fail test (topology/testdata/miswired) keeps this promise.
type Node[K, V any] struct {
	b    *Builder
	name string
}

// Name returns the node's name.
func (n Node[K, V]) Name() string { return n.name }

func (b *Builder) problem(code ValidationCode, node, topic, store, format string, args ...any) {
	b.problems = append(b.problems, &ValidationError{Code: code, Node: node, Topic: topic, Store: store, Detail: fmt.Sprintf(format, args...)})
}

func typeName[T any]() string { return reflect.TypeFor[T]().String() }

// add registers a node; it reports duplicates and empty names. It returns
// false when the node was not added.
func (b *Builder) add(spec task.NodeSpec, parents ...parentRef) bool {
	if spec.Name == "" {
		b.problem(InvalidNode, "", "", "", "a %s has an empty name", spec.Kind)
		return false
	}
	if prev, ok := b.nodeByName[spec.Name]; ok {
		b.problem(DuplicateName, spec.Name, "", "", "node name used twice (first by a %s)", prev.spec.Kind)
		return false
	}
	d := &nodeDecl{spec: spec, index: len(b.nodes), parents: parents}
	b.nodes = append(b.nodes, d)
	b.nodeByName[spec.Name] = d
	return true
}

// TimestampExtractor picks a source record's timestamp. r.Timestamp is the
// Kafka record timestamp; streamTime is the task's current stream time
// (zero before the first record). An error goes to the deserialization
// handler.
type TimestampExtractor[K, V any] func(r processor.Record[K, V], streamTime time.Time) (time.Time, error)

// SourceOption configures a source.
type SourceOption func(*sourceConfig)

type sourceConfig struct {
	topics    []string
	extractor any
}

// WithTopics adds topics to a source: it reads all of them into one stream
// (they must be co-partitioned).
func WithTopics(topics ...string) SourceOption {
	return func(c *sourceConfig) { c.topics = append(c.topics, topics...) }
}

// WithTimestampExtractor makes a source take record timestamps from f
// instead of the Kafka record timestamp. Its types must match the
// source's; Build reports a mismatch.
func WithTimestampExtractor[K, V any](f TimestampExtractor[K, V]) SourceOption {
	return func(c *sourceConfig) { c.extractor = f }
}

// Source declares a source node named name that reads topic (and any
// topics added with WithTopics) and deserializes keys and values with the
// given serdes. The returned handle emits Record[K,V].
func Source[K, V any](b *Builder, name, topic string, keys serde.Serde[K], values serde.Serde[V], opts ...SourceOption) Node[K, V] {
	return source(b, name, topic, nil, keys, values, opts)
}

// SourcePattern declares a source node that reads every topic whose name
// matches pattern. A pattern source cannot be co-partitioned with other
// sources, so it cannot share a sub-topology (or a store) with them.
func SourcePattern[K, V any](b *Builder, name string, pattern *regexp.Regexp, keys serde.Serde[K], values serde.Serde[V], opts ...SourceOption) Node[K, V] {
	if pattern == nil {
		b.problem(InvalidNode, name, "", "", "source pattern is nil")
	}
	return source(b, name, "", pattern, keys, values, opts)
}

func source[K, V any](b *Builder, name, topic string, pattern *regexp.Regexp, keys serde.Serde[K], values serde.Serde[V], opts []SourceOption) Node[K, V] {
	var cfg sourceConfig
	if pattern == nil {
		cfg.topics = []string{topic}
	}
	for _, o := range opts {
		o(&cfg)
	}
	if pattern != nil && len(cfg.topics) > 0 {
		b.problem(InvalidNode, name, "", "", "a source reads either topics or a pattern, not both")
	}
	for _, t := range cfg.topics {
		if t == "" {
			b.problem(InvalidNode, name, "", "", "source has an empty topic name")
		}
	}
	if keys == nil || values == nil {
		b.problem(InvalidNode, name, "", "", "source needs a key serde and a value serde")
	}
	var extract func(processor.Record[K, V], time.Time) (time.Time, error)
	if cfg.extractor != nil {
		f, ok := cfg.extractor.(TimestampExtractor[K, V])
		if !ok {
			b.problem(InvalidNode, name, "", "", "timestamp extractor is a %T, but the source emits Record[%s, %s]", cfg.extractor, typeName[K](), typeName[V]())
		}
		extract = f
	}
	b.addPreflights(name, cfg.topics, keys, values)
	b.add(task.NodeSpec{
		Name: name, Kind: task.Source, Topics: cfg.topics, Pattern: pattern,
		KeyType: typeName[K](), ValueType: typeName[V](),
		New: task.SourceNode(keys, values, extract),
	})
	return Node[K, V]{b: b, name: name}
}

// ProcessOption configures a processor node.
type ProcessOption func(*processConfig)

type processConfig struct {
	stores []string
}

// WithStores connects the named stores to a processor, which can then get
// them from its Context (processor.KeyValueStore). Every store must be
// declared on the same Builder.
func WithStores(names ...string) ProcessOption {
	return func(c *processConfig) { c.stores = append(c.stores, names...) }
}

// Process declares a processor node named name, child of parent. Each
// task calls supplier once for a fresh processor, so a processor may keep
// per-task state in its fields. The supplier's input types must match the
// parent's output types, or the call does not compile. The returned handle
// emits Record[KOut,VOut].
func Process[KIn, VIn, KOut, VOut any](b *Builder, name string, parent Node[KIn, VIn], supplier func() processor.Processor[KIn, VIn, KOut, VOut], opts ...ProcessOption) Node[KOut, VOut] {
	return process(b, name, []Node[KIn, VIn]{parent}, supplier, opts)
}

// ProcessFunc declares a stateless processor node written as a function
// (see processor.Func and its Map, Filter, FlatMap helpers).
func ProcessFunc[KIn, VIn, KOut, VOut any](b *Builder, name string, parent Node[KIn, VIn], fn processor.Func[KIn, VIn, KOut, VOut], opts ...ProcessOption) Node[KOut, VOut] {
	if fn == nil {
		b.problem(InvalidNode, name, "", "", "processor func is nil")
	}
	return process(b, name, []Node[KIn, VIn]{parent}, func() processor.Processor[KIn, VIn, KOut, VOut] { return fn }, opts)
}

// Merge declares a node that forwards every record of all its parents,
// which must emit the same types.
func Merge[K, V any](b *Builder, name string, parents ...Node[K, V]) Node[K, V] {
	if len(parents) == 0 {
		b.problem(InvalidNode, name, "", "", "merge needs at least one parent")
	}
	pass := processor.Func[K, V, K, V](func(ctx processor.Context[K, V], r processor.Record[K, V]) error { return ctx.Forward(r) })
	return process(b, name, parents, func() processor.Processor[K, V, K, V] { return pass }, nil)
}

func process[KIn, VIn, KOut, VOut any](b *Builder, name string, parents []Node[KIn, VIn], supplier func() processor.Processor[KIn, VIn, KOut, VOut], opts []ProcessOption) Node[KOut, VOut] {
	var cfg processConfig
	for _, o := range opts {
		o(&cfg)
	}
	if supplier == nil {
		b.problem(InvalidNode, name, "", "", "processor supplier is nil")
	}
	refs := make([]parentRef, len(parents))
	for i, p := range parents {
		refs[i] = parentRef{b: p.b, name: p.name}
	}
	b.add(task.NodeSpec{
		Name: name, Kind: task.Processor, Stores: cfg.stores,
		KeyType: typeName[KOut](), ValueType: typeName[VOut](),
		New: task.ProcessorNode(supplier),
	}, refs...)
	return Node[KOut, VOut]{b: b, name: name}
}

// TopicFunc picks the output topic of a record.
type TopicFunc[K, V any] func(r processor.Record[K, V]) (string, error)

// Partitioner picks the partition of an output record among numPartitions.
type Partitioner[K, V any] func(topic string, key K, value V, numPartitions int32) (int32, error)

// SinkOption configures a sink.
type SinkOption func(*sinkConfig)

type sinkConfig struct {
	partitioner any
}

// WithPartitioner makes a sink choose partitions with p instead of the
// producer's default (murmur2 of the key bytes, as Kafka's Java client).
// Its types must match the sink's; Build reports a mismatch.
func WithPartitioner[K, V any](p Partitioner[K, V]) SinkOption {
	return func(c *sinkConfig) { c.partitioner = p }
}

// Sink declares a sink node that serializes the records of parent and
// sends them to topic.
func Sink[K, V any](b *Builder, name, topic string, parent Node[K, V], keys serde.Serde[K], values serde.Serde[V], opts ...SinkOption) {
	if topic == "" {
		b.problem(InvalidNode, name, "", "", "sink has an empty topic name")
	}
	sink(b, name, topic, nil, parent, keys, values, opts)
}

// DynamicSink declares a sink node that sends each record to the topic
// topicFn picks for it.
func DynamicSink[K, V any](b *Builder, name string, topicFn TopicFunc[K, V], parent Node[K, V], keys serde.Serde[K], values serde.Serde[V], opts ...SinkOption) {
	if topicFn == nil {
		b.problem(InvalidNode, name, "", "", "sink topic function is nil")
	}
	sink(b, name, "", topicFn, parent, keys, values, opts)
}

func sink[K, V any](b *Builder, name, topic string, topicFn TopicFunc[K, V], parent Node[K, V], keys serde.Serde[K], values serde.Serde[V], opts []SinkOption) {
	var cfg sinkConfig
	for _, o := range opts {
		o(&cfg)
	}
	if keys == nil || values == nil {
		b.problem(InvalidNode, name, topic, "", "sink needs a key serde and a value serde")
	}
	var part func(string, K, V, int32) (int32, error)
	if cfg.partitioner != nil {
		p, ok := cfg.partitioner.(Partitioner[K, V])
		if !ok {
			b.problem(InvalidNode, name, topic, "", "partitioner is a %T, but the sink takes Record[%s, %s]", cfg.partitioner, typeName[K](), typeName[V]())
		}
		part = p
	}
	var fn func(processor.Record[K, V]) (string, error)
	if topicFn != nil {
		fn = topicFn
	}
	b.addPreflights(name, []string{topic}, keys, values)
	b.add(task.NodeSpec{
		Name: name, Kind: task.Sink, SinkTopic: topic,
		KeyType: typeName[K](), ValueType: typeName[V](),
		New: task.SinkNode(topic, fn, keys, values, part),
	}, parentRef{b: parent.b, name: parent.name})
}
