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
		qt.withdraw()
	}
}

// withdraw marks a published task closed and closes the query iterators
// it still has open (the registry's write lock, taken before, has waited
// for the point reads in flight).
func (qt *queryTask) withdraw() {
	qt.mu.Lock()
	qt.closed = true
	kills := iteratorKills(qt.iters)
	qt.iters = nil
	qt.claims = nil
	qt.mu.Unlock()
	for _, k := range kills {
		k()
	}
}

// iteratorKills lists the close funcs of a registry's open query
// iterators, to call once its lock is released.
func iteratorKills(iters map[uint64]func()) []func() {
	kills := make([]func(), 0, len(iters))
	for _, k := range iters {
		kills = append(kills, k)
	}
	return kills
}

// unpublishTask withdraws one task before it closes (a cooperative
// revocation), as unpublishTasks does for all.
func (r *Runtime) unpublishTask(id assign.TaskID) {
	q := &r.queries
	q.mu.Lock()
	qt := q.tasks[id]
	delete(q.tasks, id)
	q.mu.Unlock()
	if qt != nil {
		qt.withdraw()
	}
}

// restoredCount is how many changelog records task id restored when it
// last opened here.
func (r *Runtime) restoredCount(id assign.TaskID) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restoredRecords[id]
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
	return fn(store.QueryView(st, r.queryIsolation()))
}

