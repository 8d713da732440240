package runtime

import (
	"context"
	"errors"
	"fmt"
	"github.com/brookstream/brook/store/leveldb"
	"path/filepath"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/store"
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
	tables map[store.TopicPartition]bool
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

// handler is the sarama.ConsumerGroupHandler of a runtime. One session
// lives per group generation.
type handler struct {
	r *Runtime

	mu      sync.Mutex
	tasks   map[assign.TaskID]*taskRun
	byTP    map[tpKey]*taskRun
	stop    chan struct{}
	wg      sync.WaitGroup
	signals []chan struct{}
}

// Setup creates and restores the session's tasks and starts the workers.
func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	r := h.r
	ids, err := r.strategy.Tasks(sess.Claims())
	if err != nil {
		r.fail(fmt.Errorf("brook: assignment: %w", err))
		return err
	}
	if a, ok := r.strategy.Assignment(); ok && r.cfg.OnAssignment != nil {
		r.cfg.OnAssignment(a)
	}
	h.tasks = map[assign.TaskID]*taskRun{}
	h.byTP = map[tpKey]*taskRun{}
	h.stop = make(chan struct{})
	h.signals = make([]chan struct{}, r.cfg.Workers)
	for i := range h.signals {
		h.signals[i] = make(chan struct{}, 1)
	}
	r.setState(Restoring)
	for i, id := range ids {
		tr, err := h.openTask(sess.Context(), id, i%r.cfg.Workers)
		if err != nil {
			h.closeTasks(false)
			if sess.Context().Err() != nil {
				// A rebalance or shutdown interrupted the restore: not an
				// error, the next generation starts over.
				r.log.Info("brook: restore interrupted by rebalance or shutdown", "task", id.String())
				h.tasks = map[assign.TaskID]*taskRun{}
				h.byTP = map[tpKey]*taskRun{}
				return nil
			}
			r.fail(err)
			return err
		}
		h.tasks[id] = tr
		r.publishTask(tr)
	}
	for topic, parts := range sess.Claims() {
		for _, p := range parts {
			id, _ := r.strategy.TaskOf(topic, p)
			if tr := h.tasks[id]; tr != nil {
				h.byTP[tpKey{topic, p}] = tr
				tr.queue.addPartition(topic, p)
			}
		}
	}
	r.setState(Running)
	for w := 0; w < r.cfg.Workers; w++ {
		var mine []*taskRun
		for _, id := range ids {
			if tr := h.tasks[id]; tr.worker == w {
				mine = append(mine, tr)
			}
		}
		h.wg.Add(1)
		go h.work(sess, w, mine)
	}
	return nil
}

