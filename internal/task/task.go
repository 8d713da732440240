package task

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/brookstream/brook/internal/meter"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// RawRecord is a consumed record as the task receives it.
type RawRecord struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Timestamp time.Time
	Headers   processor.Headers
}

// Collector receives the records sinks produce. The runtime implements it
// with its producer, the TestDriver with in-memory topics.
type Collector interface {
	// Send hands over one serialized record, and where it comes from. An
	// error goes to the production handler.
	Send(rec processor.ProducedRecord, from Origin) error
	// PartitionCount returns the number of partitions of topic; it is
	// only called for sinks with a custom partitioner.
	PartitionCount(topic string) (int32, error)
}

// Origin tells where a record handed to the Collector comes from: the node
// that sent it (a sink, or the node whose error handler produced it, e.g.
// a dead-letter record) and the source record being processed (Offset -1
// during punctuation). The runtime keeps it with the record so that a
// failure the broker reports later can name them.
type Origin struct {
	Node      string
	Topic     string
	Partition int32
	Offset    int64
}

// StoreFactory opens the engine of one store for one task, and returns the
// store options (changelog wiring) to build the typed store with. The task
// flushes the engine at Commit and closes it at Close.
type StoreFactory func(id processor.TaskID, spec *StoreSpec) (store.Engine, []store.Option, error)

// Offset is a consumed position to commit: the offset of the next record
// to read from Topic/Partition, and the task's stream time at the commit
// (zero while unknown), which the caller commits with it
// (EncodeStreamTime) so that the task's next owner resumes from it
// (Config.StreamTime).
type Offset struct {
	Topic      string
	Partition  int32
	Offset     int64
	StreamTime time.Time
}

// Config configures a Task.
type Config struct {
	// ID selects the sub-topology (ID.SubTopology) and the partition.
	ID processor.TaskID
	// Graph is the compiled topology.
	Graph *Graph
	// Stores opens the engines of the sub-topology's stores. Required when
	// the sub-topology has stores.
	Stores StoreFactory
	// Collector receives sink records. Required.
	Collector Collector
	// Logger is tagged with the task id; nil discards logs.
	Logger *slog.Logger
	// WallClock is the wall-clock time at creation: wall-clock punctuators
	// scheduled in Init count from it.
	WallClock time.Time
	// StreamTime is the stream time the task resumes from: the largest one
	// committed with its partitions' offsets (ParseStreamTime) before a
	// restart or rebalance; zero means unknown (a task that never
	// committed one). It is in place before any processor's Init, so
	// ctx.StreamTime() returns it at once and stream-time punctuators
	// scheduled in Init are first due one interval after it, not at the
	// first record. Records older than it do not move it back.
	StreamTime time.Time
	// Globals are the read-only views of the instance's global stores
	// (Global.View), by name: every processor of the task may read them,
	// connected with topology.WithStores or not.
	Globals map[string]any
	// ApplicationID is the application's id: error handlers see it
	// (processor.ErrorContext.ApplicationID) and lineage headers carry
	// it.
	ApplicationID string
	// LineageHeaders makes every sink record carry the lineage headers
	// (processor.Lineage): the application id, the sink node and the
	// input record being processed.
	LineageHeaders bool
	// Context ends waits of source deserializers (serde.ContextDeserializer:
	// an Avro serde waiting out an unavailable schema registry) when the
	// task is being stopped; Process then returns an error matching
	// ErrInterrupted. Nil means a context that never ends.
	Context context.Context
	// Meter receives the task's measurements (records per node, records
	// produced and their end-to-end latency, dead-lettered and dropped
	// records); nil measures nothing. Measuring never changes what the
	// task does.
	Meter *meter.Task
}

// ErrInterrupted is matched by the error of a Process call whose source
// deserializer was waiting for an unavailable external system (the schema
// registry) when Config.Context ended. Nothing of that record happened: it
// is not consumed, nothing was forwarded, no handler was asked, so the
// record is simply processed again by the task's next owner.
var ErrInterrupted = errors.New("task: stopped while waiting for an unavailable external system")

