// Package meter keeps the measurements of one running App: counters and
// histograms that the runtime, the task core and the query handler update
// with atomic adds on entries they looked up once, and that App.Fill
// copies into a metrics.AppSnapshot. Every entry is created when its task,
// node or partition first appears and lives as long as the App, so
// counters only grow. A nil *App, *Task, *Node or *Partition records
// nothing: the runtime passes nil when the App has no metrics.Registry.
package meter

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brookstream/brook/metrics"
)

// App holds an App's measurements.
type App struct {
	mu       sync.Mutex
	tasks    map[string]*Task
	restores map[restoreKey]*Restore
	queries  map[queryKey]*Histogram

	commits    *Histogram
	rebalances *Histogram
	// rebalanceSince is when the rebalance in progress began (Unix
	// nanoseconds); 0 when none is.
	rebalanceSince atomic.Int64
}

type restoreKey struct {
	task, store string
	partition   int32
}

type queryKey struct {
	route  string
	status int
}

// NewApp returns an App with nothing measured yet.
func NewApp() *App {
	return &App{
		tasks: map[string]*Task{}, restores: map[restoreKey]*Restore{}, queries: map[queryKey]*Histogram{},
		commits: NewHistogram(RequestBounds), rebalances: NewHistogram(RebalanceBounds),
	}
}

// Task returns the measurements of task id, creating them on first use.
func (a *App) Task(id string) *Task {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tasks[id]
	if t == nil {
		t = &Task{id: id, latency: NewHistogram(ProcessBounds), nodes: map[string]*Node{}, parts: map[partKey]*Partition{}}
		a.tasks[id] = t
	}
	return t
}

// ObserveCommit records one commit round that took d.
func (a *App) ObserveCommit(d time.Duration) {
	if a != nil {
		a.commits.Observe(d)
	}
}

// RebalanceStarted notes that a rebalance began at now, unless one is in
// progress already.
func (a *App) RebalanceStarted(now time.Time) {
	if a != nil {
		a.rebalanceSince.CompareAndSwap(0, now.UnixNano())
	}
}

// RebalanceDone records the rebalance in progress as ended at now (the
// new assignment arrived); it does nothing when none is in progress.
func (a *App) RebalanceDone(now time.Time) {
	if a == nil {
		return
	}
	if since := a.rebalanceSince.Swap(0); since != 0 {
		a.rebalances.Observe(time.Duration(now.UnixNano() - since))
	}
}

// ObserveQuery records one query request of route answered with status
// after d.
func (a *App) ObserveQuery(route string, status int, d time.Duration) {
	if a == nil {
		return
	}
	k := queryKey{route, status}
	a.mu.Lock()
	h := a.queries[k]
	if h == nil {
		h = NewHistogram(RequestBounds)
		a.queries[k] = h
	}
	a.mu.Unlock()
	h.Observe(d)
}

// Restore returns the restore measurements of one store partition of task
// (or "global"), creating them on first use.
func (a *App) Restore(task, store string, partition int32) *Restore {
	if a == nil {
		return nil
	}
	k := restoreKey{task, store, partition}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.restores[k]
	if r == nil {
		r = &Restore{}
		a.restores[k] = r
	}
	return r
}

