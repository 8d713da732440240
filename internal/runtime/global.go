// global.go: the instance's global tables (topology.GlobalTable). Each
// global store holds every partition of its topic, which is its
// changelog. Run restores them all before the group is joined (so before
// any task processes a record), then one reader goroutine, owned and
// awaited by Run, keeps them current; tasks read them through read-only
// views, queries through the typed stores.

package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/store/leveldb"
)

// GlobalTask is the TaskID under which queries read a global store: it
// belongs to no sub-topology.
var GlobalTask = assign.TaskID{Group: task.GlobalSubTopology, Partition: -1}

// globalRestoreBatch is the number of records per engine batch.
const globalRestoreBatch = 10_000

// globalStores are the instance's open global stores. The reader
// goroutine writes them; tasks and queries read them.
type globalStores struct {
	dir    string // <StateDir>/<ApplicationID>/global, holding the checkpoint
	tables []*globalTable

	mu     sync.RWMutex // guards ready, closed, iters
	ready  bool
	closed bool
	iters  map[uint64]func()
	next   uint64
}

// globalTable is one global store and its reading position.
type globalTable struct {
	g     *task.Global
	topic string
	parts []int32
	// pos is the next offset to read per partition; only the goroutine
	// that restores and then reads the table touches it.
	pos map[int32]int64
}

// hasGlobals reports whether the topology declares global tables.
func (r *Runtime) hasGlobals() bool {
	for _, s := range r.cfg.Graph.Stores {
		if s.Global {
			return true
		}
	}
	return false
}

// globalSpecs returns the global stores' specs, by name.
func (r *Runtime) globalSpecs() []*task.StoreSpec {
	var out []*task.StoreSpec
	for _, s := range r.cfg.Graph.Stores {
		if s.Global {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *task.StoreSpec) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// globalViews returns the read-only views tasks get (task.Config.Globals).
func (r *Runtime) globalViews() map[string]any {
	if r.globals == nil {
		return nil
	}
	out := make(map[string]any, len(r.globals.tables))
	for _, t := range r.globals.tables {
		out[t.g.Spec.Name] = t.g.View
	}
	return out
}

// restoreGlobals opens every global store and reads its topic up to the
// end offsets taken now (the last stable offsets under exactly-once): from
// the checkpointed offsets when the local store has them, else from the
// beginning after wiping it. It writes the checkpoint and publishes the
// stores for queries. On error what it opened is closed.
func (r *Runtime) restoreGlobals(ctx context.Context) (err error) {
	gs := &globalStores{dir: filepath.Join(r.cfg.StateDir, r.cfg.ApplicationID, "global"), iters: map[uint64]func(){}}
	if err := r.ensureDir(gs.dir); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			for _, t := range gs.tables {
				err = errors.Join(err, t.g.Close())
			}
		}
	}()
	checkpoint, err := store.ReadCheckpoint(gs.dir)
	if err != nil {
		var ce *store.CheckpointError
		if !errors.As(err, &ce) {
			return fmt.Errorf("brook: global tables: %w", err)
		}
		r.log.Warn("brook: global tables' checkpoint cannot be trusted; they restore from the beginning", "action", "nothing: the tables are rebuilt from their topics; if this recurs, check the state directory's disk", "err", err)
		checkpoint = map[store.TopicPartition]int64{}
	}
	// The checkpoint describes data the restore is about to change.
	if err := store.RemoveCheckpoint(gs.dir); err != nil {
		return fmt.Errorf("brook: global tables: %w", err)
	}
	for _, spec := range r.globalSpecs() {
		t, err := r.restoreGlobal(ctx, gs.dir, spec, checkpoint)
		if err != nil {
			return err
		}
		gs.tables = append(gs.tables, t)
	}
	if err := gs.checkpoint(); err != nil {
		return err
	}
	r.globals = gs
	gs.mu.Lock()
	gs.ready = true
	gs.mu.Unlock()
	q := &r.queries
	q.mu.Lock()
	for k := range q.restoring {
		if spec := r.cfg.Graph.Stores[k.store]; spec != nil && spec.Global {
			delete(q.restoring, k)
		}
	}
	q.mu.Unlock()
	return nil
}