type openStore struct {
	spec   *StoreSpec
	engine store.Engine
	typed  any
}

// Task is one sub-topology instance for one partition. It is not safe for
// concurrent use: one goroutine drives it.
type Task struct {
	id        processor.TaskID
	sub       *SubTopology
	graph     *Graph
	log       *slog.Logger
	collector Collector
	handlers  Handlers
	ctx       context.Context
	appID     string
	lineage   bool
	// linBytes and linHeaders are slabs the lineage header values and
	// header slices of sink records are carved from (withLineage).
	linBytes   []byte
	linHeaders processor.Headers

	order     []string // node names, parents first
	nodes     map[string]Node
	byTopic   map[string]rawSource
	patterns  []patternSource
	stores    map[string]*openStore
	storeList []*openStore
	globals   map[string]any

	streamTime      time.Time
	streamTimeKnown bool
	wallTime        time.Time
	current         RawRecord // the record being processed, when hasCurrent
	hasCurrent      bool
	punctuating     bool
	busy            bool
	initializing    bool
	commitRequested bool
	closed          bool

	schedules []*schedule
	seq       uint64
	consumed  map[topicPartition]int64

	meter *meter.Task
	// handlerSent counts the records an error handler sent through
	// ErrorContext.Produce during its current call.
	handlerSent int
}

type patternSource struct {
	spec *NodeSpec
	src  rawSource
}

type topicPartition struct {
	topic     string
	partition int32
}

// New instantiates the sub-topology cfg.ID.SubTopology for partition
// cfg.ID.Partition: it creates the node instances, opens the stores and
// calls every processor's Init (parents before children). On error it
// releases whatever it had opened.
func New(cfg Config) (*Task, error) {
	if cfg.Graph == nil {
		return nil, errors.New("task: Config.Graph is nil")
	}
	if cfg.Collector == nil {
		return nil, errors.New("task: Config.Collector is nil")
	}
	if cfg.ID.SubTopology < 0 || cfg.ID.SubTopology >= len(cfg.Graph.SubTopologies) {
		return nil, fmt.Errorf("task: %s: no sub-topology %d (topology has %d)", cfg.ID, cfg.ID.SubTopology, len(cfg.Graph.SubTopologies))
	}
	sub := cfg.Graph.SubTopologies[cfg.ID.SubTopology]
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx := cfg.Context
	if ctx == nil {
		ctx = context.Background()
	}
	t := &Task{
		id: cfg.ID, sub: sub, graph: cfg.Graph, collector: cfg.Collector, handlers: cfg.Graph.Handlers, ctx: ctx,
		appID: cfg.ApplicationID, lineage: cfg.LineageHeaders,
		log:      log.With("task", cfg.ID.String()),
		order:    sub.Nodes,
		nodes:    make(map[string]Node, len(sub.Nodes)),
		byTopic:  make(map[string]rawSource),
		stores:   make(map[string]*openStore, len(sub.Stores)),
		wallTime: cfg.WallClock,
		consumed: make(map[topicPartition]int64),
		globals:  cfg.Globals,
		meter:    cfg.Meter,
	}
	if !cfg.StreamTime.IsZero() {
		t.streamTime, t.streamTimeKnown = cfg.StreamTime, true
	}
	if err := t.open(cfg); err != nil {
		return nil, errors.Join(err, t.Close())
	}
	return t, nil
}