// Fill copies the measurements into s: tasks, partitions (their consumed
// counts; the runtime adds offsets and lags), nodes, restores, commits,
// rebalances and queries, each sorted by its labels.
func (a *App) Fill(s *metrics.AppSnapshot) {
	if a == nil {
		return
	}
	a.mu.Lock()
	tasks := make([]*Task, 0, len(a.tasks))
	for _, t := range a.tasks {
		tasks = append(tasks, t)
	}
	restores := make(map[restoreKey]*Restore, len(a.restores))
	for k, r := range a.restores {
		restores[k] = r
	}
	queries := make(map[queryKey]*Histogram, len(a.queries))
	for k, h := range a.queries {
		queries[k] = h
	}
	a.mu.Unlock()

	slices.SortFunc(tasks, func(x, y *Task) int { return strings.Compare(x.id, y.id) })
	for _, t := range tasks {
		s.Tasks = append(s.Tasks, metrics.TaskSnapshot{
			Task: t.id, State: t.State(), RecordsProcessed: t.processed.Load(), ProcessLatency: t.latency.Snapshot(),
			TransactionsCommitted: t.txnCommitted.Load(), TransactionsAborted: t.txnAborted.Load(), Fenced: t.fenced.Load(),
		})
		t.mu.Lock()
		nodes := make([]*Node, 0, len(t.nodes))
		for _, n := range t.nodes {
			nodes = append(nodes, n)
		}
		parts := make([]*Partition, 0, len(t.parts))
		for _, p := range t.parts {
			parts = append(parts, p)
		}
		t.mu.Unlock()
		slices.SortFunc(nodes, func(x, y *Node) int { return strings.Compare(x.name, y.name) })
		for _, n := range nodes {
			ns := metrics.NodeSnapshot{
				Task: t.id, Node: n.name, Kind: n.kind,
				RecordsProcessed: n.processed.Load(), RecordsProduced: n.produced.Load(), DeadLettered: n.deadLettered.Load(),
			}
			for _, r := range metrics.DropReasons() {
				ns.Dropped.Add(r, n.dropped[r].Load())
			}
			if n.e2e != nil {
				ns.EndToEndLatency = n.e2e.Snapshot()
			}
			s.Nodes = append(s.Nodes, ns)
		}
		slices.SortFunc(parts, func(x, y *Partition) int {
			return cmp.Or(strings.Compare(x.topic, y.topic), cmp.Compare(x.partition, y.partition))
		})
		for _, p := range parts {
			s.Partitions = append(s.Partitions, metrics.PartitionSnapshot{
				Task: t.id, Topic: p.topic, Partition: p.partition, RecordsConsumed: p.consumed.Load(),
				Position: -1, Committed: -1, End: -1, Lag: -1, CommittedLag: -1,
			})
		}
	}

	rkeys := make([]restoreKey, 0, len(restores))
	for k := range restores {
		rkeys = append(rkeys, k)
	}
	slices.SortFunc(rkeys, func(x, y restoreKey) int {
		return cmp.Or(strings.Compare(x.task, y.task), strings.Compare(x.store, y.store), cmp.Compare(x.partition, y.partition))
	})
	for _, k := range rkeys {
		rs := restores[k].snapshot()
		rs.Task, rs.Store, rs.Partition = k.task, k.store, k.partition
		s.Restores = append(s.Restores, rs)
	}

	s.Commits = a.commits.Snapshot()
	s.Rebalances = a.rebalances.Snapshot()

	qkeys := make([]queryKey, 0, len(queries))
	for k := range queries {
		qkeys = append(qkeys, k)
	}
	slices.SortFunc(qkeys, func(x, y queryKey) int {
		return cmp.Or(strings.Compare(x.route, y.route), cmp.Compare(x.status, y.status))
	})
	for _, k := range qkeys {
		s.Queries = append(s.Queries, metrics.QuerySnapshot{Route: k.route, Status: k.status, Latency: queries[k].Snapshot()})
	}
}

// Task holds one task's measurements.
type Task struct {
	id        string
	processed atomic.Int64
	latency   *Histogram

	txnCommitted, txnAborted, fenced atomic.Int64
	state                            atomic.Int32 // taskState

	// now is the wall-clock time (Unix nanoseconds) at which the task's
	// worker began the current record or punctuation: sinks measure
	// end-to-end latency from it. Only the task's worker goroutine
	// touches it (one worker at a time, handed over at session
	// boundaries).
	now int64

	mu    sync.Mutex
	nodes map[string]*Node
	parts map[partKey]*Partition
}

type partKey struct {
	topic     string
	partition int32
}

type taskState int32

const (
	stateClosed taskState = iota
	stateRestoring
	stateRunning
)

// Restoring, Running and Closed set the task's state.
func (t *Task) Restoring() { t.setState(stateRestoring) }

// Running marks the task open and processing.
func (t *Task) Running() { t.setState(stateRunning) }

// Closed marks the task closed.
func (t *Task) Closed() { t.setState(stateClosed) }

func (t *Task) setState(s taskState) {
	if t != nil {
		t.state.Store(int32(s))
	}
}

// State returns the task's state as metrics.TaskSnapshot reports it.
func (t *Task) State() string {
	switch taskState(t.state.Load()) {
	case stateRestoring:
		return metrics.TaskRestoring
	case stateRunning:
		return metrics.TaskRunning
	}
	return metrics.TaskClosed
}