// openTask restores the stores of task id and creates its core.
func (h *handler) openTask(ctx context.Context, id assign.TaskID, worker int) (*taskRun, error) {
	r := h.r
	tr := &taskRun{
		id: id, dir: r.taskDir(id), worker: worker,
		logged: map[store.TopicPartition]int64{}, tables: map[store.TopicPartition]bool{},
		gone: make(chan struct{}),
	}
	if err := r.ensureDir(tr.dir); err != nil {
		return nil, err
	}
	coll := &collector{r: r, task: id.String()}
	if r.cfg.ExactlyOnce {
		// Before the restore: registering the task's transactional id
		// fences older owners and aborts what they left open.
		txn, err := r.newTxnProducer(id)
		if err != nil {
			return nil, err
		}
		tr.txn = txn
		coll.txn = txn
		defer func() {
			if tr.core == nil {
				txn.close(r.log)
			}
		}()
	}
	tr.coll = coll
	signal := h.signals[worker]
	tr.queue = newRecordQueue(r.cfg.MaxBuffered, func() {
		select {
		case signal <- struct{}{}:
		default:
		}
	})
	checkpoint, err := store.ReadCheckpoint(tr.dir)
	if err != nil {
		var ce *store.CheckpointError
		if !errors.As(err, &ce) {
			return nil, fmt.Errorf("brook: task %s: %w", id, err)
		}
		r.log.Warn("brook: checkpoint cannot be trusted; stores restore from the beginning", "task", id.String(), "err", err)
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
		if spec.InMemory {
			opener = store.MemoryOpener()
		} else {
			opener = leveldb.Opener(filepath.Join(tr.dir, spec.Name), r.cfg.LevelDB)
		}
		if !spec.Logged && spec.SourceTopic == "" {
			e, err := opener.Open()
			if err == nil && opener.Persistent() {
				o := store.NewOverlay(e)
				tr.overlays = append(tr.overlays, o)
				e = o
			}
			return e, nil, err
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
				return nil, nil, fmt.Errorf("brook: task %s: restore table %q: committed offset of %s: %w", id, spec.Name, tp, err)
			}
			reader = restoreUpTo{ChangelogReader: reader, end: max(committed[tp], 0)}
		}
		cp, has := checkpoint[tp]
		res, err := store.Restore(ctx, store.RestoreConfig{
			Store: spec.Name, Changelog: tp, Opener: opener,
			Reader:     reader,
			Checkpoint: cp, HasCheckpoint: has,
			Progress: r.cfg.OnRestore, Logger: r.log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("brook: task %s: restore store %q from %s: %w", id, spec.Name, tp, err)
		}
		restoredTotal += res.Records
		tr.logged[tp] = res.Offset
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
			return o, opts, nil
		}
		return res.Engine, opts, nil
	}
	core, err := task.New(task.Config{
		ID: toProcessorTaskID(id), Graph: r.cfg.Graph, Stores: factory,
		Collector: coll, Logger: r.log, WallClock: r.cfg.Clock(),
		Context: ctx, // ends source waits for the registry at rebalance or shutdown
	})
	if err != nil {
		return nil, fmt.Errorf("brook: open task %s: %w", id, err)
	}
	if len(tr.logged) > 0 {
		// The restored stores are flushed and hold exactly the changelog
		// below tr.logged (store writes reach them only at a commit, after
		// their changelog records are acknowledged, under both
		// guarantees): checkpoint that at once, so that a crash or an
		// interrupted set-up before the first commit restores only the
		// tail, not everything from offset 0.
		if err := store.WriteCheckpoint(tr.dir, tr.logged); err != nil {
			return nil, errors.Join(fmt.Errorf("brook: task %s: %w", id, err), core.Close())
		}
	}
	tr.core = core
	r.mu.Lock()
	r.restoredRecords[id] = restoredTotal
	r.restored[id] = tr.offsetsByTopic()
	r.mu.Unlock()
	return tr, nil
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

func (tr *taskRun) offsetsByTopic() map[string]int64 {
	out := map[string]int64{}
	for tp, o := range tr.logged {
		out[tp.Topic] = o
	}
	return out
}

// ConsumeClaim feeds one partition's records into its task's queue.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	h.mu.Lock()
	tr := h.byTP[tpKey{claim.Topic(), claim.Partition()}]
	h.mu.Unlock()
	if tr == nil {
		if sess.Context().Err() != nil {
			return nil
		}
		return fmt.Errorf("brook: claimed %s/%d belongs to no running task", claim.Topic(), claim.Partition())
	}
	h.r.trackClaim(tr.id, claim)
	ctx := sess.Context()
	stop := context.AfterFunc(ctx, tr.queue.wake)
	defer stop()
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if !tr.queue.push(ctx, m) {
				return nil
			}
		case <-ctx.Done():
			return nil
		case <-tr.gone:
			// Another instance owns the task (exactly-once fencing, or
			// a lost group membership), or its commit failed: returning
			// ends the session, so the instance joins the group again.
			return nil
		}
	}
}

// Cleanup stops the workers, commits what they processed (unless the
// runtime failed with an error that forbids it: a record's failure does
// not, as the failed record was rolled back), and closes the tasks.
// sarama also calls it after a Setup that failed, possibly before Setup
// created anything of its session: it then finds no stop channel and no
// tasks, as the previous session's Cleanup left none.
func (h *handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	if h.stop != nil {
		close(h.stop)
	}
	for _, tr := range h.tasks {
		tr.queue.close()
	}
	h.wg.Wait()
	h.stop = nil // closed: the next session's Setup makes its own
	ok := h.r.mayCommit()
	all := make([]*taskRun, 0, len(h.tasks))
	before := make([]int, 0, len(h.tasks))
	for _, tr := range h.tasks {
		all = append(all, tr)
		before = append(before, tr.commits)
	}
	if ok {
		if err := h.commit(sess, all); err != nil {
			h.r.commitFailed(err)
		}
	}
	if h.r.stopping() {
		// The final commit: remember whose did not complete, for the
		// error of a shutdown that outlasts its bound.
		var left []string
		for i, tr := range all {
			if !ok || tr.commits == before[i] {
				left = append(left, tr.id.String())
			}
		}
		h.r.noteUncommitted(left)
	}
	h.closeTasks(ok)
	h.r.setState(Rebalancing)
	return nil
}

