// handler.go: the runtime's sarama.ConsumerGroupHandler, one session per
// group generation. Setup opens the session's tasks (tasks.go) and starts
// the workers (worker.go), ConsumeClaim feeds each claimed partition into
// its task's queue, Cleanup stops the workers, makes the final commit
// (commit.go) and closes the tasks.

package runtime

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
)

// handler is the sarama.ConsumerGroupHandler of a runtime. One session
// lives per group generation under the eager protocol; under the
// cooperative one (coop.go) a session lives across generations, and its
// tasks open and close as their claims arrive and leave.
type handler struct {
	r *Runtime
	// cooperative says that sarama runs the cooperative protocol.
	cooperative bool

	mu sync.Mutex
	// live is set from Setup to Cleanup; sess is that session.
	live    bool
	sess    sarama.ConsumerGroupSession
	tasks   map[assign.TaskID]*taskRun
	byTP    map[tpKey]*taskRun
	opening map[assign.TaskID]*opening
	stop    chan struct{}
	wg      sync.WaitGroup
	signals []chan struct{}
	workers []*workerTasks
	// probeStop ends the probing timer of the current assignment.
	probeStop chan struct{}
	// assignedTasks are the active tasks of the last assignment received
	// (to tell arriving tasks from staying ones); fenced holds the
	// transactional producers registered for arriving tasks before
	// their claims start (exactly-once), for openTask to take.
	assignedTasks map[assign.TaskID]bool
	fenced        map[assign.TaskID]*txnProducer
}

// opening is a task being opened because one of its claims arrived in a
// cooperative rebalance; the task's other claims wait for it.
type opening struct {
	done   chan struct{}
	cancel context.CancelFunc
	tr     *taskRun
	err    error
}

// Setup creates and restores the session's tasks and starts the workers.
func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	r := h.r
	r.strategy.SetMemberID(sess.MemberID()) // for query routing
	ids, err := r.strategy.Tasks(sess.Claims())
	if err != nil {
		r.fail(fmt.Errorf("brook: assignment: %w", err))
		return err
	}
	r.meter.RebalanceDone(time.Now())
	a, ok := r.strategy.Local()
	if ok && r.cfg.OnAssignment != nil {
		r.cfg.OnAssignment(a)
	}
	// Copies of tasks that are active here now stop (and release their
	// stores) before the tasks open; new copies start.
	a.Tasks = ids
	r.mu.Lock()
	sb := r.standbys
	r.mu.Unlock()
	sb.reconcile(a, nil)
	h.mu.Lock()
	h.live, h.sess = true, sess
	h.tasks = map[assign.TaskID]*taskRun{}
	h.byTP = map[tpKey]*taskRun{}
	h.opening = map[assign.TaskID]*opening{}
	h.stop = make(chan struct{})
	h.signals = make([]chan struct{}, r.cfg.Workers)
	h.workers = make([]*workerTasks, r.cfg.Workers)
	for i := range h.signals {
		h.signals[i] = make(chan struct{}, 1)
		h.workers[i] = newWorkerTasks()
	}
	h.mu.Unlock()
	r.setState(Restoring)
	// Each task resumes from the stream time committed with its offsets,
	// before any of its processors' Init.
	streamTimes, err := r.restoredStreamTimes(sess.Context(), sess.Claims())
	if err != nil {
		if sess.Context().Err() != nil {
			r.log.Info("brook: task set-up interrupted by rebalance or shutdown")
			return nil
		}
		r.fail(err)
		return err
	}
	for i, id := range ids {
		tctx, cancel := context.WithCancel(sess.Context())
		tr, err := h.openTask(tctx, id, i%r.cfg.Workers, streamTimes[id])
		if err != nil {
			cancel()
			h.closeTasks(false)
			if sess.Context().Err() != nil {
				// A rebalance or shutdown interrupted the restore: not an
				// error, the next generation starts over.
				r.log.Info("brook: restore interrupted by rebalance or shutdown", "task", id.String())
				h.mu.Lock()
				h.tasks = map[assign.TaskID]*taskRun{}
				h.byTP = map[tpKey]*taskRun{}
				h.mu.Unlock()
				return nil
			}
			r.fail(err)
			return err
		}
		tr.cancel = cancel
		h.mu.Lock()
		h.tasks[id] = tr
		h.mu.Unlock()
		r.publishTask(tr)
		tr.meter.Running()
	}
	h.mu.Lock()
	for _, k := range claimOrder(sess.Claims(), r.tableTopics()) {
		id, _ := r.strategy.TaskOf(k.topic, k.partition)
		if tr := h.tasks[id]; tr != nil {
			h.byTP[k] = tr
			tr.queue.addPartition(k.topic, k.partition)
			tr.parts = append(tr.parts, k)
		}
	}
	for _, id := range ids {
		if tr := h.tasks[id]; tr != nil {
			h.workers[tr.worker].add(tr)
		}
	}
	h.mu.Unlock()
	r.setState(Running)
	for w := 0; w < r.cfg.Workers; w++ {
		h.wg.Add(1)
		go h.work(sess, w)
	}
	h.startProbe(a)
	return nil
}

