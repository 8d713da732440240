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
	sb.reconcile(a)
	h.tasks = map[assign.TaskID]*taskRun{}
	h.byTP = map[tpKey]*taskRun{}
	h.stop = make(chan struct{})
	h.signals = make([]chan struct{}, r.cfg.Workers)
	for i := range h.signals {
		h.signals[i] = make(chan struct{}, 1)
	}
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
		tr, err := h.openTask(sess.Context(), id, i%r.cfg.Workers, streamTimes[id])
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
		tr.meter.Running()
	}
	for _, k := range claimOrder(sess.Claims(), r.tableTopics()) {
		id, _ := r.strategy.TaskOf(k.topic, k.partition)
		if tr := h.tasks[id]; tr != nil {
			h.byTP[k] = tr
			tr.queue.addPartition(k.topic, k.partition)
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
	pm := tr.meter.Partition(claim.Topic(), claim.Partition())
	ctx := sess.Context()
	tr.queue.track(claim.Topic(), claim.Partition(), claim.InitialOffset(), claim.HighWaterMarkOffset())
	stop := context.AfterFunc(ctx, tr.queue.wake)
	defer stop()
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if hook := claimHook.Load(); hook != nil {
				(*hook)(ctx, m)
			}
			if !tr.queue.pushAt(ctx, m, claim.HighWaterMarkOffset()) {
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
	h.r.setState(Rebalancing)
	return nil
}
