package runtime

import (
	"fmt"
	"slices"
	"sync"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/store"
)

// Interactive queries read the stores of open tasks from HTTP handler
// goroutines while the task's worker writes them. That is safe because
// both engines allow concurrent readers beside their one writer (LevelDB
// natively, the in-memory engine through copy-on-write snapshots), and
// because of the registry below: a task is published only once it is open
// and restored, and unpublished before it closes. Unpublishing takes the
// registry's write lock, so it waits for every point read in flight, and
// it closes the iterators queries still hold on the task's stores, so that
// closing the engines never meets an open iterator.

// queryRegistry is the interactive-query view of a runtime's open tasks.
// Its zero value is ready to use.
type queryRegistry struct {
	mu    sync.RWMutex
	tasks map[assign.TaskID]*queryTask
	// restoring holds the latest restore progress per store partition of
	// the tasks being opened.
	restoring map[restoreKey]store.RestoreProgress
}

type restoreKey struct {
	store     string
	partition int32
}

// queryTask is one published task.
type queryTask struct {
	tr *taskRun

	mu     sync.Mutex // guards closed, iters, claims
	closed bool
	iters  map[uint64]func()
	next   uint64
	claims []sarama.ConsumerGroupClaim
}

// TaskNotOpenError says that a task's stores cannot be read here now: the
// task is not assigned to this instance, or it is restoring, or the group
// is rebalancing.
type TaskNotOpenError struct {
	// Task is the task asked for.
	Task assign.TaskID
	// Assigned reports that the current assignment gives the task to this
	// instance: it is restoring (or about to), so asking again soon helps.
	Assigned bool
	// State is the runtime's state.
	State State
}

// Error implements error.
func (e *TaskNotOpenError) Error() string {
	if e.Assigned {
		return fmt.Sprintf("brook: task %s is not ready on this instance (state %s)", e.Task, e.State)
	}
	return fmt.Sprintf("brook: task %s does not run on this instance (state %s)", e.Task, e.State)
}

// ErrIteratorInvalidated is the Err of a query iterator whose task closed
// (rebalance or shutdown) before the iterator was done.
var ErrIteratorInvalidated = fmt.Errorf("brook: the store's task closed while a query iterated it; retry the query")

// watchRestore wraps the user's restore listener so the registry sees the
// progress of the tasks being opened.
func (r *Runtime) watchRestore(user func(store.RestoreProgress)) func(store.RestoreProgress) {
	return func(p store.RestoreProgress) {
		q := &r.queries
		q.mu.Lock()
		if q.restoring == nil {
			q.restoring = map[restoreKey]store.RestoreProgress{}
		}
		// Kept until the task is published (publishTask), even when done:
		// the task is not queryable before all its stores are restored.
		q.restoring[restoreKey{p.Store, p.Partition}] = p
		q.mu.Unlock()
		r.noteRestore(p)
		if user != nil {
			user(p)
		}
	}
}

// publishTask makes an open, restored task readable by queries.
func (r *Runtime) publishTask(tr *taskRun) {
	q := &r.queries
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.tasks == nil {
		q.tasks = map[assign.TaskID]*queryTask{}
	}
	q.tasks[tr.id] = &queryTask{tr: tr, iters: map[uint64]func(){}}
	for k := range q.restoring {
		if k.partition == tr.id.Partition && slices.Contains(r.cfg.Graph.SubTopologies[tr.id.Group].Stores, k.store) {
			delete(q.restoring, k)
		}
	}
}

// unpublishTasks withdraws every published task before the session closes
// them: it waits for point reads in flight and closes open query
// iterators.
func (r *Runtime) unpublishTasks() {
	q := &r.queries
	q.mu.Lock()
	tasks := q.tasks
	q.tasks = nil
	q.restoring = nil
	q.mu.Unlock()
	for _, qt := range tasks {
		qt.mu.Lock()
		qt.closed = true
		kills := make([]func(), 0, len(qt.iters))
		for _, k := range qt.iters {
			kills = append(kills, k)
		}
		qt.iters = nil
		qt.claims = nil
		qt.mu.Unlock()
		for _, k := range kills {
			k()
		}
	}
}

// trackClaim remembers a partition claim of a published task, for the
// lag report.
func (r *Runtime) trackClaim(id assign.TaskID, claim sarama.ConsumerGroupClaim) {
	q := &r.queries
	q.mu.RLock()
	qt := q.tasks[id]
	q.mu.RUnlock()
	if qt == nil {
		return
	}
	qt.mu.Lock()
	if !qt.closed {
		qt.claims = append(qt.claims, claim)
	}
	qt.mu.Unlock()
}