// restoreGlobal opens and restores one global store.
func (r *Runtime) restoreGlobal(ctx context.Context, dir string, spec *task.StoreSpec, checkpoint map[store.TopicPartition]int64) (*globalTable, error) {
	fail := func(err error) error {
		return fmt.Errorf("brook: global table %q (topic %s): %w", spec.Name, spec.SourceTopic, err)
	}
	parts, err := r.client.Partitions(spec.SourceTopic)
	if err != nil {
		return nil, fail(fmt.Errorf("partitions: %w", err))
	}
	iso := r.cfg.Sarama.Consumer.IsolationLevel
	type bounds struct {
		reader     *changelog.Reader
		begin, end int64
	}
	b := make(map[int32]bounds, len(parts))
	var opener store.Opener = store.MemoryOpener()
	if !spec.InMemory {
		opener = leveldb.Opener(filepath.Join(dir, spec.Name), r.cfg.LevelDB)
	}
	reason := ""
	if !opener.Persistent() {
		reason = "engine is not persistent"
	}
	for _, p := range parts {
		rd := changelog.NewReader(r.client, spec.SourceTopic, p, iso)
		begin, err := rd.BeginOffset(ctx)
		if err != nil {
			return nil, fail(err)
		}
		end, err := rd.EndOffset(ctx)
		if err != nil {
			return nil, fail(err)
		}
		b[p] = bounds{rd, begin, end}
		tp := store.TopicPartition{Topic: spec.SourceTopic, Partition: p}
		cp, has := checkpoint[tp]
		switch {
		case reason != "":
		case !has:
			reason = fmt.Sprintf("no checkpoint for %s", tp)
		case cp > end:
			reason = fmt.Sprintf("checkpoint %d of %s is beyond its end offset %d", cp, tp, end)
		case cp < begin:
			reason = fmt.Sprintf("checkpoint %d of %s is below its start offset %d", cp, tp, begin)
		}
	}
	// fresh: no local copy and no checkpoint, as on a first start on
	// this machine: normal, logged at info level.
	fresh := false
	if lc, ok := opener.(store.LocalDataChecker); ok {
		has, err := lc.HasLocalData()
		if err != nil {
			return nil, fail(err)
		}
		switch {
		case !has && reason == "":
			reason = "checkpoint but no local data in " + opener.String()
		case !has && len(checkpoint) == 0:
			fresh = true
		}
	}
	if reason != "" {
		switch {
		case !opener.Persistent():
		case fresh:
			r.log.Info("brook: global table: no local state; restoring from its topic", "store", spec.Name)
		default:
			r.log.Warn("brook: global table: local state cannot be trusted; wiping it and restoring from its topic",
				"action", "nothing: it is rebuilt; if this follows every clean stop, check that the state directory is kept between runs",
				"store", spec.Name, "reason", reason)
		}
		if err := opener.Wipe(); err != nil {
			return nil, fail(err)
		}
	}
	e, err := opener.Open()
	var ce *store.CorruptionError
	if errors.As(err, &ce) && reason == "" {
		r.log.Warn("brook: global table: local state is corrupt; wiping it and restoring from its topic",
			"action", "nothing: it is rebuilt; if it recurs, check the disk", "store", spec.Name, "reason", "engine failed to open: "+err.Error())
		if err := opener.Wipe(); err != nil {
			return nil, fail(err)
		}
		reason = "engine failed to open"
		e, err = opener.Open()
	}
	if err != nil {
		return nil, fail(err)
	}
	g, err := task.OpenGlobal(spec, e)
	if err != nil {
		return nil, errors.Join(fail(err), e.Close())
	}
	t := &globalTable{g: g, topic: spec.SourceTopic, parts: parts, pos: map[int32]int64{}}
	var restored int64
	for _, p := range parts {
		bp := b[p]
		start := bp.begin
		if reason == "" {
			start = checkpoint[store.TopicPartition{Topic: spec.SourceTopic, Partition: p}]
		}
		n, err := r.restoreGlobalPartition(ctx, t, p, bp.reader, start, bp.end)
		restored += n
		if err != nil {
			return nil, errors.Join(fail(err), g.Close())
		}
		t.pos[p] = bp.end
	}
	if err := e.Flush(); err != nil {
		return nil, errors.Join(fail(err), g.Close())
	}
	r.log.Info("brook: global table restored", "store", spec.Name, "topic", spec.SourceTopic, "partitions", len(parts), "records", restored, "wiped", reason != "")
	r.mu.Lock()
	r.globalRestored += restored
	r.mu.Unlock()
	return t, nil
}

