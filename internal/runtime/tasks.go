// tasks.go: the task lifecycle. A taskRun is one running task of a
// session: opening it creates its stores (the store factory), restores
// them from their changelogs and writes the first checkpoint; a record's
// scope (begin/end/rollback) holds or undoes its output; closing it closes
// the core and the transactional producer and logs what went wrong.

package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/meter"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/store/leveldb"
)

// taskRun is one running task of a session.
type taskRun struct {
	id      assign.TaskID
	dir     string
	core    *task.Task
	queue   *recordQueue
	worker  int
	engines []store.Engine
	// logged maps each store's changelog partition to the offset the
	// local data reflects (the next offset to restore); it is what the
	// checkpoint holds. tables are changelogs that are source topics:
	// their checkpoint offset is the committed consumed offset.
	logged map[store.TopicPartition]int64
	// ckptWritten is what the checkpoint file last written holds, at
	// ckptAt (nil: none written by this run of the task).
	ckptWritten map[store.TopicPartition]int64
	ckptAt      time.Time
	tables      map[store.TopicPartition]bool
	// volatile are the changelogs of in-memory stores, whose data is
	// gone once the task closes: they are no warm state to report.
	volatile map[store.TopicPartition]bool
	// coll is the task's collector (sink records, buffered changelog).
	coll *collector
	// Exactly-once (txn.go): the task's transactional producer, the
	// overlays that hold its store writes until their transaction
	// commits, and gone, closed when another instance turned out to own
	// the task.
	txn      *txnProducer
	overlays []*store.Overlay
	gone     chan struct{}
	// commits counts the task's completed commits (Cleanup compares it
	// across the final commit).
	commits int
	// meter receives the task's measurements (nil: the App measures
	// nothing); stores are its stores' engines, for their sizes.
	meter  *meter.Task
	stores map[string]storeEngine
	// parts are the task's claimed partitions, in claimOrder; cancel
	// ends the context the task was opened with (its registry waits and
	// gap probes).
	parts  []tpKey
	cancel context.CancelFunc
	// cache is the record cache of the task's key-value stores (nil:
	// none); only the task's worker touches it.
	cache *store.Cache
	// Cooperative revocation (revokeTask): revoking is closed when it
	// starts, revokeDone when the task is committed and closed.
	revokeOnce sync.Once
	revoking   chan struct{}
	revokeDone chan struct{}
}

// isRevoking reports whether a cooperative rebalance is revoking the task.
func (tr *taskRun) isRevoking() bool {
	select {
	case <-tr.revoking:
		return true
	default:
		return false
	}
}

// storeEngine is one store of a task as the runtime opened it: its engine
// (an overlay over LevelDB, or the in-memory engine) and, for a LevelDB
// store, its folder.
type storeEngine struct {
	engine store.Engine
	dir    string
}

// maxPendingWrites bounds the store writes a task holds in memory
// (overlays) before it commits early.
const maxPendingWrites = 100_000

// begin opens the scope of one record (or punctuation): its sink records
// are held, and its changelog and store writes can be undone, until end or
// rollback.
func (tr *taskRun) begin() {
	tr.coll.begin()
	for _, o := range tr.overlays {
		o.Mark()
	}
}

// end closes a record's scope after it succeeded: its sink records go to
// the producer.
func (tr *taskRun) end() error {
	if err := tr.coll.release(); err != nil {
		return fmt.Errorf("brook: task %s: %w", tr.id, err)
	}
	return nil
}

// rollback closes a record's scope after it failed: its sink records are
// dropped and its changelog and store writes undone, so the task holds
// exactly the work of the records before it, which can be committed. (An
// in-memory store that is not wrapped in an overlay keeps the failed
// record's writes, but the task is closed before it processes anything
// else.)
func (tr *taskRun) rollback() {
	tr.coll.rollback()
	for _, o := range tr.overlays {
		o.RollbackToMark()
	}
}

// pendingWrites is the number of keys written since the last commit.
func (tr *taskRun) pendingWrites() int {
	n := 0
	for _, o := range tr.overlays {
		n += o.Pending()
	}
	return n
}