func (t *Task) open(cfg Config) error {
	for _, name := range t.sub.Stores {
		spec := t.graph.Stores[name]
		if spec == nil {
			return fmt.Errorf("task: %s: store %q is not in the graph", t.id, name)
		}
		if cfg.Stores == nil {
			return fmt.Errorf("task: %s: store %q needs Config.Stores", t.id, name)
		}
		e, opts, err := cfg.Stores(t.id, spec)
		if err != nil {
			return fmt.Errorf("task: %s: open store %q: %w", t.id, name, err)
		}
		typed, err := spec.Open(e, opts...)
		s := &openStore{spec: spec, engine: e, typed: typed}
		t.stores[name] = s
		t.storeList = append(t.storeList, s) // closed by Close, even on error
		if err != nil {
			return fmt.Errorf("task: %s: open store %q: %w", t.id, name, err)
		}
	}
	for _, name := range t.order {
		spec := t.graph.Nodes[name]
		if spec == nil || spec.New == nil {
			return fmt.Errorf("task: %s: node %q is not in the graph", t.id, name)
		}
		t.nodes[name] = spec.New()
	}
	for _, name := range t.order {
		spec := t.graph.Nodes[name]
		children := make([]Node, len(spec.Children))
		for i, c := range spec.Children {
			if children[i] = t.nodes[c]; children[i] == nil {
				return fmt.Errorf("task: %s: child %q of node %q is not in sub-topology %d", t.id, c, name, t.sub.ID)
			}
		}
		n := t.nodes[name]
		if err := n.bind(t, spec, children); err != nil {
			return fmt.Errorf("task: %s: %w", t.id, err)
		}
		if spec.Kind == Source {
			src := n.(rawSource)
			for _, topic := range spec.Topics {
				t.byTopic[topic] = src
			}
			if spec.Pattern != nil {
				t.patterns = append(t.patterns, patternSource{spec: spec, src: src})
			}
		}
	}
	t.initializing = true
	defer func() { t.initializing = false }()
	for _, name := range t.order {
		if err := t.nodes[name].init(); err != nil {
			return fmt.Errorf("task: %s: %w", t.id, err)
		}
	}
	return nil
}

// ID returns the task's id.
func (t *Task) ID() processor.TaskID { return t.id }

// StreamTime returns the largest record timestamp seen, or the stream time
// the task resumed from (Config.StreamTime) if larger; zero while unknown.
func (t *Task) StreamTime() time.Time { return t.streamTime }

// CommitRequested reports whether a processor called RequestCommit since
// the last Commit.
func (t *Task) CommitRequested() bool { return t.commitRequested }

// Store returns the typed store named name (a store.KeyValueStore[K,V] for
// a key-value store), for interactive queries and tests.
func (t *Task) Store(name string) (any, error) {
	s, ok := t.stores[name]
	if !ok {
		return nil, fmt.Errorf("task: %s: no store %q (stores: %v)", t.id, name, t.sub.Stores)
	}
	return s.typed, nil
}

func (t *Task) source(topic string) rawSource {
	if s, ok := t.byTopic[topic]; ok {
		return s
	}
	for _, p := range t.patterns {
		if p.spec.Pattern.MatchString(topic) {
			t.byTopic[topic] = p.src
			return p.src
		}
	}
	return nil
}

func (t *Task) enter() error {
	if t.closed {
		return fmt.Errorf("task: %s: closed", t.id)
	}
	if t.busy {
		return fmt.Errorf("task: %s: re-entrant call (a Collector or processor called back into the task)", t.id)
	}
	t.busy = true
	return nil
}

// Process runs one consumed record through the sub-topology: the source
// for its topic deserializes it, processors forward it, sinks send the
// results to the Collector; then any stream-time punctuators that became
// due fire. A record the error handlers drop still counts as consumed.
// On error nothing about this record is marked consumed, and stream time
// stays where it was before it.
func (t *Task) Process(rec RawRecord) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer func() { t.busy, t.hasCurrent, t.current = false, false, RawRecord{} }()
	src := t.source(rec.Topic)
	if src == nil {
		return fmt.Errorf("task: %s: no source reads topic %q (record at partition %d offset %d)", t.id, rec.Topic, rec.Partition, rec.Offset)
	}
	t.current, t.hasCurrent = rec, true
	// A record that fails leaves stream time as it was: the runtime
	// commits the records before it with the stream time they made, and
	// the failed record is processed again after a restart.
	prevTime, prevKnown := t.streamTime, t.streamTimeKnown
	if err := src.processRaw(&t.current); err != nil {
		t.streamTime, t.streamTimeKnown = prevTime, prevKnown
		return err
	}
	tp := topicPartition{rec.Topic, rec.Partition}
	prev, had := t.consumed[tp]
	t.consumed[tp] = rec.Offset + 1
	t.hasCurrent = false
	if _, err := t.fire(processor.StreamTime, t.streamTime); err != nil {
		// A punctuator this record made due failed: the record is not
		// consumed either (the runtime undoes its effects with the
		// punctuation's).
		if had {
			t.consumed[tp] = prev
		} else {
			delete(t.consumed, tp)
		}
		t.streamTime, t.streamTimeKnown = prevTime, prevKnown
		return err
	}
	return nil
}