// Node returns the measurements of the task's node name of kind
// ("source", "processor", "sink"), creating them on first use.
func (t *Task) Node(name, kind string) *Node {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.nodes[name]
	if n == nil {
		n = &Node{task: t, name: name, kind: kind}
		if kind == "sink" {
			n.e2e = NewHistogram(EndToEndBounds)
		}
		t.nodes[name] = n
	}
	return n
}

// Partition returns the measurements of one input partition of the task,
// creating them on first use.
func (t *Task) Partition(topic string, partition int32) *Partition {
	if t == nil {
		return nil
	}
	k := partKey{topic, partition}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[k]
	if p == nil {
		p = &Partition{topic: topic, partition: partition}
		t.parts[k] = p
	}
	return p
}

// Begin notes when the worker began a record or a punctuation (see now).
func (t *Task) Begin(at time.Time) {
	if t != nil {
		t.now = at.UnixNano()
	}
}

// Processed counts one processed record that took d.
func (t *Task) Processed(d time.Duration) {
	if t != nil {
		t.processed.Add(1)
		t.latency.Observe(d)
	}
}

// TxnCommitted, TxnAborted and Fenced count the task's transactions and
// fences.
func (t *Task) TxnCommitted() {
	if t != nil {
		t.txnCommitted.Add(1)
	}
}

// TxnAborted counts an aborted transaction.
func (t *Task) TxnAborted() {
	if t != nil {
		t.txnAborted.Add(1)
	}
}

// Fenced counts a fence.
func (t *Task) Fenced() {
	if t != nil {
		t.fenced.Add(1)
	}
}

// Node holds one node's measurements in one task.
type Node struct {
	task       *Task
	name, kind string

	processed, produced, deadLettered atomic.Int64
	dropped                           [5]atomic.Int64 // by metrics.DropReason
	e2e                               *Histogram      // sinks only
}

// Received counts a record the node received.
func (n *Node) Received() {
	if n != nil {
		n.processed.Add(1)
	}
}

// Produced counts a record a sink handed to the producer, whose timestamp
// is ts, and records its end-to-end latency.
func (n *Node) Produced(ts time.Time) {
	if n == nil {
		return
	}
	n.produced.Add(1)
	if n.e2e != nil && !ts.IsZero() {
		n.e2e.Observe(time.Duration(n.task.now - ts.UnixNano()))
	}
}

// DeadLettered counts k records an error handler wrote elsewhere for a
// failure at this node.
func (n *Node) DeadLettered(k int) {
	if n != nil {
		n.deadLettered.Add(int64(k))
	}
}

// Dropped counts a record the node dropped for reason.
func (n *Node) Dropped(reason metrics.DropReason) {
	if n != nil && reason >= 0 && int(reason) < len(n.dropped) {
		n.dropped[reason].Add(1)
	}
}

// Partition holds one input partition's measurements.
type Partition struct {
	topic     string
	partition int32
	consumed  atomic.Int64
}

// Consumed counts a record fetched into the task's queue.
func (p *Partition) Consumed() {
	if p != nil {
		p.consumed.Add(1)
	}
}

// Restore holds one store partition's restore measurements.
type Restore struct {
	records   atomic.Int64
	remaining atomic.Int64
	restoring atomic.Bool

	mu             sync.Mutex
	started, done  time.Time
	last, lastSeen int64
}

// Begin notes that a restore of the store partition begins at now.
func (r *Restore) Begin(now time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started, r.done, r.last, r.lastSeen = now, time.Time{}, 0, 0
	r.remaining.Store(0)
	r.restoring.Store(true)
}

// Progress records the progress of the restore that Begin began: it has
// applied records changelog records so far and has remaining offsets left
// to read; 0 remaining ends it.
func (r *Restore) Progress(now time.Time, records, remaining int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if records < r.lastSeen {
		r.lastSeen = 0 // the restore started over (store.Restore wiped and began again)
	}
	if d := records - r.lastSeen; d > 0 {
		r.records.Add(d)
		r.lastSeen, r.last = records, records
	}
	r.remaining.Store(max(remaining, 0))
	if remaining <= 0 {
		r.restoring.Store(false)
		r.done = now
	}
}

func (r *Restore) snapshot() metrics.RestoreSnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return metrics.RestoreSnapshot{
		Records: r.records.Load(), Remaining: r.remaining.Load(), Restoring: r.restoring.Load(),
		Started: r.started, Done: r.done, LastRecords: r.last,
	}
}