// queryIsolation is what queries of task stores read: under exactly-once
// only what committed transactions wrote (the overlays' pending writes
// may still be aborted), under at-least-once also the writes of the
// records processed since the last commit. Queries never read the tasks'
// record caches, which belong to the tasks' workers.
func (r *Runtime) queryIsolation() store.Isolation {
	if r.cfg.ExactlyOnce {
		return store.ReadCommitted
	}
	return store.ReadUncommitted
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
	kill, err := open(store.QueryView(st, r.queryIsolation()))
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

// Stale reads: interactive queries may also read the stores of this
// instance's standby and warm-up copies (standby.go) when the caller
// asks for them, as Kafka Streams' enableStaleStores does. A copy's
// goroutine writes its LevelDB stores (Apply through batches) while
// queries read them; LevelDB allows that. Each copy has a registry like
// the tasks': its key-value stores are published once the copy has
// opened them and looked at its changelogs' ends once, and unpublished
// before the copy flushes and closes them (a stop, a promotion to
// active, a failure): unpublishing waits for point reads in flight and
// closes the iterators still open, which then report
// ErrIteratorInvalidated. Window, session, TTL and versioned stores of
// copies are not published: their typed stores keep state (the observed
// stream time) that only the writer of the store advances.

// copyReads is the query registry of one copy. Its zero value is an
// unpublished registry.
type copyReads struct {
	mu     sync.RWMutex
	stores map[string]any // query views by store name; nil: unpublished

	itMu  sync.Mutex // guards iters, next
	iters map[uint64]func()
	next  uint64
}

// publish makes the copy's stores readable.
func (c *copyReads) publish(stores map[string]any) {
	c.itMu.Lock()
	c.iters = map[uint64]func(){}
	c.itMu.Unlock()
	c.mu.Lock()
	c.stores = stores
	c.mu.Unlock()
}

// unpublish withdraws the stores before they close: it waits for the
// point reads in flight and closes the open iterators.
func (c *copyReads) unpublish() {
	c.mu.Lock()
	c.stores = nil
	c.mu.Unlock()
	c.itMu.Lock()
	kills := iteratorKills(c.iters)
	c.iters = nil
	c.itMu.Unlock()
	for _, k := range kills {
		k()
	}
}

// CopyRead says which copy of a task answered a stale read, and how far
// behind its changelogs it was.
type CopyRead struct {
	Task assign.TaskID
	// Role is RoleStandby or RoleWarmup.
	Role string
	// Lag is the sum over the task's changelogs of End - Offset: the
	// changelog offsets the copy had not applied when the read began,
	// against the ends it listed at its last look (every CommitInterval
	// once caught up). Offsets holding transaction markers count.
	Lag int64
	// Offsets are the changelog offsets the copy reflects (the next to
	// apply), Ends the ends of its last look.
	Offsets, Ends map[store.TopicPartition]int64
}

// CopyNotOpenError says that this instance holds no readable copy of a
// task: none is assigned here, or it is still opening its stores, or it
// has not yet listed its changelogs' ends (its lag is not known), or it
// is stopping.
type CopyNotOpenError struct {
	Task assign.TaskID
	// Role is the copy's role when one runs here, "" when none does.
	Role string
	// Reason says why the copy cannot be read.
	Reason string
}

// Error implements error.
func (e *CopyNotOpenError) Error() string {
	if e.Role == "" {
		return fmt.Sprintf("brook: no standby or warm-up copy of task %s on this instance", e.Task)
	}
	return fmt.Sprintf("brook: the %s copy of task %s cannot be read now: %s", e.Role, e.Task, e.Reason)
}

// copyOf returns the running copy of task id, nil if none.
func (r *Runtime) copyOf(id assign.TaskID) *standbyCopy {
	r.mu.Lock()
	s := r.standbys
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copies[id]
}

// HasCopy reports whether a standby or warm-up copy of task id runs on
// this instance, and its role.
func (r *Runtime) HasCopy(id assign.TaskID) (string, bool) {
	c := r.copyOf(id)
	if c == nil {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.role, true
}

// readInfo returns where copy c stands for a read.
func (c *standbyCopy) readInfo() (CopyRead, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	info := CopyRead{Task: c.id, Role: c.role, Offsets: cloneOffsets(c.offsets), Ends: cloneOffsets(c.roundEnds)}
	for tp, off := range info.Offsets {
		end, ok := info.Ends[tp]
		if !ok {
			return CopyRead{}, &CopyNotOpenError{Task: c.id, Role: c.role,
				Reason: fmt.Sprintf("the end of changelog %s is not known (for a table's source topic: the group's committed offset could not be read)", tp)}
		}
		info.Lag += max(end-off, 0)
	}
	return info, nil
}

// openCopy returns c's query view of store name, under c's read lock,
// which the caller releases; the copy's info comes with it.
func (r *Runtime) openCopy(id assign.TaskID, name string) (*standbyCopy, any, CopyRead, error) {
	c := r.copyOf(id)
	if c == nil {
		return nil, nil, CopyRead{}, &CopyNotOpenError{Task: id}
	}
	c.reads.mu.RLock()
	if c.reads.stores == nil {
		c.reads.mu.RUnlock()
		role, _ := r.HasCopy(id)
		return nil, nil, CopyRead{}, &CopyNotOpenError{Task: id, Role: role, Reason: "it is opening or catching up its stores for the first time, or stopping"}
	}
	st, ok := c.reads.stores[name]
	if !ok {
		c.reads.mu.RUnlock()
		return nil, nil, CopyRead{}, r.copyStoreError(id, name)
	}
	info, err := c.readInfo()
	if err != nil {
		c.reads.mu.RUnlock()
		return nil, nil, CopyRead{}, err
	}
	return c, st, info, nil
}

// copyStoreError says why store name of task id has no query view in
// its copy.
func (r *Runtime) copyStoreError(id assign.TaskID, name string) error {
	role, _ := r.HasCopy(id)
	spec := r.cfg.Graph.Stores[name]
	switch {
	case spec == nil:
		return fmt.Errorf("brook: no store %q", name)
	case spec.InMemory:
		return &CopyNotOpenError{Task: id, Role: role, Reason: fmt.Sprintf("store %q is in memory: copies keep persistent stores only", name)}
	case spec.Kind != "key-value":
		return &CopyNotOpenError{Task: id, Role: role, Reason: fmt.Sprintf("store %q is a %s store: copies serve key-value stores only", name, spec.Kind)}
	}
	return &CopyNotOpenError{Task: id, Role: role, Reason: fmt.Sprintf("store %q is not kept by the copy (no changelog, or not a store of the task)", name)}
}

// ReadCopyStore is ReadStore for the standby or warm-up copy of task id
// on this instance: fn gets the read-only query view of the copy's store
// (a store.KeyValueStore[K, V]; writes fail). The copy cannot stop while
// fn runs, so fn must be short. It returns the copy's role and lag, or a
// *CopyNotOpenError.
func (r *Runtime) ReadCopyStore(id assign.TaskID, name string, fn func(st any) error) (CopyRead, error) {
	c, st, info, err := r.openCopy(id, name)
	if err != nil {
		return CopyRead{}, err
	}
	defer c.reads.mu.RUnlock()
	return info, fn(st)
}

// OpenCopyIterator is OpenIterator for the standby or warm-up copy of
// task id on this instance: kill is called if the copy stops first.
func (r *Runtime) OpenCopyIterator(id assign.TaskID, name string, open func(st any) (kill func(), err error)) (done func(), info CopyRead, err error) {
	c, st, info, err := r.openCopy(id, name)
	if err != nil {
		return nil, CopyRead{}, err
	}
	defer c.reads.mu.RUnlock()
	kill, err := open(st)
	if err != nil {
		return nil, CopyRead{}, err
	}
	c.reads.itMu.Lock()
	defer c.reads.itMu.Unlock()
	if c.reads.iters == nil { // cannot happen under the read lock
		kill()
		return nil, CopyRead{}, &CopyNotOpenError{Task: id, Role: info.Role, Reason: "it is stopping"}
	}
	n := c.reads.next
	c.reads.next++
	c.reads.iters[n] = kill
	return func() {
		c.reads.itMu.Lock()
		delete(c.reads.iters, n)
		c.reads.itMu.Unlock()
	}, info, nil
}

// ReadableCopies returns the tasks whose copies on this instance can be
// read now (published), ascending.
func (r *Runtime) ReadableCopies() []assign.TaskID {
	r.mu.Lock()
	s := r.standbys
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	copies := s.list()
	var out []assign.TaskID
	for _, c := range copies {
		c.reads.mu.RLock()
		if c.reads.stores != nil {
			out = append(out, c.id)
		}
		c.reads.mu.RUnlock()
	}
	slices.SortFunc(out, assign.TaskID.Compare)
	return out
}

// CopyReadable reports whether the copy of task id on this instance can
// be read now, and its role.
func (r *Runtime) CopyReadable(id assign.TaskID) (string, bool) {
	c := r.copyOf(id)
	if c == nil {
		return "", false
	}
	c.reads.mu.RLock()
	ok := c.reads.stores != nil
	c.reads.mu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.role, ok
}