// Punctuate advances the task's wall clock to now (it never goes back) and
// fires the wall-clock punctuators that are due. It returns how many fired.
func (t *Task) Punctuate(now time.Time) (int, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer func() { t.busy = false }()
	if now.After(t.wallTime) {
		t.wallTime = now
	}
	return t.fire(processor.WallClockTime, t.wallTime)
}

// Commit flushes the stores and returns the positions consumed since the
// last Commit, sorted by topic and partition, each with the task's stream
// time. The caller commits them (after flushing its producer) with the
// stream time in their metadata, and writes the checkpoint.
func (t *Task) Commit() ([]Offset, error) {
	if t.closed {
		return nil, fmt.Errorf("task: %s: closed", t.id)
	}
	for _, s := range t.storeList {
		if err := s.engine.Flush(); err != nil {
			return nil, fmt.Errorf("task: %s: flush store %q: %w", t.id, s.spec.Name, err)
		}
	}
	out := make([]Offset, 0, len(t.consumed))
	for tp, off := range t.consumed {
		out = append(out, Offset{Topic: tp.topic, Partition: tp.partition, Offset: off, StreamTime: t.StreamTime()})
	}
	slices.SortFunc(out, func(a, b Offset) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	clear(t.consumed)
	t.commitRequested = false
	return out, nil
}

// Close closes every processor (parents first), then the store engines.
// It returns every error met; calling it again does nothing.
func (t *Task) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	for _, name := range t.order {
		if n := t.nodes[name]; n != nil {
			errs = append(errs, n.close())
		}
	}
	for _, s := range t.storeList {
		if err := s.engine.Close(); err != nil {
			errs = append(errs, &StoreCloseError{Task: t.id, Store: s.spec.Name, Err: err})
		}
	}
	t.schedules = nil
	return errors.Join(errs...)
}

// StoreCloseError reports a store whose engine did not close cleanly. When
// a processor leaked iterators, Err is a *store.OpenIteratorsError and the
// store is closed anyway.
type StoreCloseError struct {
	Task  processor.TaskID
	Store string
	Err   error
}

// Error implements error.
func (e *StoreCloseError) Error() string {
	return fmt.Sprintf("task: %s: close store %q: %v", e.Task, e.Store, e.Err)
}

// Unwrap returns the engine's error.
func (e *StoreCloseError) Unwrap() error { return e.Err }

func (t *Task) observe(ts time.Time) {
	if ts.IsZero() {
		return
	}
	if !t.streamTimeKnown || ts.After(t.streamTime) {
		t.streamTime, t.streamTimeKnown = ts, true
	}
}

func (t *Task) recordMetadata() (processor.RecordMetadata, bool) {
	if !t.hasCurrent || t.punctuating {
		return processor.RecordMetadata{}, false
	}
	return processor.RecordMetadata{Topic: t.current.Topic, Partition: t.current.Partition, Offset: t.current.Offset, NullKey: t.current.Key == nil}, true
}

// Slab sizes for lineage header values and header slices: one allocation
// serves hundreds of records. A slab stays alive while any record carved
// from it does (until the producer is done with it), which bounds what
// this keeps to a few slabs per task.
const (
	lineageByteSlab   = 16 << 10
	lineageHeaderSlab = 512
)

