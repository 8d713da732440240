// Package task is brook's deterministic task core: one single-threaded
// instance of a sub-topology for one partition. It deserializes source
// records, runs them through the processor nodes, serializes sink records
// into a Collector, fires stream-time and wall-clock punctuators, owns the
// task's stores, and reports the offsets to commit.
//
// There are no goroutines, clocks or I/O in here: the caller passes raw
// records, the wall-clock time and a store factory. The Kafka runtime
// (topology.App) and testutil.TestDriver drive this same core.
//
// Package topology compiles a built topology into a [Graph]; the typed node
// constructors ([SourceNode], [ProcessorNode], [SinkNode]) keep the user's
// key/value types, so records cross node boundaries without boxing.
package task

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/store"
)

// NodeKind tells sources, processors and sinks apart.
type NodeKind int

const (
	// Source nodes deserialize records of their topics.
	Source NodeKind = iota
	// Processor nodes run a processor.Processor.
	Processor
	// Sink nodes serialize records and hand them to the Collector.
	Sink
)

// String returns "source", "processor" or "sink".
func (k NodeKind) String() string {
	switch k {
	case Source:
		return "source"
	case Processor:
		return "processor"
	case Sink:
		return "sink"
	}
	return "unknown"
}

// NodeSpec describes one node of a compiled graph.
type NodeSpec struct {
	Name     string
	Kind     NodeKind
	Parents  []string
	Children []string
	// Stores are the stores connected to a processor node.
	Stores []string
	// Topics and Pattern are a source's subscription (one of them).
	Topics  []string
	Pattern *regexp.Regexp
	// SinkTopic is a sink's fixed topic; "" for a sink that picks the
	// topic per record.
	SinkTopic string
	// KeyType and ValueType name the record types leaving the node (for a
	// sink: entering it), for descriptions.
	KeyType, ValueType string
	// New makes a fresh instance of the node for one task.
	New func() Node
}

// StoreSpec describes one state store of a compiled graph.
type StoreSpec struct {
	Name string
	// Kind is "key-value", "window", "session", "ttl" or "versioned".
	Kind string
	// Logged stores send their writes to a changelog topic.
	Logged bool
	// InMemory stores keep no local files.
	InMemory bool
	// SourceTopic is set for a table: the compacted topic that feeds the
	// store and doubles as its changelog.
	SourceTopic string
	// TableTopic is the topic a table's store is materialized from: the
	// SourceTopic, or for a versioned table (which keeps a changelog of
	// its own) its input topic. The runtime puts a task's table
	// partitions first at timestamp ties (see runtime.claimOrder).
	TableTopic string
	// Nodes are the processor nodes connected to the store.
	Nodes []string
	// KeyType and ValueType name the store's types, for descriptions.
	KeyType, ValueType string
	// Open builds the typed store over an engine opened by the caller. An
	// error (a window store that cannot read its segments) fails the task.
	Open func(e store.Engine, opts ...store.Option) (any, error)
	// Apply, if set, is the store's store.RestoreConfig.Apply: how a
	// changelog record is filed into the engine (window and TTL stores
	// keep their own layout). Nil files key and value as they are.
	Apply func(b store.Batch, key, value []byte) error
	// ChangelogRetention, if positive, makes a new changelog topic
	// "compact,delete" with this retention.ms: a window store drops
	// expired segments locally without writing tombstones.
	ChangelogRetention time.Duration
	// Query is the store's interactive-query codec, set and used by
	// package topology (typed key parsing and JSON rendering).
	Query any
	// Global marks the store of a global table (topology.GlobalTable):
	// every instance holds all partitions of SourceTopic in one local
	// store, outside every sub-topology and task; tasks read it through
	// ReadOnly, the instance's global reader writes it (see Global).
	Global bool
	// ReadOnly, for a global store, wraps the typed store Open built into
	// the view tasks get: reads pass, writes fail.
	ReadOnly func(typed any) any
	// Decode, for a global store, deserializes one record of SourceTopic
	// (a nil value is a tombstone and is not decoded): it reports which
	// part ("key" or "value") failed, so that the deserialization handler
	// and the error name it.
	Decode func(ctx context.Context, topic string, key, value []byte) (part string, err error)
}

// SerdeTopic is the topic a store passes to its key and value serdes (an
// Avro serde derives its subject from it): the source topic of a table, the
// changelog topic of any other logged store, else the store's name. The
// runtime, the TestDriver and interactive queries all use it, so a store's
// serdes see the same topic everywhere.
func (s *StoreSpec) SerdeTopic(appID string) string {
	switch {
	case s.SourceTopic != "":
		return s.SourceTopic
	case s.Logged:
		return store.ChangelogTopic(appID, s.Name)
	}
	return s.Name
}

// SubTopology is a connected part of the graph: the unit a task runs.
type SubTopology struct {
	ID int
	// Nodes are the sub-topology's nodes, parents before children.
	Nodes []string
	// SourceTopics are the fixed topics its sources read, sorted; they must
	// be co-partitioned.
	SourceTopics []string
	// SourcePatterns are the topic patterns its sources read.
	SourcePatterns []*regexp.Regexp
	// Stores are its stores, sorted.
	Stores []string
}