// restoreGlobalPartition applies the records of one partition in
// [start, end) to the table's store, reporting progress.
func (r *Runtime) restoreGlobalPartition(ctx context.Context, t *globalTable, p int32, rd *changelog.Reader, start, end int64) (int64, error) {
	var n int64
	rm := r.meter.Restore(metrics.GlobalTask, t.g.Spec.Name, p)
	rm.Begin(time.Now())
	progress := func(next int64) {
		rm.Progress(time.Now(), n, end-next)
		if r.cfg.OnRestore != nil {
			r.cfg.OnRestore(store.RestoreProgress{Store: t.g.Spec.Name, Partition: p, Restored: next - start, Total: end - start, Records: n})
		}
	}
	progress(start)
	if start >= end {
		return 0, nil
	}
	batch := t.g.Engine.NewBatch()
	next := start
	err := rd.Read(ctx, start, end, func(recs []store.ChangelogRecord) error {
		for i := range recs {
			c := &recs[i]
			if c.Offset < next || c.Offset >= end {
				continue
			}
			rec := task.RawRecord{Topic: t.topic, Partition: p, Offset: c.Offset, Key: c.Key, Value: c.Value, Timestamp: c.Timestamp}
			for _, h := range c.Headers {
				rec.Headers = append(rec.Headers, processor.Header{Key: string(h.Key), Value: h.Value})
			}
			if err := t.g.Add(ctx, batch, rec, r.cfg.Graph.Handlers, r.log); err != nil {
				return err
			}
			n++
			next = c.Offset + 1
			if batch.Len() >= globalRestoreBatch {
				if err := batch.Write(); err != nil {
					return err
				}
				batch.Reset()
				progress(next)
			}
		}
		return ctx.Err()
	})
	if err == nil && batch.Len() > 0 {
		err = batch.Write()
	}
	if err != nil {
		return n, err
	}
	progress(end)
	return n, nil
}

// checkpoint writes the reading positions of every global table. The
// caller has flushed the engines.
func (gs *globalStores) checkpoint() error {
	offs := map[store.TopicPartition]int64{}
	for _, t := range gs.tables {
		if !t.g.Spec.InMemory {
			for p, o := range t.pos {
				offs[store.TopicPartition{Topic: t.topic, Partition: p}] = o
			}
		}
	}
	if len(offs) == 0 {
		return nil
	}
	if err := store.WriteCheckpoint(gs.dir, offs); err != nil {
		return fmt.Errorf("brook: global tables: %w", err)
	}
	return nil
}

// flushAndCheckpoint makes the stores durable, then checkpoints their
// positions.
func (gs *globalStores) flushAndCheckpoint() error {
	for _, t := range gs.tables {
		if err := t.g.Engine.Flush(); err != nil {
			return fmt.Errorf("brook: global table %q: flush: %w", t.g.Spec.Name, err)
		}
	}
	return gs.checkpoint()
}

// globalMessage is one record the global reader consumed.
type globalMessage struct {
	t   *globalTable
	msg *sarama.ConsumerMessage
}