// LineageSuffix returns the end of a sink node's lineage header value:
// "|<node>|<application-id>", escaped (processor.HeaderLineage). It is
// the same for every record the node writes.
func (t *Task) LineageSuffix(node string) []byte {
	b := append([]byte{'|'}, processor.AppendLineageField(nil, node)...)
	b = append(b, '|')
	return processor.AppendLineageField(b, t.appID)
}

// withLineage returns headers, less any lineage header, followed by the
// lineage header of a record the sink node sends now (from its origin),
// as processor.Lineage.AppendTo does, without an allocation per record:
// the value and the header slice are carved from per-task slabs (neither
// is written to once handed on). suffix is the node's LineageSuffix.
func (t *Task) withLineage(headers processor.Headers, from Origin, suffix []byte) processor.Headers {
	n := len(suffix)
	if from.Offset >= 0 {
		n += len(from.Topic) + 2 + 10 + 19 // "/", partition, "/", offset
	}
	if cap(t.linBytes)-len(t.linBytes) < n {
		t.linBytes = make([]byte, 0, max(lineageByteSlab, n))
	}
	at := len(t.linBytes)
	v := t.linBytes[at:at:cap(t.linBytes)]
	if from.Offset >= 0 {
		v = append(v, from.Topic...)
		v = append(v, '/')
		v = strconv.AppendInt(v, int64(from.Partition), 10)
		v = append(v, '/')
		v = strconv.AppendInt(v, from.Offset, 10)
	}
	v = append(v, suffix...)
	t.linBytes = t.linBytes[:at+len(v)]
	v = v[:len(v):len(v)]

	keep := len(headers) + 1
	for _, h := range headers {
		if h.Key == processor.HeaderLineage {
			keep--
		}
	}
	if cap(t.linHeaders)-len(t.linHeaders) < keep {
		t.linHeaders = make(processor.Headers, 0, max(lineageHeaderSlab, keep))
	}
	at = len(t.linHeaders)
	out := t.linHeaders[at : at : at+keep]
	for _, h := range headers {
		if h.Key != processor.HeaderLineage {
			out = append(out, h)
		}
	}
	out = append(out, processor.Header{Key: processor.HeaderLineage, Value: v})
	t.linHeaders = t.linHeaders[:at+keep]
	return out
}

// origin describes the record node is sending now.
func (t *Task) origin(node string) Origin {
	o := Origin{Node: node, Offset: -1}
	if c := &t.current; t.hasCurrent && !t.punctuating {
		o.Topic, o.Partition, o.Offset = c.Topic, c.Partition, c.Offset
	}
	return o
}

func (t *Task) errorContext(node string, err error) processor.ErrorContext {
	from := t.origin(node)
	produce := func(rec processor.ProducedRecord) error {
		if err := t.collector.Send(rec, from); err != nil {
			return err
		}
		t.handlerSent++
		return nil
	}
	ec := processor.ErrorContext{TaskID: t.id, Node: node, ApplicationID: t.appID, Err: err, Offset: -1, Produce: produce}
	if c := &t.current; t.hasCurrent && !t.punctuating {
		ec.Topic, ec.Partition, ec.Offset = c.Topic, c.Partition, c.Offset
		ec.Key, ec.Value, ec.Headers, ec.Timestamp = c.Key, c.Value, c.Headers, c.Timestamp
	}
	return ec
}

// alreadyHandled reports whether err carries a decision of a handler
// deeper in the graph, which must propagate unchanged.
func alreadyHandled(err error) bool {
	var pe *processor.ProcessingError
	var pr *processor.ProductionError
	var de *processor.DeserializationError
	return errors.As(err, &pe) || errors.As(err, &pr) || errors.As(err, &de)
}

// unavailable reports whether err says an external system the record
// needs (the schema registry) is unavailable: an outage, not bad data, so
// no error handler may see it. The task returns it as the record's error
// instead; the runtime stops and commits only up to the record, so that a
// restart resumes exactly at it.
func unavailable(err error) bool { return errors.Is(err, serde.ErrRegistryUnavailable) }