// Handlers are the error handlers a task calls; nil means Fail.
type Handlers struct {
	Deserialization processor.DeserializationHandler
	Processing      processor.ProcessingHandler
	Production      processor.ProductionHandler
	// Topics are the topics the handlers write to (dead-letter topics,
	// from processor.TopicWriter); the runtime checks at start-up that
	// they exist.
	Topics []string
}

// Graph is a validated, compiled topology.
type Graph struct {
	// Nodes maps node names to their specs.
	Nodes map[string]*NodeSpec
	// Stores maps store names to their specs.
	Stores map[string]*StoreSpec
	// SubTopologies are numbered from 0 in declaration order.
	SubTopologies []*SubTopology
	// Handlers are the topology's error handlers.
	Handlers Handlers
	// Repartitions are the graph's repartition topics, each with the
	// partition count it was declared with (0: worked out at start-up from
	// the sub-topologies that write and read it). Before ForApplication
	// the names hold ApplicationIDPlaceholder.
	Repartitions map[string]int32
}

// SubTopologyFor returns the sub-topology that reads topic, or nil.
func (g *Graph) SubTopologyFor(topic string) *SubTopology {
	for _, st := range g.SubTopologies {
		for _, t := range st.SourceTopics {
			if t == topic {
				return st
			}
		}
	}
	for _, st := range g.SubTopologies {
		for _, p := range st.SourcePatterns {
			if p.MatchString(topic) {
				return st
			}
		}
	}
	return nil
}

// Handle carries a compiled Graph through package topology's public API
// (Topology.InternalHandle) to the packages inside brook that drive it
// (testutil, this package's tests) without exposing it: a Handle has no
// exported field or method, and only packages inside brook can import task
// to call GraphOf. It replaces a package-level hook that topology used to
// set from an init function.
type Handle struct{ g *Graph }

// NewHandle wraps g; package topology calls it for a built Topology.
func NewHandle(g *Graph) Handle { return Handle{g: g} }

// GraphOf returns the Graph h carries, or an error for the zero Handle
// (a Topology that was not built by Builder.Build).
func GraphOf(h Handle) (*Graph, error) {
	if h.g == nil {
		return nil, errors.New("task: not a built *topology.Topology (use topology.Builder.Build)")
	}
	return h.g, nil
}

// ApplicationIDPlaceholder stands for the application id in the names of
// internal topics (repartition topics) until the graph runs for an
// application (ForApplication). It contains characters Kafka refuses in
// topic names, so it cannot clash with a user's topic.
const ApplicationIDPlaceholder = "<application-id>"

// RepartitionTopic returns the name, before ForApplication, of the
// internal topic of the repartition step named name:
// "<application-id>-<name>-repartition".
func RepartitionTopic(name string) string {
	return InternalTopic(name, "-repartition")
}

// InternalTopic returns the name, before ForApplication, of an internal
// topic of the step named name: "<application-id>-<name><suffix>"
// (RepartitionTopic's suffix is "-repartition"; a foreign-key join's
// topics end in "-subscription-registration-topic" and
// "-subscription-response-topic"). Graph.Repartitions lists every
// internal topic, whatever its suffix: all are created, sized and purged
// alike.
func InternalTopic(name, suffix string) string {
	return ApplicationIDPlaceholder + "-" + name + suffix
}

// IsInternalTopic reports whether topic is an internal topic of the graph
// (a repartition topic), in placeholder or resolved form.
func (g *Graph) IsInternalTopic(topic string) bool {
	_, ok := g.Repartitions[topic]
	return ok
}

// ForApplication returns a copy of g with the application id filled into
// the names of its internal topics (node subscriptions, sink topics,
// sub-topology source topics and Repartitions). The runtime and the
// TestDriver run the copy; g is not changed.
func (g *Graph) ForApplication(appID string) *Graph {
	if len(g.Repartitions) == 0 {
		return g
	}
	resolve := func(t string) string {
		if rest, ok := strings.CutPrefix(t, ApplicationIDPlaceholder); ok {
			return appID + rest
		}
		return t
	}
	out := *g
	out.Nodes = make(map[string]*NodeSpec, len(g.Nodes))
	for name, n := range g.Nodes {
		c := *n
		c.Topics = make([]string, len(n.Topics))
		for i, t := range n.Topics {
			c.Topics[i] = resolve(t)
		}
		if n.Topics == nil {
			c.Topics = nil
		}
		c.SinkTopic = resolve(n.SinkTopic)
		out.Nodes[name] = &c
	}
	out.SubTopologies = make([]*SubTopology, len(g.SubTopologies))
	for i, st := range g.SubTopologies {
		c := *st
		c.SourceTopics = make([]string, len(st.SourceTopics))
		for j, t := range st.SourceTopics {
			c.SourceTopics[j] = resolve(t)
		}
		slices.Sort(c.SourceTopics)
		out.SubTopologies[i] = &c
	}
	out.Repartitions = make(map[string]int32, len(g.Repartitions))
	for t, n := range g.Repartitions {
		out.Repartitions[resolve(t)] = n
	}
	return &out
}