// claimOrder lists claimed partitions in the order a task's record queue
// takes them at timestamp ties (recordQueue.pop: the partition listed
// first wins): partitions of table topics first, then the others, each by
// topic name and partition. So a stream record sees every update of a
// table it joins with the same timestamp as itself, and the order does
// not depend on map iteration. (Kafka Streams breaks such ties by which
// partition gave the previous record; see docs/DSL.md, "Joins".)
func claimOrder(claims map[string][]int32, tables map[string]bool) []tpKey {
	var out []tpKey
	for topic, parts := range claims {
		for _, p := range parts {
			out = append(out, tpKey{topic, p})
		}
	}
	slices.SortFunc(out, func(a, b tpKey) int {
		if ta, tb := tables[a.topic], tables[b.topic]; ta != tb {
			if ta {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return cmp.Compare(a.partition, b.partition)
	})
	return out
}

// tableTopics returns the topics the topology's tables are materialized
// from.
func (r *Runtime) tableTopics() map[string]bool {
	out := map[string]bool{}
	for _, spec := range r.cfg.Graph.Stores {
		if spec.TableTopic != "" {
			out[spec.TableTopic] = true
		}
		if spec.SourceTopic != "" {
			out[spec.SourceTopic] = true
		}
	}
	return out
}

// claimHook, set by tests only (export_test.go), is called with each
// consumed record before it goes into its task's queue; it may block, to
// stand for a fetch that is slow.
var claimHook atomic.Pointer[func(ctx context.Context, m *sarama.ConsumerMessage)]

// ConsumeClaim feeds one partition's records into its task's queue.
// Under the cooperative protocol a claim can arrive for a task that is not
// open yet (it opens it: openAdded) and can be revoked while the session
// goes on (its Messages channel closes; it commits and closes the task:
// revokeTask).
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	k := tpKey{claim.Topic(), claim.Partition()}
	h.mu.Lock()
	tr := h.byTP[k]
	h.mu.Unlock()
	ctx := sess.Context()
	if tr == nil {
		if ctx.Err() != nil {
			return nil
		}
		if !h.cooperative {
			return fmt.Errorf("brook: claimed %s/%d belongs to no running task", claim.Topic(), claim.Partition())
		}
		var err error
		tr, err = h.openAdded(sess, k)
		if err != nil {
			return err
		}
		if tr == nil {
			// The task left again before it was open (or the session
			// ends): its claim is being revoked. Returning before sarama
			// revoked it would end the session.
			drainClaim(ctx, claim)
			return nil
		}
	}
	h.r.trackClaim(tr.id, claim)
	pm := tr.meter.Partition(claim.Topic(), claim.Partition())
	tr.queue.track(claim.Topic(), claim.Partition(), claim.InitialOffset(), claim.HighWaterMarkOffset())
	stop := context.AfterFunc(ctx, tr.queue.wake)
	defer stop()
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				if h.cooperative && ctx.Err() == nil {
					h.revokeTask(sess, tr)
				}
				return nil
			}
			if hook := claimHook.Load(); hook != nil {
				(*hook)(ctx, m)
			}
			if !tr.queue.pushAt(ctx, m, claim.HighWaterMarkOffset()) {
				if h.cooperative && ctx.Err() == nil && tr.isRevoking() {
					// Another claim of the task saw the revocation first.
					drainClaim(ctx, claim)
					h.revokeTask(sess, tr)
				}
				return nil
			}
			pm.Consumed()
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

// drainClaim drops a revoked claim's records until sarama closes its
// Messages channel (or the session ends).
func drainClaim(ctx context.Context, claim sarama.ConsumerGroupClaim) {
	for {
		select {
		case _, ok := <-claim.Messages():
			if !ok {
				return
			}
		case <-ctx.Done():
			return
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
	h.r.gate.reset()
	h.mu.Lock()
	h.live = false
	h.stopProbe()
	tasks := h.tasks
	for id, op := range h.opening {
		op.cancel()
		delete(h.opening, id)
	}
	h.mu.Unlock()
	if h.stop != nil {
		close(h.stop)
	}
	for _, tr := range tasks {
		tr.queue.close()
	}
	h.wg.Wait()
	h.stop = nil // closed: the next session's Setup makes its own
	ok := h.r.mayCommit()
	all := make([]*taskRun, 0, len(tasks))
	before := make([]int, 0, len(tasks))
	for _, tr := range tasks {
		all = append(all, tr)
		before = append(before, tr.commits)
	}
	if ok {
		began := time.Now()
		err := h.commit(sess, all)
		if len(all) > 0 {
			h.r.meter.ObserveCommit(time.Since(began))
		}
		if err != nil {
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
	h.dropFenced(nil)
	h.r.setState(Rebalancing)
	return nil
}

// openAdded opens the task of a claim that a cooperative rebalance added,
// once for all its claims: it restores the task's stores (the other tasks
// go on processing) and hands it to the least busy worker. It returns nil
// and no error when the task left again, or the session ended, before it
// was open.
func (h *handler) openAdded(sess sarama.ConsumerGroupSession, k tpKey) (*taskRun, error) {
	r := h.r
	id, ok := r.strategy.TaskOf(k.topic, k.partition)
	if !ok {
		return nil, fmt.Errorf("brook: claimed %s/%d belongs to no task of this topology", k.topic, k.partition)
	}
	h.mu.Lock()
	if tr := h.tasks[id]; tr != nil {
		h.mu.Unlock()
		return tr, nil
	}
	op := h.opening[id]
	if op != nil {
		h.mu.Unlock()
		<-op.done
		return op.tr, op.err
	}
	ctx, cancel := context.WithCancel(sess.Context())
	op = &opening{done: make(chan struct{}), cancel: cancel}
	h.opening[id] = op
	h.mu.Unlock()

	began := time.Now()
	tr, err := h.openOne(ctx, sess, id)
	if tr != nil {
		tr.cancel = cancel
	}
	h.mu.Lock()
	delete(h.opening, id)
	if err == nil && ctx.Err() == nil && h.live {
		h.tasks[id] = tr
		for _, tk := range tr.parts {
			h.byTP[tk] = tr
		}
		h.workers[tr.worker].add(tr)
		op.tr = tr
	}
	h.mu.Unlock()
	switch {
	case op.tr != nil:
		r.publishTask(tr)
		tr.meter.Running()
		r.log.Info("brook: task opened in a cooperative rebalance", "task", id.String(), "restored", r.restoredCount(id),
			"took", time.Since(began).Round(time.Millisecond).String())
	case err != nil && ctx.Err() == nil:
		op.err = err
		r.fail(err)
	default:
		if tr != nil {
			h.closeTask(tr)
		}
		cancel()
		r.log.Info("brook: task left before it was open; its restore stopped", "task", id.String())
	}
	close(op.done)
	return op.tr, op.err
}

// openOne opens task id for openAdded: its stream time, stores and queue
// (with the task's claimed partitions in claimOrder).
func (h *handler) openOne(ctx context.Context, sess sarama.ConsumerGroupSession, id assign.TaskID) (*taskRun, error) {
	r := h.r
	claims := map[string][]int32{}
	for topic, parts := range sess.Claims() {
		for _, p := range parts {
			if t, ok := r.strategy.TaskOf(topic, p); ok && t == id {
				claims[topic] = append(claims[topic], p)
			}
		}
	}
	streamTimes, err := r.restoredStreamTimes(ctx, claims)
	if err != nil {
		return nil, err
	}
	tr, err := h.openTask(ctx, id, h.leastBusyWorker(), streamTimes[id])
	if err != nil {
		return nil, err
	}
	for _, k := range claimOrder(claims, r.tableTopics()) {
		tr.queue.addPartition(k.topic, k.partition)
		tr.parts = append(tr.parts, k)
	}
	return tr, nil
}

// leastBusyWorker returns the worker with the fewest tasks.
func (h *handler) leastBusyWorker() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	best, n := 0, -1
	for i, w := range h.workers {
		if c := w.count(); n < 0 || c < n {
			best, n = i, c
		}
	}
	return best
}

// revokeTask commits and closes a task whose claims a cooperative
// rebalance revoked, once for all its claims; every claim of the task
// returns only after it (sarama then releases the partitions, and their
// next owner finds the task's work committed: under exactly-once its
// transaction is committed before the partitions go). The worker lets go
// of the task first; the task's buffered records are dropped (not
// processed, so not committed: the next owner fetches them again).
func (h *handler) revokeTask(sess sarama.ConsumerGroupSession, tr *taskRun) {
	tr.revokeOnce.Do(func() {
		defer close(tr.revokeDone)
		r := h.r
		close(tr.revoking)
		tr.queue.close()
		ack := h.workers[tr.worker].remove(tr)
		select {
		case <-ack:
		case <-time.After(revokeInterruptAfter):
			// The worker is stuck in the task's record (a schema registry
			// that does not answer): interrupt it; the record is rolled
			// back and left to the next owner.
			tr.cancel()
			<-ack
		}
		before := tr.commits
		if r.mayCommit() && !tr.isLost() {
			began := time.Now()
			err := h.commit(sess, []*taskRun{tr})
			r.meter.ObserveCommit(time.Since(began))
			if err != nil {
				r.commitFailed(err)
			}
		}
		committed := tr.commits > before
		h.mu.Lock()
		delete(h.tasks, tr.id)
		for _, k := range tr.parts {
			delete(h.byTP, k)
		}
		h.mu.Unlock()
		h.closeTask(tr)
		r.log.Info("brook: task revoked by a cooperative rebalance: committed and closed", "task", tr.id.String(), "committed", committed)
		h.reconcileCopies()
	})
	<-tr.revokeDone
}

// revokeInterruptAfter is how long revokeTask waits for the task's worker
// before it interrupts the task's record.
const revokeInterruptAfter = time.Second

// assigned is groupStrategy's hook after each SyncGroup (so before sarama
// revokes or adds claims). Under exactly-once it registers the
// transactional ids of the tasks arriving here, which ends any
// transaction their previous owner left open (a crashed instance's): the
// read_committed offset fetch that sarama makes for the new claims would
// otherwise wait for it and fail. Under the cooperative protocol, with a
// session running, it also reports the rebalance, stops restores of tasks
// that left, re-plans the standby copies and restarts the probing timer.
func (h *handler) assigned(generation int32) {
	r := h.r
	a, ok := r.strategy.Local()
	if !ok {
		return
	}
	now := make(map[assign.TaskID]bool, len(a.Tasks))
	for _, id := range a.Tasks {
		now[id] = true
	}
	h.mu.Lock()
	prev := h.assignedTasks
	h.assignedTasks = now
	var arriving []assign.TaskID
	for _, id := range a.Tasks {
		if !prev[id] && h.tasks[id] == nil {
			arriving = append(arriving, id)
		}
	}
	live := h.live && h.cooperative
	if live {
		for id, op := range h.opening {
			if !now[id] {
				op.cancel()
			}
		}
	}
	h.mu.Unlock()
	h.dropFenced(now)
	if r.cfg.ExactlyOnce {
		h.fenceArriving(arriving)
	}
	if !live {
		return
	}
	r.meter.RebalanceDone(time.Now())
	if r.cfg.OnAssignment != nil {
		r.cfg.OnAssignment(a)
	}
	h.reconcileCopies()
	h.mu.Lock()
	h.stopProbe()
	h.mu.Unlock()
	h.startProbe(a)
	r.log.Debug("brook: cooperative rebalance: new assignment", "generation", generation,
		"tasks", len(a.Tasks), "arriving", len(arriving), "standby", len(a.Standby), "warmup", len(a.Warmup))
}

// awaitPoll is groupStrategy's hook before each JoinGroup. A Kafka
// consumer joins a rebalance only from poll, so a member whose processing
// thread is stuck does not rejoin, and the group drops it after the
// rebalance time-out and gives its partitions to others; under the eager
// protocol brook gets that for free (the session cannot end while a
// worker is inside a record). Under the cooperative one the session goes
// on, so this waits, before the member joins, until every worker has
// been between two batches (or is idle, or committing), for at most the
// rebalance time-out plus the session time-out. A member that was
// dropped meanwhile learns it from the JoinGroup answer (its session
// ends, its tasks close without committing, and it joins again).
func (h *handler) awaitPoll() {
	h.mu.Lock()
	if !h.live || !h.cooperative {
		h.mu.Unlock()
		return
	}
	workers, signals, stop := h.workers, h.signals, h.stop
	h.mu.Unlock()
	g := h.r.cfg.Sarama.Consumer.Group
	deadline := time.Now().Add(g.Rebalance.Timeout + g.Session.Timeout)
	start := make([]uint64, len(workers))
	for i, w := range workers {
		start[i] = w.polls.Load()
	}
	logged := false
	for {
		ready := true
		for i, w := range workers {
			if !w.done.Load() && !w.parked.Load() && w.polls.Load() == start[i] {
				ready = false
				select {
				case signals[i] <- struct{}{}:
				default:
				}
			}
		}
		if ready {
			return
		}
		if !logged && time.Since(deadline.Add(-g.Rebalance.Timeout-g.Session.Timeout)) > time.Second {
			logged = true
			h.r.log.Warn("brook: a rebalance waits for a worker that is inside a record; this instance rejoins the group once it is between records",
				"action", "if the worker stays stuck past the rebalance timeout, the group drops this instance and moves its tasks; find the processor that blocks")
		}
		select {
		case <-stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return
		}
	}
}

// reconcileCopies makes the standby and warm-up copies those of the last
// assignment, leaving out the tasks still open here (a task revoked from
// this instance may stay as a standby here: its copy starts once the
// task has closed, revokeTask calls this again).
func (h *handler) reconcileCopies() {
	r := h.r
	a, ok := r.strategy.Local()
	if !ok {
		return
	}
	h.mu.Lock()
	busy := make(map[assign.TaskID]bool, len(h.tasks)+len(h.opening))
	for id := range h.tasks {
		busy[id] = true
	}
	for id := range h.opening {
		busy[id] = true
	}
	h.mu.Unlock()
	r.mu.Lock()
	sb := r.standbys
	r.mu.Unlock()
	sb.reconcile(a, busy)
}

// fenceArriving registers, in parallel, the transactional ids of tasks
// that arrive here and keeps the producers for openTask.
func (h *handler) fenceArriving(ids []assign.TaskID) {
	if len(ids) == 0 {
		return
	}
	r := h.r
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tp, err := r.newTxnProducer(id)
			if err != nil {
				r.log.Warn("brook: register the transactional id of an arriving task", "action", "nothing: the task registers it again when it opens; if this persists, check the transactional-id ACLs and the transaction coordinator", "task", id.String(), "err", err)
				return
			}
			h.mu.Lock()
			if h.fenced == nil {
				h.fenced = map[assign.TaskID]*txnProducer{}
			}
			old := h.fenced[id]
			h.fenced[id] = tp
			h.mu.Unlock()
			if old != nil {
				old.close(r.log)
			}
		}()
	}
	wg.Wait()
}

// takeFenced returns the producer fenceArriving registered for task id,
// if any.
func (h *handler) takeFenced(id assign.TaskID) *txnProducer {
	h.mu.Lock()
	defer h.mu.Unlock()
	tp := h.fenced[id]
	delete(h.fenced, id)
	return tp
}

// dropFenced closes the registered producers of tasks not in keep (all of
// them when keep is nil).
func (h *handler) dropFenced(keep map[assign.TaskID]bool) {
	h.mu.Lock()
	var drop []*txnProducer
	for id, tp := range h.fenced {
		if !keep[id] {
			drop = append(drop, tp)
			delete(h.fenced, id)
		}
	}
	h.mu.Unlock()
	for _, tp := range drop {
		tp.close(h.r.log)
	}
}