func (r *Runtime) notOpen(id assign.TaskID) error {
	e := &TaskNotOpenError{Task: id, State: r.State()}
	if a, ok := r.strategy.Local(); ok {
		_, e.Assigned = slices.BinarySearchFunc(a.Tasks, id, assign.TaskID.Compare)
	}
	return e
}

// ReadStore calls fn with the typed store name of local task id (a
// store.KeyValueStore[K, V] for a key-value store). The task cannot close
// while fn runs, so fn must be short (a point read). It returns a
// *TaskNotOpenError when the task is not open here.
func (r *Runtime) ReadStore(id assign.TaskID, name string, fn func(st any) error) error {
	if id == GlobalTask {
		return r.readGlobal(name, fn)
	}
	q := &r.queries
	q.mu.RLock()
	defer q.mu.RUnlock()
	qt := q.tasks[id]
	if qt == nil {
		return r.notOpen(id)
	}
	st, err := qt.tr.core.Store(name)
	if err != nil {
		return err
	}
	return fn(st)
}

// OpenIterator calls open with the typed store name of local task id;
// open creates an iterator and returns a func that closes it, which the
// runtime calls if the task closes first (after which the iterator must
// report ErrIteratorInvalidated). The returned done func unregisters the
// iterator; call it when the iterator is closed normally.
func (r *Runtime) OpenIterator(id assign.TaskID, name string, open func(st any) (kill func(), err error)) (done func(), err error) {
	if id == GlobalTask {
		return r.openGlobalIterator(name, open)
	}
	q := &r.queries
	q.mu.RLock()
	defer q.mu.RUnlock()
	qt := q.tasks[id]
	if qt == nil {
		return nil, r.notOpen(id)
	}
	st, err := qt.tr.core.Store(name)
	if err != nil {
		return nil, err
	}
	kill, err := open(st)
	if err != nil {
		return nil, err
	}
	qt.mu.Lock()
	defer qt.mu.Unlock()
	if qt.closed { // cannot happen under the read lock; kept for safety
		kill()
		return nil, r.notOpen(id)
	}
	n := qt.next
	qt.next++
	qt.iters[n] = kill
	return func() {
		qt.mu.Lock()
		delete(qt.iters, n)
		qt.mu.Unlock()
	}, nil
}

// OpenTasks returns the published (open, restored) tasks, ascending.
func (r *Runtime) OpenTasks() []assign.TaskID {
	q := &r.queries
	q.mu.RLock()
	defer q.mu.RUnlock()
	out := make([]assign.TaskID, 0, len(q.tasks))
	for id := range q.tasks {
		out = append(out, id)
	}
	slices.SortFunc(out, assign.TaskID.Compare)
	return out
}

// RestoreProgress returns the latest restore progress of the stores of
// tasks being opened (restored or not yet), by store name and partition.
func (r *Runtime) RestoreProgress() []store.RestoreProgress {
	q := &r.queries
	q.mu.RLock()
	defer q.mu.RUnlock()
	out := make([]store.RestoreProgress, 0, len(q.restoring))
	for _, p := range q.restoring {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b store.RestoreProgress) int {
		if a.Store != b.Store {
			if a.Store < b.Store {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

// PartitionLag is how far one source partition of a task is behind.
type PartitionLag struct {
	Topic     string
	Partition int32
	// Position is the offset of the next record the task will process.
	Position int64
	// End is the partition's end offset as last seen: the high watermark
	// (the last stable offset under exactly-once) from the monitor's
	// last listing or the consumer's last fetch, whichever is newer.
	End int64
	// Lag is End - Position (0 when not known to be positive, or when the
	// offsets left hold only transaction markers).
	Lag int64
}

// Lag returns the lag of each source partition of an open task, from
// what the runtime last saw; false when the task is not open here.
func (r *Runtime) Lag(id assign.TaskID) ([]PartitionLag, bool) {
	q := &r.queries
	q.mu.RLock()
	_, open := q.tasks[id]
	q.mu.RUnlock()
	if !open {
		return nil, false
	}
	out := []PartitionLag{}
	for _, st := range r.openInputs() {
		if st.task != id {
			continue
		}
		end, lag, _ := r.lagOf(st)
		out = append(out, PartitionLag{Topic: st.key.topic, Partition: st.key.partition, Position: st.position, End: end, Lag: max(lag, 0)})
	}
	return out, true
}

// Graph returns the compiled topology the runtime runs.
func (r *Runtime) Graph() *task.Graph { return r.cfg.Graph }

// ApplicationID returns the application id.
func (r *Runtime) ApplicationID() string { return r.cfg.ApplicationID }

// Endpoint returns this instance's query endpoint.
func (r *Runtime) Endpoint() string { return r.cfg.Endpoint }