// runGlobalReader keeps the global stores current from the positions the
// restore reached until ctx ends; it checkpoints every CommitInterval and
// when it stops. A record the deserialization handler does not drop, a
// store that cannot be written and a partition consumer that cannot go on
// stop the application (the error is returned; the caller fails the
// runtime with it).
func (r *Runtime) runGlobalReader(ctx context.Context, base *sarama.Config) (err error) {
	gs := r.globals
	cfg := *base
	cfg.Consumer.Return.Errors = true
	consumer, err := sarama.NewConsumer(r.cfg.Brokers, &cfg)
	if err != nil {
		return fmt.Errorf("brook: global tables: consumer: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		err = errors.Join(err, consumer.Close())
		if cerr := gs.flushAndCheckpoint(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	msgs := make(chan globalMessage, 256)
	failed := make(chan error, 1)
	report := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	for _, t := range gs.tables {
		for _, p := range t.parts {
			pc, err := consumer.ConsumePartition(t.topic, p, t.pos[p])
			if err != nil {
				return fmt.Errorf("brook: global table %q: consume %s[%d] from %d: %w", t.g.Spec.Name, t.topic, p, t.pos[p], err)
			}
			wg.Add(1)
			go func() { // owned by runGlobalReader: forwards one partition's records
				defer wg.Done()
				defer pc.AsyncClose()
				for {
					select {
					case <-ctx.Done():
						return
					case m := <-pc.Messages():
						select {
						case msgs <- globalMessage{t: t, msg: m}:
						case <-ctx.Done():
							return
						}
					case e := <-pc.Errors():
						if errors.Is(e.Err, sarama.ErrOffsetOutOfRange) {
							report(fmt.Errorf("brook: global table %q: %s[%d]: the next offset to read is no longer in the topic (records were deleted before they were read): %w",
								t.g.Spec.Name, t.topic, p, e.Err))
							return
						}
						r.log.Warn("brook: global table reader", "action", "the reader retries; if this persists, check the brokers and the topic's ACLs", "store", t.g.Spec.Name, "topic", t.topic, "partition", p, "err", e.Err)
					}
				}
			}()
		}
	}
	tick := time.NewTicker(r.cfg.CommitInterval)
	defer tick.Stop()
	batches := map[*globalTable]store.Batch{}
	apply := func(gm globalMessage) error {
		t, m := gm.t, gm.msg
		b := batches[t]
		if b == nil {
			b = t.g.Engine.NewBatch()
			batches[t] = b
		}
		rec := task.RawRecord{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Timestamp: m.Timestamp}
		for _, h := range m.Headers {
			if h != nil {
				rec.Headers = append(rec.Headers, processor.Header{Key: string(h.Key), Value: h.Value})
			}
		}
		if err := t.g.Add(ctx, b, rec, r.cfg.Graph.Handlers, r.log); err != nil {
			return err
		}
		t.pos[m.Partition] = m.Offset + 1
		return nil
	}
	write := func() error {
		for t, b := range batches {
			if b.Len() > 0 {
				if err := b.Write(); err != nil {
					return fmt.Errorf("brook: global table %q: write: %w", t.g.Spec.Name, err)
				}
				b.Reset()
			}
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case <-tick.C:
			if err := gs.flushAndCheckpoint(); err != nil {
				return err
			}
		case gm := <-msgs:
			if err := apply(gm); err != nil {
				return err
			}
			// Take what else has arrived into the same batches.
		more:
			for i := 0; i < globalRestoreBatch; i++ {
				select {
				case gm := <-msgs:
					if err := apply(gm); err != nil {
						return errors.Join(err, write())
					}
				default:
					break more
				}
			}
			if err := write(); err != nil {
				return err
			}
		}
	}
}

// closeGlobals withdraws the global stores from queries (closing their
// open iterators) and closes them; the reader has stopped.
func (r *Runtime) closeGlobals() {
	gs := r.globals
	if gs == nil {
		return
	}
	gs.mu.Lock()
	gs.closed, gs.ready = true, false
	kills := iteratorKills(gs.iters)
	gs.iters = nil
	gs.mu.Unlock()
	for _, k := range kills {
		k()
	}
	for _, t := range gs.tables {
		if err := t.g.Close(); err != nil {
			r.log.Warn("brook: close global table", "action", "nothing: the next start restores what the close could not flush; check the state directory's disk if this recurs", "store", t.g.Spec.Name, "err", err)
		}
	}
}

// GlobalsReady reports whether the global stores are restored and open
// for queries.
func (r *Runtime) GlobalsReady() bool {
	gs := r.globals
	if gs == nil {
		return false
	}
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	return gs.ready
}

// globalStore returns the typed store of the global table name.
func (gs *globalStores) store(name string) (any, bool) {
	for _, t := range gs.tables {
		if t.g.Spec.Name == name {
			return t.g.Typed, true
		}
	}
	return nil, false
}

// readGlobal is ReadStore for GlobalTask.
func (r *Runtime) readGlobal(name string, fn func(st any) error) error {
	gs := r.globals
	if gs == nil {
		return r.notOpen(GlobalTask)
	}
	gs.mu.RLock()
	defer gs.mu.RUnlock()
	if !gs.ready {
		return r.notOpen(GlobalTask)
	}
	st, ok := gs.store(name)
	if !ok {
		return fmt.Errorf("brook: no global store %q", name)
	}
	return fn(st)
}

// openGlobalIterator is OpenIterator for GlobalTask.
func (r *Runtime) openGlobalIterator(name string, open func(st any) (func(), error)) (func(), error) {
	gs := r.globals
	if gs == nil {
		return nil, r.notOpen(GlobalTask)
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if !gs.ready {
		return nil, r.notOpen(GlobalTask)
	}
	st, ok := gs.store(name)
	if !ok {
		return nil, fmt.Errorf("brook: no global store %q", name)
	}
	kill, err := open(st)
	if err != nil {
		return nil, err
	}
	n := gs.next
	gs.next++
	gs.iters[n] = kill
	return func() {
		gs.mu.Lock()
		delete(gs.iters, n)
		gs.mu.Unlock()
	}, nil
}

// GlobalRestoredRecords returns how many records the global tables
// restored at start-up.
func (r *Runtime) GlobalRestoredRecords() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.globalRestored
}
