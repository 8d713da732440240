package testutil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/topology"
)

// TestDriver runs a topology with no broker, deterministically, through the
// same task core the Kafka runtime uses (in the manner of Kafka Streams'
// TopologyTestDriver).
//
// It runs one task per sub-topology, all for partition 0, with in-memory
// stores. Each piped record gets the next offset of its topic, is
// processed, and then every task commits: the changelog records of its
// logged stores and its stream time (carried by the committed offsets, as
// in the runtime) are kept, so that Restart can start a new driver from
// them. Records that sinks send to a
// topic some source reads are processed in turn (as an internal
// repartition topic would be); every sink record is also kept for the
// output topics. Stream-time punctuators fire as input timestamps advance;
// wall-clock punctuators fire only when the test advances the driver's
// clock with AdvanceWallClock.
//
// Bad input meets the topology's error handlers exactly as in the runtime;
// without a handler Pipe returns the *processor.DeserializationError (or
// ProcessingError, ProductionError) naming the topic and offset.
//
// A TestDriver starts no goroutines and is not safe for concurrent use.
type TestDriver struct {
	graph      *task.Graph
	cfg        driverConfig
	tasks      []*task.Task
	wall       time.Time
	offsets    map[string]int64
	outputs    map[string][]processor.ProducedRecord
	partitions map[string]int32
	loopback   []task.RawRecord
	closed     bool
	// globals are the global tables' stores, by topic; their topics'
	// records are applied at once (see PipeRaw).
	globals map[string]*task.Global

	// What Restart restores from. logs are the committed records of every
	// changelog topic and table source topic (offset = index); pending
	// are the ones written since the last commit. tables are the source
	// topics of tables. committed holds, per sub-topology, the offset
	// metadata (stream time) its task committed, by topic.
	logs      map[string][]store.ChangelogRecord
	pending   []pendingRecord
	tables    map[string]bool
	committed []map[string]string
}

// pendingRecord is a changelog record (or a table source record) written
// since the last commit.
type pendingRecord struct {
	topic      string
	key, value []byte
}

type driverConfig struct {
	start      time.Time
	logger     *slog.Logger
	partitions map[string]int32
	lineage    bool
}

// DriverOption configures a TestDriver.
type DriverOption func(*driverConfig)

// WithStartTime sets the driver's initial wall-clock time (default: the
// Unix epoch, UTC).
func WithStartTime(t time.Time) DriverOption { return func(c *driverConfig) { c.start = t } }

// WithLogger gives the tasks a logger (default: logs are discarded).
func WithLogger(l *slog.Logger) DriverOption { return func(c *driverConfig) { c.logger = l } }

// WithPartitionCount declares how many partitions topic has (default 1).
// It matters for sinks with a custom partitioner, and for the partition
// the driver records for keyed output records (murmur2, as the producer).
func WithPartitionCount(topic string, n int32) DriverOption {
	return func(c *driverConfig) { c.partitions[topic] = n }
}

// WithLineageHeaders makes sinks add the lineage headers, as
// topology.Config.LineageHeaders does in the Kafka runtime; the
// application id they name is DriverApplicationID, and the offsets are
// the driver's own (each input topic's records numbered from 0).
func WithLineageHeaders() DriverOption { return func(c *driverConfig) { c.lineage = true } }

// NewTestDriver creates the tasks of topo (calling every processor's Init)
// and returns a driver ready for input. Close it when done.
func NewTestDriver(topo *topology.Topology, opts ...DriverOption) (*TestDriver, error) {
	cfg := driverConfig{start: time.Unix(0, 0).UTC(), partitions: map[string]int32{}}
	for _, o := range opts {
		o(&cfg)
	}
	g, err := task.GraphOf(topo.InternalHandle())
	if err != nil {
		return nil, fmt.Errorf("testutil: %w", err)
	}
	g = g.ForApplication(DriverApplicationID)
	d := &TestDriver{
		graph: g, cfg: cfg, wall: cfg.start, offsets: map[string]int64{},
		outputs: map[string][]processor.ProducedRecord{}, partitions: cfg.partitions,
		logs: map[string][]store.ChangelogRecord{}, tables: map[string]bool{},
		committed: make([]map[string]string, len(g.SubTopologies)),
	}
	for _, spec := range g.Stores {
		if spec.SourceTopic != "" {
			d.tables[spec.SourceTopic] = true
		}
	}
	if err := d.openTasks(); err != nil {
		return nil, err
	}
	return d, nil
}