func (t *Task) deserializationFailed(node, part string, err error) error {
	ec := t.errorContext(node, err)
	if unavailable(err) {
		if t.ctx.Err() != nil {
			return fmt.Errorf("%w: source %q, %s of record at topic %q partition %d offset %d: %w",
				ErrInterrupted, node, part, ec.Topic, ec.Partition, ec.Offset, err)
		}
		t.log.Error("schema registry unavailable: record not handed to the deserialization handler", "topic", ec.Topic,
			"partition", ec.Partition, "offset", ec.Offset, "part", part, "error", err)
	} else if h := t.handlers.Deserialization; h != nil && t.ask(node, func() processor.HandlerResponse { return h(ec) }) == processor.Continue {
		t.log.Warn("dropped record that could not be deserialized", "action", "your deserialization handler chose Continue: fix the producer of the record, or use processor.DeadLetter to keep it", "topic", ec.Topic, "partition", ec.Partition, "offset", ec.Offset, "part", part, "error", err)
		return nil
	}
	return &processor.DeserializationError{Node: node, Topic: ec.Topic, Partition: ec.Partition, Offset: ec.Offset, Part: part, Err: err}
}

func (t *Task) processingFailed(node string, err error, punctuation bool) error {
	if alreadyHandled(err) {
		return err
	}
	ec := t.errorContext(node, err)
	if !unavailable(err) {
		if h := t.handlers.Processing; h != nil && t.ask(node, func() processor.HandlerResponse { return h(ec) }) == processor.Continue {
			return nil
		}
	}
	return &processor.ProcessingError{Node: node, TaskID: t.id, Punctuation: punctuation || t.punctuating,
		Topic: ec.Topic, Partition: ec.Partition, Offset: ec.Offset, Err: err}
}

func (t *Task) productionFailed(node string, out processor.ProducedRecord, err error) error {
	ec := t.errorContext(node, err)
	if !unavailable(err) {
		if h := t.handlers.Production; h != nil && t.ask(node, func() processor.HandlerResponse { return h(ec, out) }) == processor.Continue {
			return nil
		}
	}
	return &processor.ProductionError{Node: node, OutputTopic: out.Topic, Topic: ec.Topic, Partition: ec.Partition, Offset: ec.Offset, Err: err}
}

// ask calls an error handler for a failure at node and counts what its
// answer did to the record: Continue after the handler wrote records
// through ErrorContext.Produce (a dead-letter handler) counts them as
// dead-lettered; Continue without writing counts the record as dropped
// (metrics.DropError).
func (t *Task) ask(node string, call func() processor.HandlerResponse) processor.HandlerResponse {
	t.handlerSent = 0
	resp := call()
	if resp == processor.Continue && t.meter != nil {
		n := t.meterNode(node)
		if t.handlerSent > 0 {
			n.DeadLettered(t.handlerSent)
		} else {
			n.Dropped(metrics.DropError)
		}
	}
	t.handlerSent = 0
	return resp
}

// meterNode returns the measurements of node name (nil when the task
// measures nothing).
func (t *Task) meterNode(name string) *meter.Node {
	if t.meter == nil {
		return nil
	}
	kind := "processor"
	if spec := t.graph.Nodes[name]; spec != nil {
		kind = spec.Kind.String()
	}
	return t.meter.Node(name, kind)
}

// DropCounter is implemented by the processor.Context the task hands to
// its processors: the DSL's processors count the records they drop (late,
// duplicate, null key or value) through it, so that the App's metrics
// show them. Processors of your own may use it too (a type assertion on
// the Context); it does nothing when the App measures nothing.
type DropCounter interface {
	CountDropped(reason metrics.DropReason)
}

// CountDropped counts a record the current node dropped, when ctx (a
// processor.Context) is one the task made; otherwise it does nothing.
func CountDropped(ctx any, reason metrics.DropReason) {
	if dc, ok := ctx.(DropCounter); ok {
		dc.CountDropped(reason)
	}
}