// openTask restores the stores of task id and creates its core, which
// resumes from streamTime (zero: unknown).
func (h *handler) openTask(ctx context.Context, id assign.TaskID, worker int, streamTime time.Time) (*taskRun, error) {
	r := h.r
	tr := &taskRun{
		id: id, dir: r.taskDir(id), worker: worker,
		logged: map[store.TopicPartition]int64{}, tables: map[store.TopicPartition]bool{},
		volatile: map[store.TopicPartition]bool{},
		gone:     make(chan struct{}), meter: r.meter.Task(id.String()), stores: map[string]storeEngine{},
		revoking: make(chan struct{}), revokeDone: make(chan struct{}), cancel: func() {},
	}
	tr.meter.Restoring()
	defer func() {
		if tr.core == nil {
			tr.meter.Closed()
		}
	}()
	if err := r.ensureDir(tr.dir); err != nil {
		return nil, err
	}
	coll := &collector{r: r, task: id.String()}
	if r.cfg.ExactlyOnce {
		// Before the restore: registering the task's transactional id
		// fences older owners and aborts what they left open (done
		// already, for a task that arrived in this generation, when the
		// assignment came: handler.assigned).
		txn := h.takeFenced(id)
		if txn == nil {
			var err error
			if txn, err = r.newTxnProducer(id); err != nil {
				return nil, err
			}
		}
		txn.meter = tr.meter
		tr.txn = txn
		coll.txn = txn
		defer func() {
			if tr.core == nil {
				txn.close(r.log)
			}
		}()
	}
	tr.coll = coll
	if n := r.cacheBytesPerTask(); n > 0 {
		tr.cache = store.NewCache(n)
	}
	signal := h.signals[worker]
	tr.queue = newRecordQueue(r.cfg.MaxBuffered, func() {
		select {
		case signal <- struct{}{}:
		default:
		}
	})
	tr.queue.maxIdle = r.cfg.MaxTaskIdle
	tr.queue.probe = r.gapProber(ctx, id, tr.queue)

	checkpoint, err := store.ReadCheckpoint(tr.dir)
	if err != nil {
		var ce *store.CheckpointError
		if !errors.As(err, &ce) {
			return nil, fmt.Errorf("brook: task %s: %w", id, err)
		}
		r.log.Warn("brook: checkpoint cannot be trusted; stores restore from the beginning", "action", "nothing: the stores are rebuilt from their changelogs; if this recurs, check the state directory's disk", "task", id.String(), "err", err)
		checkpoint = map[store.TopicPartition]int64{}
	}
	// The checkpoint describes data that restore is about to change: remove
	// it so a crash mid-restore cannot leave it describing lost data.
	if err := store.RemoveCheckpoint(tr.dir); err != nil {
		return nil, fmt.Errorf("brook: task %s: %w", id, err)
	}
	var restoredTotal int64
	factory := func(pid processor.TaskID, spec *task.StoreSpec) (store.Engine, []store.Option, error) {
		var opener store.Opener
		dir := ""
		if spec.InMemory {
			opener = store.MemoryOpener()
		} else {
			dir = filepath.Join(tr.dir, spec.Name)
			r.mu.Lock()
			sb := r.standbys
			r.mu.Unlock()
			opener = timedOpener{Opener: parkedOpener{Opener: leveldb.Opener(dir, r.cfg.LevelDB), dir: dir, sb: sb},
				log: r.log, task: id.String(), store: spec.Name}
		}
		if !spec.Logged && spec.SourceTopic == "" {
			e, err := opener.Open()
			if err == nil && opener.Persistent() {
				o := store.NewOverlay(e)
				tr.overlays = append(tr.overlays, o)
				e = o
			}
			if err == nil {
				tr.stores[spec.Name] = storeEngine{engine: e, dir: dir}
			}
			return e, tr.storeOptions(nil), err
		}
		tp := store.TopicPartition{Topic: store.ChangelogTopic(r.cfg.ApplicationID, spec.Name), Partition: id.Partition}
		if spec.SourceTopic != "" {
			tp.Topic = spec.SourceTopic
			tr.tables[tp] = true
		}
		var reader store.ChangelogReader = changelog.NewReader(r.client, tp.Topic, tp.Partition, r.cfg.Sarama.Consumer.IsolationLevel)
		if spec.SourceTopic != "" {
			// A table restores only up to the group's committed offset of
			// its source partition, as Kafka Streams does: the records
			// after it are processed again, in timestamp order with the
			// task's other sources, so a re-processed record sees the
			// table as it was the first time, never a later value.
			committed, err := r.committedOffsets(ctx, []store.TopicPartition{tp})
			if err != nil {
				// Wrapped by task.New: "task: <id>: open store <name>: ...".
				return nil, nil, fmt.Errorf("restore table: committed offset of %s: %w", tp, err)
			}
			reader = restoreUpTo{ChangelogReader: reader, end: max(committed[tp], 0)}
		}
		cp, has := checkpoint[tp]
		rm := r.meter.Restore(id.String(), spec.Name, id.Partition)
		rm.Begin(time.Now())
		res, err := store.Restore(ctx, store.RestoreConfig{
			Store: spec.Name, Changelog: tp, Opener: opener, Apply: spec.Apply,
			Reader:     reader,
			Checkpoint: cp, HasCheckpoint: has,
			Progress: func(p store.RestoreProgress) {
				rm.Progress(time.Now(), p.Records, p.Total-p.Restored)
				r.cfg.OnRestore(p)
			},
			Logger: r.log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("restore from %s: %w", tp, err)
		}
		restoredTotal += res.Records
		tr.logged[tp] = res.Offset
		if !opener.Persistent() {
			tr.volatile[tp] = true
		}
		tr.engines = append(tr.engines, res.Engine)
		opts := []store.Option{store.WithSerdeTopic(spec.SerdeTopic(r.cfg.ApplicationID))}
		if spec.Logged && spec.SourceTopic == "" {
			opts = append(opts, store.WithChangelog(tp.Topic, tp.Partition, coll))
		}
		if opener.Persistent() {
			// Writes reach the engine at commit, in one batch: under
			// exactly-once only once their transaction commits
			// (commitTaskEOS); under at-least-once after the producer
			// flush, as the commit protocol's "flush stores" step.
			o := store.NewOverlay(res.Engine)
			tr.overlays = append(tr.overlays, o)
			tr.stores[spec.Name] = storeEngine{engine: o, dir: dir}
			return o, tr.storeOptions(opts), nil
		}
		tr.stores[spec.Name] = storeEngine{engine: res.Engine}
		return res.Engine, tr.storeOptions(opts), nil
	}
	core, err := task.New(task.Config{
		ID: toProcessorTaskID(id), Graph: r.cfg.Graph, Stores: factory,
		Collector: coll, Logger: r.log, WallClock: r.cfg.Clock(), StreamTime: streamTime, Globals: r.globalViews(),
		Context:       ctx, // ends source waits for the registry at rebalance or shutdown
		ApplicationID: r.cfg.ApplicationID, LineageHeaders: r.cfg.LineageHeaders,
		Meter: tr.meter,
	})
	if err != nil {
		return nil, taskError(id, "", err)
	}
	if len(tr.logged) > 0 {
		// The restored stores are flushed and hold exactly the changelog
		// below tr.logged (store writes reach them only at a commit, after
		// their changelog records are acknowledged, under both
		// guarantees): checkpoint that at once, so that a crash or an
		// interrupted set-up before the first commit restores only the
		// tail, not everything from offset 0.
		if err := tr.checkpoint(false); err != nil {
			return nil, errors.Join(err, core.Close())
		}
	}
	tr.core = core
	if !streamTime.IsZero() {
		r.log.Debug("brook: task resumes from its committed stream time", "task", id.String(), "stream_time", streamTime)
	}
	r.mu.Lock()
	r.restoredRecords[id] = restoredTotal
	r.restored[id] = tr.offsetsByTopic()
	r.mu.Unlock()
	return tr, nil
}

// timedOpener logs an engine open that takes more than slowOpen
// (LevelDB replays its journal when it opens: up to its write buffer of
// writes a copy or a previous owner left unflushed).
type timedOpener struct {
	store.Opener
	log         *slog.Logger
	task, store string
}

// slowOpen is the open time past which timedOpener logs.
const slowOpen = 500 * time.Millisecond

// Open implements store.Opener.
func (o timedOpener) Open() (store.Engine, error) {
	began := time.Now()
	e, err := o.Opener.Open()
	if took := time.Since(began); took > slowOpen {
		o.log.Info("brook: store open was slow", "task", o.task, "store", o.store, "took", took.Round(time.Millisecond).String(), "engine", o.Opener.String())
	}
	return e, err
}

// HasLocalData implements store.LocalDataChecker for the wrapped opener
// (restore tells "no local state" from "state it cannot trust" by it).
func (o timedOpener) HasLocalData() (bool, error) { return hasLocalData(o.Opener) }

// hasLocalData asks o whether its engine's data exists; an opener that
// cannot tell counts as having some.
func hasLocalData(o store.Opener) (bool, error) {
	if lc, ok := o.(store.LocalDataChecker); ok {
		return lc.HasLocalData()
	}
	return true, nil
}

// storeOptions adds the task's record cache to a store's options.
func (tr *taskRun) storeOptions(opts []store.Option) []store.Option {
	if tr.cache == nil {
		return opts
	}
	return append(opts, store.WithCache(tr.cache))
}

// cacheBytesPerTask is the record-cache bound of a task opening now:
// Config.CacheMaxBytes shared evenly by the active tasks of the current
// assignment (at least one), or 0 when caching is off.
func (r *Runtime) cacheBytesPerTask() int64 {
	total := r.cfg.CacheMaxBytes
	if total == 0 {
		total = DefaultCacheMaxBytes
	}
	if total < 0 {
		return 0
	}
	n := int64(1)
	if a, ok := r.strategy.Local(); ok && len(a.Tasks) > 1 {
		n = int64(len(a.Tasks))
	}
	return total / n
}

// DefaultCacheMaxBytes is Config.CacheMaxBytes when it is 0: 10 MiB, as
// Kafka Streams' statestore.cache.max.bytes.
const DefaultCacheMaxBytes = 10 << 20

// taskError wraps err, an error of task id, for Run: "brook: task 0_1:
// <what>: ...". An error the task package made already starts with
// "task: 0_1: " (docs/DESIGN.md, "Errors and bad input"), so it gets only
// "brook: <what>: " in front, never the task a second time.
func taskError(id assign.TaskID, what string, err error) error {
	if what != "" {
		what += ": "
	}
	if strings.HasPrefix(err.Error(), "task: "+id.String()+": ") {
		return fmt.Errorf("brook: %s%w", what, err)
	}
	return fmt.Errorf("brook: task %s: %s%w", id, what, err)
}

// restoreUpTo is a ChangelogReader whose end offset is at most end: a
// table's restore stops at the committed offset of its source partition.
type restoreUpTo struct {
	store.ChangelogReader
	end int64
}

// EndOffset implements store.ChangelogReader.
func (r restoreUpTo) EndOffset(ctx context.Context) (int64, error) {
	end, err := r.ChangelogReader.EndOffset(ctx)
	if err != nil {
		return 0, err
	}
	return min(end, r.end), nil
}

// offsetsByTopic returns the restored offsets the assignor reports as
// this task's warm state: those of its persistent stores only, since an
// in-memory store's data does not outlive the task (and under the eager
// protocol every task is closed when the member rejoins).
func (tr *taskRun) offsetsByTopic() map[string]int64 {
	out := map[string]int64{}
	for tp, o := range tr.logged {
		if !tr.volatile[tp] {
			out[tp.Topic] = o
		}
	}
	return out
}

func (h *handler) closeTasks(checkpointed bool) {
	h.r.unpublishTasks() // before closing: queries must let go of the stores
	h.mu.Lock()
	tasks := h.tasks
	h.tasks = nil
	h.byTP = nil
	h.mu.Unlock()
	h.r.forgetFailures(tasks)
	for _, tr := range tasks {
		h.releaseTask(tr)
	}
}

// closeTask closes one task (a cooperative revocation): queries let go
// of it first.
func (h *handler) closeTask(tr *taskRun) {
	h.r.unpublishTask(tr.id)
	h.r.forgetFailures(map[assign.TaskID]*taskRun{tr.id: tr})
	h.releaseTask(tr)
}

// releaseTask closes a task's core and transactional producer.
func (h *handler) releaseTask(tr *taskRun) {
	tr.meter.Closed()
	if tr.core != nil {
		h.r.logCloseError(tr.id, tr.core.Close())
	}
	if tr.txn != nil {
		// Aborts what was not committed (the overlays died with
		// the core).
		tr.txn.close(h.r.log)
	}
	tr.cancel()
}

// logCloseError logs what went wrong closing a task. A store closed under
// leaked iterators (a processor did not close them) is logged at error
// level with the task and the store: the store is closed anyway, so the
// task can reopen, but the processor has a bug.
func (r *Runtime) logCloseError(id assign.TaskID, err error) {
	for _, e := range flattenJoined(err) {
		var sce *task.StoreCloseError
		var oie *store.OpenIteratorsError
		switch {
		case errors.As(e, &sce) && errors.As(e, &oie):
			r.log.Error("brook: store closed with iterators still open: a processor leaked them (every iterator must be closed); the store was closed anyway",
				"task", id.String(), "store", sce.Store, "open", oie.Open, "err", e)
		case errors.As(e, &sce):
			r.log.Warn("brook: close store", "action", "nothing: the next owner restores what the close could not flush; check the state directory's disk if this recurs", "task", id.String(), "store", sce.Store, "err", e)
		default:
			r.log.Warn("brook: close task", "action", "nothing: the next owner restores the task from its changelogs", "task", id.String(), "err", e)
		}
	}
}

// flattenJoined returns the errors that errors.Join put together in err
// (recursively), or err itself; nil gives nothing.
func flattenJoined(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flattenJoined(e)...)
	}
	return out
}