func (h *handler) closeTasks(checkpointed bool) {
	h.r.unpublishTasks() // before closing: queries must let go of the stores
	h.r.forgetFailures(h.tasks)
	for id, tr := range h.tasks {
		if tr.core != nil {
			h.r.logCloseError(id, tr.core.Close())
		}
		if tr.txn != nil {
			// Aborts what was not committed (the overlays died with
			// the core).
			tr.txn.close(h.r.log)
		}
	}
	h.tasks = nil
	h.byTP = nil
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
			r.log.Warn("brook: close store", "task", id.String(), "store", sce.Store, "err", e)
		default:
			r.log.Warn("brook: close task", "task", id.String(), "err", e)
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

// work is one processing goroutine: it drives its tasks until the session
// stops.
func (h *handler) work(sess sarama.ConsumerGroupSession, w int, tasks []*taskRun) {
	defer h.wg.Done()
	r := h.r
	signal := h.signals[w]
	now := r.cfg.Clock()
	nextCommit := now.Add(r.cfg.CommitInterval)
	nextPunct := now.Add(r.cfg.PunctuateInterval)
	timer := time.NewTimer(r.cfg.PunctuateInterval)
	defer timer.Stop()
	const batch = 100
	for {
		select {
		case <-h.stop:
			return
		default:
		}
		processed := 0
		commitNow := false
		for _, tr := range tasks {
			if tr.isLost() {
				continue
			}
			for i := 0; i < batch; i++ {
				m, ok := tr.queue.pop()
				if !ok {
					break
				}
				tr.begin()
				if err := tr.core.Process(rawRecord(m)); err != nil {
					// Undo the record's partial output and writes; the
					// records before it are committed (Cleanup), under
					// both guarantees, and a restart resumes at it.
					tr.rollback()
					if errors.Is(err, task.ErrInterrupted) {
						// The session ended while the record waited for the
						// schema registry; nothing of it happened, and it is
						// not committed: its next owner processes it.
						r.log.Info("brook: record left for the next owner", "task", tr.id.String(), "err", err)
						return
					}
					r.failRecord(fmt.Errorf("brook: task %s: %w", tr.id, err))
					return
				}
				if err := tr.end(); err != nil {
					r.fail(err)
					return
				}
				processed++
				if tr.core.CommitRequested() {
					// A processor asked for a commit: the task processes
					// nothing more before it (RequestCommit commits "as
					// soon as possible after the current record"), so
					// under exactly-once its next record begins a new
					// transaction. The worker's other tasks still get
					// their batch first.
					break
				}
			}
			commitNow = commitNow || tr.core.CommitRequested() || tr.pendingWrites() >= maxPendingWrites
		}
		now = r.cfg.Clock()
		if !now.Before(nextPunct) {
			for _, tr := range tasks {
				if tr.isLost() {
					continue
				}
				tr.begin()
				if _, err := tr.core.Punctuate(now); err != nil {
					tr.rollback()
					r.failRecord(fmt.Errorf("brook: task %s: punctuate: %w", tr.id, err))
					return
				}
				if err := tr.end(); err != nil {
					r.fail(err)
					return
				}
				commitNow = commitNow || tr.core.CommitRequested()
			}
			nextPunct = now.Add(r.cfg.PunctuateInterval)
		}
		if commitNow || !now.Before(nextCommit) {
			if err := h.commit(sess, tasks); err != nil {
				r.commitFailed(err)
				return
			}
			nextCommit = r.cfg.Clock().Add(r.cfg.CommitInterval)
		}
		if processed == 0 {
			wait := min(time.Until(nextPunct), time.Until(nextCommit))
			if wait < time.Millisecond {
				wait = time.Millisecond
			}
			timer.Reset(wait)
			select {
			case <-h.stop:
				return
			case <-signal:
			case <-timer.C:
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
}

// commit runs the at-least-once commit protocol for tasks: confirm the
// group membership, flush the producer, flush the stores (task.Commit),
// commit the consumed offsets and read the answer, write the checkpoints.
// A task with a record the producer could not write (and the production
// handler did not skip) is dropped, not committed; the others are, and
// the error is returned as a *droppedTaskError. When the membership is
// lost (or cannot be confirmed) the tasks are lost: nothing of them is
// committed or checkpointed, and the session ends (loseMembership). Any
// other refusal of the offset commit is returned as a fatal error.
func (h *handler) commit(sess sarama.ConsumerGroupSession, tasks []*taskRun) error {
	r := h.r
	if len(tasks) == 0 {
		return nil
	}
	if r.cfg.ExactlyOnce {
		return h.commitTasksEOS(sess, tasks)
	}
	live := make([]*taskRun, 0, len(tasks))
	for _, tr := range tasks {
		if !tr.isLost() {
			live = append(live, tr)
		}
	}
	if len(live) == 0 {
		return nil
	}
	// A member that the group dropped (it stalled past the rebalance or
	// session timeout) must not write its changelog records behind those
	// of the tasks' new owners, nor checkpoint past them. Not a fatal
	// error (the session ends and the instance joins again), unless the
	// coordinator refuses the question itself (authorization).
	// The coordinator calls do not use the session's context (Cleanup
	// commits after it ended) but the rebalance timeout: past it, a
	// member that has not joined again is out of the group anyway.
	bound := r.cfg.Sarama.Consumer.Group.Rebalance.Timeout
	if bound <= 0 {
		bound = time.Minute
	}
	cctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := r.checkMembership(cctx, sess); err != nil {
		if errors.Is(err, ErrMembershipLost) {
			h.loseMembership(live, err, false)
			return nil
		}
		return err
	}
	for _, tr := range live {
		if err := tr.coll.flushChangelog(); err != nil {
			return fmt.Errorf("brook: task %s: %w", tr.id, err)
		}
	}
	failures := r.flushShared(live)
	type done struct {
		tr   *taskRun
		offs []task.Offset
	}
	var committed []done
	var dropped error
	for _, tr := range live {
		if err := r.settleFailures(tr, failures[tr.coll.task]); err != nil {
			h.dropTask(tr, err)
			if dropped == nil {
				dropped = err
			}
			continue
		}
		offs, err := tr.core.Commit()
		if err != nil {
			return fmt.Errorf("brook: task %s: commit: %w", tr.id, err)
		}
		for _, o := range tr.overlays {
			if err := o.Commit(); err != nil {
				return fmt.Errorf("brook: task %s: write stores: %w", tr.id, err)
			}
		}
		committed = append(committed, done{tr, offs})
	}
	var offs []task.Offset
	for _, d := range committed {
		offs = append(offs, d.offs...)
	}
	if err := r.commitOffsets(cctx, sess, offs); err != nil {
		if !errors.Is(err, ErrMembershipLost) {
			return fmt.Errorf("brook: commit consumed offsets: %w", err)
		}
		// The generation ended between the check and the commit: the
		// store writes are applied and the changelog records written,
		// but the offsets are not committed, so the checkpoints stay
		// where they were.
		lost := make([]*taskRun, len(committed))
		for i, d := range committed {
			lost[i] = d.tr
		}
		h.loseMembership(lost, err, true)
		if dropped != nil {
			return &droppedTaskError{err: dropped}
		}
		return nil
	}
	for _, d := range committed {
		tr := d.tr
		tr.commits++
		for tp := range tr.logged {
			if tr.tables[tp] {
				for _, o := range d.offs {
					if o.Topic == tp.Topic && o.Partition == tp.Partition {
						tr.logged[tp] = o.Offset
					}
				}
				continue
			}
			if off, ok := r.prod.Acked(tp); ok && off > tr.logged[tp] {
				tr.logged[tp] = off
			}
		}
		if len(tr.logged) == 0 {
			continue
		}
		if err := store.WriteCheckpoint(tr.dir, tr.logged); err != nil {
			return fmt.Errorf("brook: task %s: %w", tr.id, err)
		}
		r.mu.Lock()
		r.restored[tr.id] = tr.offsetsByTopic()
		r.mu.Unlock()
	}
	if dropped != nil {
		return &droppedTaskError{err: dropped}
	}
	return nil
}

func rawRecord(m *sarama.ConsumerMessage) task.RawRecord {
	rec := task.RawRecord{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Key: m.Key, Value: m.Value, Timestamp: m.Timestamp,
	}
	if len(m.Headers) > 0 {
		rec.Headers = make(processor.Headers, 0, len(m.Headers))
		for _, hd := range m.Headers {
			if hd != nil {
				rec.Headers = append(rec.Headers, processor.Header{Key: string(hd.Key), Value: hd.Value})
			}
		}
	}
	return rec
}

func producedFromMessage(m *sarama.ProducerMessage) processor.ProducedRecord {
	out := processor.ProducedRecord{Topic: m.Topic, Partition: m.Partition, Timestamp: m.Timestamp}
	if m.Key != nil {
		out.Key, _ = m.Key.Encode()
	}
	if m.Value != nil {
		out.Value, _ = m.Value.Encode()
	}
	for _, hd := range m.Headers {
		out.Headers = append(out.Headers, processor.Header{Key: string(hd.Key), Value: hd.Value})
	}
	return out
}