// openGlobals opens the global tables' stores, restored from the records
// of their topics the driver applied before (Restart).
func (d *TestDriver) openGlobals() error {
	d.globals = map[string]*task.Global{}
	names := make([]string, 0, len(d.graph.Stores))
	for name, spec := range d.graph.Stores {
		if spec.Global {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		spec := d.graph.Stores[name]
		res, err := store.Restore(context.Background(), store.RestoreConfig{
			Store: name, Changelog: store.TopicPartition{Topic: spec.SourceTopic, Partition: 0},
			Opener: store.MemoryOpener(), Reader: memoryLog(d.logs[spec.SourceTopic]), Logger: d.logger(),
		})
		if err != nil {
			return fmt.Errorf("testutil: global table %q: %w", name, err)
		}
		g, err := task.OpenGlobal(spec, res.Engine)
		if err != nil {
			return errors.Join(err, res.Engine.Close())
		}
		d.globals[spec.SourceTopic] = g
	}
	return nil
}

func (d *TestDriver) logger() *slog.Logger {
	if d.cfg.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.cfg.logger
}

// applyGlobal applies one record of a global table's topic to its store
// at once (the runtime's global reader does it as the record arrives);
// the record's key and value meet the deserialization handler as a
// source's would.
func (d *TestDriver) applyGlobal(g *task.Global, rec task.RawRecord) error {
	b := g.Engine.NewBatch()
	if err := g.Add(context.Background(), b, rec, d.graph.Handlers, d.logger()); err != nil {
		return err
	}
	if b.Len() == 0 {
		return nil // dropped by the handler, or a null key
	}
	if err := b.Write(); err != nil {
		return fmt.Errorf("testutil: global table %q: %w", g.Spec.Name, err)
	}
	// The topic is the store's changelog: a Restart restores from it.
	log := d.logs[rec.Topic]
	d.logs[rec.Topic] = append(log, store.ChangelogRecord{Offset: int64(len(log)), Key: clone(rec.Key), Value: clone(rec.Value)})
	return nil
}

// openTasks creates one task per sub-topology, whose stores restore from
// the driver's logs and whose stream time is the one its task committed
// last.
func (d *TestDriver) openTasks() error {
	if err := d.openGlobals(); err != nil {
		return errors.Join(err, d.Close())
	}
	views := make(map[string]any, len(d.globals))
	for _, g := range d.globals {
		views[g.Spec.Name] = g.View
	}
	for _, st := range d.graph.SubTopologies {
		var resume time.Time
		for topic, meta := range d.committed[st.ID] {
			t, err := task.ParseStreamTime(meta)
			if err != nil {
				return errors.Join(fmt.Errorf("testutil: stream time committed for topic %q: %w", topic, err), d.Close())
			}
			if t.After(resume) {
				resume = t
			}
		}
		tk, err := task.New(task.Config{
			ID:         processor.TaskID{SubTopology: st.ID, Partition: 0},
			Graph:      d.graph,
			Stores:     d.openStore,
			Collector:  (*driverCollector)(d),
			Logger:     d.cfg.logger,
			WallClock:  d.wall,
			StreamTime: resume,
			Globals:    views,

			ApplicationID:  DriverApplicationID,
			LineageHeaders: d.cfg.lineage,
		})
		if err != nil {
			return errors.Join(fmt.Errorf("testutil: %w", err), d.Close())
		}
		d.tasks = append(d.tasks, tk)
	}
	return nil
}

// Restart stops the driver as an application instance stops and starts a
// new one on a machine without local state, and returns the new driver;
// the old one is closed. It models what survives in Kafka:
//
//   - Every task commits (as at a clean shutdown) and closes.
//   - Logged stores (key-value, window and TTL) are restored from the
//     changelog records their tasks committed, through the store's restore
//     path (StoreSpec.Apply), as the runtime restores them; tables from
//     the records of their source topics.
//   - Unlogged stores start empty, as on a new machine (or after losing
//     the local disk). A persistent unlogged store of an App that restarts
//     on the same disk keeps its data, which Restart does not model.
//   - Each task resumes from the stream time committed with its offsets,
//     so windows and suppression it had closed stay closed, and its
//     stream-time punctuators are next due one interval after it.
//   - Input offsets continue, the wall clock keeps its time (wall-clock
//     punctuators count from it again), and unread output records move to
//     the new driver (read them through output topics made for it).
//
// Processor instances are new: whatever they kept outside stores is gone.
// A driver that is already closed cannot restart.
func (d *TestDriver) Restart() (*TestDriver, error) {
	if d.closed {
		return nil, errors.New("testutil: TestDriver is closed")
	}
	if err := d.commit(); err != nil {
		return nil, fmt.Errorf("testutil: restart: final commit: %w", err)
	}
	if err := d.Close(); err != nil {
		return nil, fmt.Errorf("testutil: restart: close the old tasks: %w", err)
	}
	nd := &TestDriver{
		graph: d.graph, cfg: d.cfg, wall: d.wall, offsets: maps.Clone(d.offsets),
		outputs: d.outputs, partitions: d.partitions,
		logs: d.logs, tables: d.tables, committed: d.committed,
	}
	d.outputs = map[string][]processor.ProducedRecord{}
	if err := nd.openTasks(); err != nil {
		return nil, err
	}
	return nd, nil
}

// DriverApplicationID is the application id the TestDriver stands in for:
// logged stores pass "<DriverApplicationID>-<store>-changelog" to their
// serdes, as they would in an App with that id.
const DriverApplicationID = "brook-test-driver"

// openStore is the tasks' store factory: a logged store or a table
// restores its in-memory engine from the driver's log of its changelog
// (or source topic); an unlogged store starts empty.
func (d *TestDriver) openStore(_ processor.TaskID, spec *task.StoreSpec) (store.Engine, []store.Option, error) {
	opts := []store.Option{store.WithSerdeTopic(spec.SerdeTopic(DriverApplicationID))}
	var topic string
	switch {
	case spec.SourceTopic != "":
		topic = spec.SourceTopic
	case spec.Logged:
		topic = store.ChangelogTopic(DriverApplicationID, spec.Name)
		opts = append(opts, store.WithChangelog(topic, 0, (*driverChangelog)(d)))
	default:
		return store.NewMemoryEngine(), opts, nil
	}
	log := d.cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res, err := store.Restore(context.Background(), store.RestoreConfig{
		Store: spec.Name, Changelog: store.TopicPartition{Topic: topic, Partition: 0},
		Opener: store.MemoryOpener(), Reader: memoryLog(d.logs[topic]), Apply: spec.Apply, Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	return res.Engine, opts, nil
}

// driverChangelog is the TestDriver seen as the stores' ChangelogWriter.
type driverChangelog TestDriver

func (c *driverChangelog) SendChangelog(topic string, _ int32, key, value []byte) error {
	d := (*TestDriver)(c)
	d.pending = append(d.pending, pendingRecord{topic: topic, key: clone(key), value: clone(value)})
	return nil
}

// clone copies b, keeping nil (a tombstone) apart from empty.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// memoryLog is a committed changelog partition as a store.ChangelogReader;
// a record's offset is its index.
type memoryLog []store.ChangelogRecord

func (l memoryLog) BeginOffset(context.Context) (int64, error) { return 0, nil }
func (l memoryLog) EndOffset(context.Context) (int64, error)   { return int64(len(l)), nil }

func (l memoryLog) Read(_ context.Context, from, to int64, fn func([]store.ChangelogRecord) error) error {
	if from < 0 || to > int64(len(l)) || from > to {
		return fmt.Errorf("testutil: read [%d, %d) of a changelog of %d records", from, to, len(l))
	}
	if from == to {
		return nil
	}
	return fn(l[from:to])
}

// driverCollector is the TestDriver seen as the tasks' Collector.
type driverCollector TestDriver

func (c *driverCollector) Send(rec processor.ProducedRecord, _ task.Origin) error {
	d := (*TestDriver)(c)
	if rec.Partition < 0 {
		rec.Partition = 0
		if n := d.partitionCount(rec.Topic); n > 1 && rec.Key != nil {
			p, err := partition.ForKey(rec.Key, n)
			if err != nil {
				return err
			}
			rec.Partition = p
		}
	}
	rec.Timestamp = rec.Timestamp.Truncate(time.Millisecond)
	d.outputs[rec.Topic] = append(d.outputs[rec.Topic], rec)
	if d.graph.SubTopologyFor(rec.Topic) != nil || d.globals[rec.Topic] != nil {
		d.loopback = append(d.loopback, task.RawRecord{
			Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp, Headers: rec.Headers,
		})
	}
	return nil
}

func (c *driverCollector) PartitionCount(topic string) (int32, error) {
	return (*TestDriver)(c).partitionCount(topic), nil
}

func (d *TestDriver) partitionCount(topic string) int32 {
	if n, ok := d.partitions[topic]; ok {
		return n
	}
	return 1
}

// maxLoopback bounds how many records sinks may feed back into sources
// for one input, so that a topology feeding its own input fails instead of
// spinning.
const maxLoopback = 100_000

// PipeRaw sends one record of raw bytes to topic, as a producer would, and
// processes it (with any records it feeds back), then commits. A record
// of a global table's topic (topology.GlobalTable) updates the table's
// store at once, as the runtime's global reader does when it arrives;
// one its serdes cannot read meets the deserialization handler. A zero ts
// means the driver's wall-clock time. Use it to test bad input; typed
// input goes through InputTopic.
func (d *TestDriver) PipeRaw(topic string, key, value []byte, ts time.Time, headers processor.Headers) error {
	if d.closed {
		return errors.New("testutil: TestDriver is closed")
	}
	if ts.IsZero() {
		ts = d.wall
	}
	if err := d.process(task.RawRecord{Topic: topic, Key: key, Value: value, Timestamp: ts, Headers: headers}); err != nil {
		d.loopback = nil
		return err
	}
	if err := d.drain(); err != nil {
		return err
	}
	return d.commit()
}

func (d *TestDriver) process(rec task.RawRecord) error {
	rec.Partition = 0
	rec.Offset = d.offsets[rec.Topic]
	rec.Timestamp = rec.Timestamp.Truncate(time.Millisecond)
	if g := d.globals[rec.Topic]; g != nil {
		d.offsets[rec.Topic]++
		return d.applyGlobal(g, rec)
	}
	st := d.graph.SubTopologyFor(rec.Topic)
	if st == nil {
		return fmt.Errorf("testutil: no source of the topology reads topic %q", rec.Topic)
	}
	d.offsets[rec.Topic]++
	if d.tables[rec.Topic] {
		// A table's source topic is its changelog.
		d.pending = append(d.pending, pendingRecord{topic: rec.Topic, key: clone(rec.Key), value: clone(rec.Value)})
	}
	return d.tasks[st.ID].Process(rec)
}

func (d *TestDriver) drain() error {
	for n := 0; len(d.loopback) > 0; n++ {
		if n == maxLoopback {
			d.loopback = nil
			return fmt.Errorf("testutil: more than %d records fed back from sinks to sources for one input; does the topology feed its own input?", maxLoopback)
		}
		rec := d.loopback[0]
		d.loopback = d.loopback[1:]
		if err := d.process(rec); err != nil {
			d.loopback = nil
			return err
		}
	}
	return nil
}

// commit commits every task: the changelog records written so far join
// the driver's logs, and each task's stream time is kept as the metadata
// of its committed offsets (what Restart restores).
func (d *TestDriver) commit() error {
	for i, t := range d.tasks {
		offs, err := t.Commit()
		if err != nil {
			return err
		}
		for _, o := range offs {
			if d.committed[i] == nil {
				d.committed[i] = map[string]string{}
			}
			d.committed[i][o.Topic] = task.EncodeStreamTime(o.StreamTime)
		}
	}
	for _, p := range d.pending {
		log := d.logs[p.topic]
		d.logs[p.topic] = append(log, store.ChangelogRecord{Offset: int64(len(log)), Key: p.key, Value: p.value})
	}
	d.pending = nil
	return nil
}

// AdvanceWallClock moves the driver's wall clock forward by by, fires the
// wall-clock punctuators that became due (in every task), processes what
// they fed back, and commits.
func (d *TestDriver) AdvanceWallClock(by time.Duration) error {
	if d.closed {
		return errors.New("testutil: TestDriver is closed")
	}
	if by < 0 {
		return fmt.Errorf("testutil: cannot move the wall clock back by %v", -by)
	}
	d.wall = d.wall.Add(by)
	for _, t := range d.tasks {
		if _, err := t.Punctuate(d.wall); err != nil {
			return err
		}
		if err := d.drain(); err != nil {
			return err
		}
	}
	return d.commit()
}

// WallClock returns the driver's wall-clock time.
func (d *TestDriver) WallClock() time.Time { return d.wall }

// ReadRawOutput removes and returns the records sinks sent to topic so far.
func (d *TestDriver) ReadRawOutput(topic string) []processor.ProducedRecord {
	out := d.outputs[topic]
	delete(d.outputs, topic)
	return out
}

// OutputTopics lists the topics with unread output, sorted.
func (d *TestDriver) OutputTopics() []string {
	var ts []string
	for t, recs := range d.outputs {
		if len(recs) > 0 {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return ts
}

// Close closes every task (processors, then stores). It is safe to call
// more than once.
func (d *TestDriver) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	for _, t := range d.tasks {
		errs = append(errs, t.Close())
	}
	for _, g := range d.globals {
		errs = append(errs, g.Close())
	}
	return errors.Join(errs...)
}

func (d *TestDriver) storeTask(name string) (*task.Task, error) {
	for _, st := range d.graph.SubTopologies {
		if slices.Contains(st.Stores, name) {
			return d.tasks[st.ID], nil
		}
	}
	return nil, fmt.Errorf("testutil: the topology has no store %q", name)
}

// KeyValueStore returns the key-value store named name of the driver's
// task, for reading (or seeding) state in tests. For a global table's
// store it returns the read-only view processors get: seed it by piping
// records to the table's topic.
func KeyValueStore[K, V any](d *TestDriver, name string) (store.KeyValueStore[K, V], error) {
	var s any
	if spec := d.graph.Stores[name]; spec != nil && spec.Global {
		// A global table's store, as processors see it: read-only (its
		// topic writes it: pipe records to the topic).
		if g := d.globals[spec.SourceTopic]; g != nil {
			s = g.View
		}
	} else {
		t, err := d.storeTask(name)
		if err != nil {
			return nil, err
		}
		if s, err = t.Store(name); err != nil {
			return nil, err
		}
	}
	kv, ok := s.(store.KeyValueStore[K, V])
	if !ok {
		return nil, &processor.StoreTypeError{Store: name, Want: reflect.TypeFor[store.KeyValueStore[K, V]]().String(), Got: fmt.Sprintf("%T", s)}
	}
	return kv, nil
}

// SessionStore returns the session store named name of the driver's
// task (the store of a session aggregation, for example), for reading
// state in tests.
func SessionStore[K, V any](d *TestDriver, name string) (store.SessionStore[K, V], error) {
	t, err := d.storeTask(name)
	if err != nil {
		return nil, err
	}
	s, err := t.Store(name)
	if err != nil {
		return nil, err
	}
	ss, ok := s.(store.SessionStore[K, V])
	if !ok {
		return nil, &processor.StoreTypeError{Store: name, Want: reflect.TypeFor[store.SessionStore[K, V]]().String(), Got: fmt.Sprintf("%T", s)}
	}
	return ss, nil
}

// InputTopic pipes typed records into a TestDriver through real serdes.
type InputTopic[K, V any] struct {
	d      *TestDriver
	topic  string
	keys   serde.Serde[K]
	values serde.Serde[V]
}

// NewInputTopic returns an input for topic that serializes with keys and
// values, as the application's producers would.
func NewInputTopic[K, V any](d *TestDriver, topic string, keys serde.Serde[K], values serde.Serde[V]) *InputTopic[K, V] {
	return &InputTopic[K, V]{d: d, topic: topic, keys: keys, values: values}
}

// Pipe serializes and processes one record with timestamp ts (zero: the
// driver's wall-clock time) and optional headers.
func (in *InputTopic[K, V]) Pipe(key K, value V, ts time.Time, headers ...processor.Header) error {
	return in.PipeRecord(processor.Record[K, V]{Key: key, Value: value, Timestamp: ts, Headers: headers})
}

// PipeRecord serializes and processes r.
func (in *InputTopic[K, V]) PipeRecord(r processor.Record[K, V]) error {
	kb, err := in.keys.Serialize(in.topic, r.Key)
	if err != nil {
		return fmt.Errorf("testutil: serialize key for topic %q: %w", in.topic, err)
	}
	vb, err := in.values.Serialize(in.topic, r.Value)
	if err != nil {
		return fmt.Errorf("testutil: serialize value for topic %q: %w", in.topic, err)
	}
	return in.d.PipeRaw(in.topic, kb, vb, r.Timestamp, r.Headers)
}

// OutputTopic reads typed records that sinks sent to a topic.
type OutputTopic[K, V any] struct {
	d      *TestDriver
	topic  string
	keys   serde.Serde[K]
	values serde.Serde[V]
}

// NewOutputTopic returns a reader of topic that deserializes with keys and
// values, as the application's consumers would.
func NewOutputTopic[K, V any](d *TestDriver, topic string, keys serde.Serde[K], values serde.Serde[V]) *OutputTopic[K, V] {
	return &OutputTopic[K, V]{d: d, topic: topic, keys: keys, values: values}
}

// ErrNoRecord is returned by ReadRecord when the topic has no unread
// record.
var ErrNoRecord = errors.New("testutil: no unread record")

// Len is the number of unread records.
func (o *OutputTopic[K, V]) Len() int { return len(o.d.outputs[o.topic]) }

// ReadRecord removes and returns the oldest unread record, or ErrNoRecord.
func (o *OutputTopic[K, V]) ReadRecord() (processor.Record[K, V], error) {
	recs := o.d.outputs[o.topic]
	if len(recs) == 0 {
		return processor.Record[K, V]{}, ErrNoRecord
	}
	o.d.outputs[o.topic] = recs[1:]
	return o.decode(recs[0])
}

// ReadRecords removes and returns every unread record.
func (o *OutputTopic[K, V]) ReadRecords() ([]processor.Record[K, V], error) {
	recs := o.d.ReadRawOutput(o.topic)
	out := make([]processor.Record[K, V], 0, len(recs))
	for _, r := range recs {
		x, err := o.decode(r)
		if err != nil {
			return out, err
		}
		out = append(out, x)
	}
	return out, nil
}

func (o *OutputTopic[K, V]) decode(r processor.ProducedRecord) (processor.Record[K, V], error) {
	k, err := o.keys.Deserialize(o.topic, r.Key)
	if err != nil {
		return processor.Record[K, V]{}, fmt.Errorf("testutil: deserialize key from topic %q: %w", o.topic, err)
	}
	v, err := o.values.Deserialize(o.topic, r.Value)
	if err != nil {
		return processor.Record[K, V]{}, fmt.Errorf("testutil: deserialize value from topic %q: %w", o.topic, err)
	}
	return processor.Record[K, V]{Key: k, Value: v, Timestamp: r.Timestamp, Headers: r.Headers}, nil
}
