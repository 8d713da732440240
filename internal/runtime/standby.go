// standby.go: standby and warm-up tasks. The assignor (internal/assign,
// "Standbys and warm-ups") gives a member, besides its active tasks,
// tasks to keep a copy of: standbys (so that the task can fail over here
// and restore only the tail) and warm-ups (so that it can move here once
// caught up). For each, the standby runner keeps the task's persistent
// stores current from their changelogs without processing anything:
//
//   - Reading. Each changelog partition is read from the local checkpoint
//     to its end, with the application's isolation level (read_committed
//     under exactly-once: only committed transactions, the records the
//     active's own stores hold), and applied with the store's Apply (the
//     window, session and TTL layouts differ from the changelog's). Then
//     again every CommitInterval, from where it stopped.
//   - Checkpointing. After every batch written, the engine is flushed and
//     the task's checkpoint rewritten (store.WriteCheckpoint), so a later
//     openTask of the task, here, restores only the tail; the offsets are
//     also this member's warm state for the task (r.restored), which the
//     next join reports: that keeps standbys sticky and makes the leader
//     fail tasks over to them.
//   - Tables. A table whose changelog is its source topic is read only up
//     to the group's committed offset of that partition, as openTask
//     restores it: the records after it are processed again by the next
//     active, which must see the table as it was then. When the committed
//     offset cannot be read (under exactly-once a pending transaction of
//     the active hides it) the table waits for the next round.
//   - In-memory stores have nothing to keep: their data does not outlive
//     a task, so a copy here would be lost as the task opens anyway
//     (they restore in full wherever the task opens). Stores without a
//     changelog cannot be kept either. A task whose stores are all of
//     these kinds is Stateless for the assignor and gets no standbys.
//   - Lifecycle. The runner outlives sessions: a standby keeps catching
//     up while the group rebalances. At each Setup, before any task
//     opens, reconcile stops the copies that are no longer assigned and
//     those of tasks now active here (closing their engines after a last
//     flush and checkpoint, which releases the LevelDB locks openTask
//     needs), then starts the new ones. A stopped copy's files stay: they
//     are warm state, reported until another copy or the task replaces
//     them.

package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/store/leveldb"
)

// Roles of a task on this instance (StandbyStatus.Role, and the status
// page's).
const (
	RoleActive  = "active"
	RoleStandby = "standby"
	RoleWarmup  = "warm-up"
)

// standbyChunk bounds the changelog offsets one step of a copy reads
// before it writes a checkpoint: a copy stopped for a promotion (or a
// crash) loses at most this much of its progress.
const standbyChunk = 50_000

// standbyRetry is how long a copy that failed waits before it opens its
// stores again.
const standbyRetry = 5 * time.Second

// taskChangelog is one persistent, changelogged store of a task.
type taskChangelog struct {
	spec  *task.StoreSpec
	tp    store.TopicPartition
	table bool // tp is the table's source topic
}

// persistentChangelogs returns the stores of task id that a standby can
// keep: persistent stores with a changelog (a changelog topic, or a
// table's source topic), in the sub-topology's store order.
func (r *Runtime) persistentChangelogs(id assign.TaskID) []taskChangelog {
	var out []taskChangelog
	for _, sub := range r.cfg.Graph.SubTopologies {
		if int32(sub.ID) != id.Group {
			continue
		}
		for _, name := range sub.Stores {
			spec := r.cfg.Graph.Stores[name]
			if spec == nil || spec.InMemory || spec.Global || (!spec.Logged && spec.SourceTopic == "") {
				continue
			}
			tc := taskChangelog{spec: spec, tp: store.TopicPartition{Topic: store.ChangelogTopic(r.cfg.ApplicationID, name), Partition: id.Partition}}
			if spec.SourceTopic != "" {
				tc.tp.Topic, tc.table = spec.SourceTopic, true
			}
			out = append(out, tc)
		}
	}
	return out
}

// stateless reports whether sub-topology st has no state a standby can
// keep (persistentChangelogs is empty for each of its tasks).
func (r *Runtime) stateless(st *task.SubTopology) bool {
	for _, name := range st.Stores {
		spec := r.cfg.Graph.Stores[name]
		if spec != nil && !spec.InMemory && !spec.Global && (spec.Logged || spec.SourceTopic != "") {
			return false
		}
	}
	return true
}

// StandbyStatus is where one standby or warm-up copy on this instance
// stands.
type StandbyStatus struct {
	Task assign.TaskID
	// Role is RoleStandby or RoleWarmup.
	Role string
	// Offsets are the changelog offsets the local stores reflect (the
	// next offset to read), Ends the changelogs' end offsets at the last
	// look (the last stable offset under exactly-once; for a table, the
	// group's committed offset of its source partition).
	Offsets, Ends map[store.TopicPartition]int64
	// Lag is the sum over the changelogs of End - Offset, never negative.
	Lag int64
	// Records counts the changelog records applied since the copy
	// started on this instance.
	Records int64
	// CaughtUp is set once the copy has reached every end at least once.
	CaughtUp bool
	// Err is the last failure, nil when the last round succeeded.
	Err error
}

// standbyRunner keeps this instance's standby and warm-up copies.
type standbyRunner struct {
	r *Runtime
	// ctx is Run's context: copies outlive sessions.
	ctx context.Context
	// interval is the pause between rounds of a caught-up copy.
	interval time.Duration

	mu     sync.Mutex
	copies map[assign.TaskID]*standbyCopy
	// parked holds the open engines of copies stopped because their task
	// became active here, by store folder, for openTask to take
	// (takeParked) instead of closing and reopening them: a LevelDB
	// reopened replays its journal, up to its write buffer of writes,
	// which took seconds on a failover.
	parked map[string]store.Engine
}

// standbyCopy is one running copy.
type standbyCopy struct {
	id     assign.TaskID
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}
	// promoted is set before cancel when the copy stops because its task
	// becomes active here: its engines are parked, not closed.
	promoted atomic.Bool

	mu       sync.Mutex
	role     string
	offsets  map[store.TopicPartition]int64
	ends     map[store.TopicPartition]int64
	records  int64
	caughtUp bool
	err      error
	// roundEnds are the ends of the last complete round: every
	// changelog's end (a table's stops at the group's committed offset;
	// absent when that was not known), for the lag of stale reads.
	roundEnds map[store.TopicPartition]int64

	// reads publishes the copy's key-value stores to stale queries
	// (query.go).
	reads copyReads
}

func newStandbyRunner(r *Runtime, ctx context.Context) *standbyRunner {
	iv := r.cfg.CommitInterval
	if iv <= 0 {
		iv = time.Second
	}
	return &standbyRunner{r: r, ctx: ctx, interval: iv, copies: map[assign.TaskID]*standbyCopy{}}
}

// reconcile makes the running copies those of a: it stops (and waits
// for) every copy that a no longer lists or whose task a makes active
// here, then starts the new ones, except those of busy tasks (still open
// here as active tasks, about to be revoked: their copies start at a
// later call, once they have closed). It returns once every stopped copy
// has released its stores, so the active tasks may open them.
func (s *standbyRunner) reconcile(a assign.MemberAssignment, busy map[assign.TaskID]bool) {
	if s == nil {
		return
	}
	want := map[assign.TaskID]string{}
	for _, t := range a.Standby {
		want[t] = RoleStandby
	}
	for _, t := range a.Warmup {
		want[t] = RoleWarmup
	}
	for t := range busy {
		delete(want, t)
	}
	for _, t := range a.Tasks {
		if role, ok := want[t]; ok {
			// The assignor never does this (Strategy.OnAssignment checks
			// it); were it to, the active task wins.
			s.r.log.Error("brook: task assigned both active and as a copy here; running it active only",
				"task", t.String(), "role", role)
			delete(want, t)
		}
	}
	active := make(map[assign.TaskID]bool, len(a.Tasks))
	for _, t := range a.Tasks {
		active[t] = true
	}
	s.mu.Lock()
	var stop []*standbyCopy
	for id, c := range s.copies {
		if _, ok := want[id]; !ok {
			if active[id] {
				c.promoted.Store(true)
			}
			stop = append(stop, c)
			delete(s.copies, id)
		}
	}
	s.mu.Unlock()
	began := time.Now()
	for _, c := range stop {
		c.cancel()
	}
	for _, c := range stop {
		<-c.done
	}
	if len(stop) > 0 {
		s.r.log.Info("brook: standby copies stopped", "copies", len(stop), "took", time.Since(began).Round(time.Millisecond).String())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	for _, id := range slices.SortedFunc(func(yield func(assign.TaskID) bool) {
		for id := range want {
			if !yield(id) {
				return
			}
		}
	}, assign.TaskID.Compare) {
		role := want[id]
		if c, ok := s.copies[id]; ok {
			c.mu.Lock()
			c.role = role
			c.mu.Unlock()
			continue
		}
		if len(s.r.persistentChangelogs(id)) == 0 {
			continue // nothing to keep (in-memory or unlogged stores only)
		}
		ctx, cancel := context.WithCancel(s.ctx)
		c := &standbyCopy{id: id, dir: s.r.taskDir(id), cancel: cancel, done: make(chan struct{}),
			wake: make(chan struct{}, 1), role: role}
		s.copies[id] = c
		go func() { // owned by the runner: stopped by reconcile or stopAll
			defer close(c.done)
			s.keep(ctx, c)
		}()
	}
}

// stopAll stops every copy and waits for them, and closes the engines
// no task took.
func (s *standbyRunner) stopAll() {
	if s == nil {
		return
	}
	s.reconcile(assign.MemberAssignment{}, nil)
	s.closeParked()
}

// park keeps the open engine of a promoted copy's store for openTask.
func (s *standbyRunner) park(dir string, e store.Engine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parked == nil {
		s.parked = map[string]store.Engine{}
	}
	if old := s.parked[dir]; old != nil {
		_ = old.Close()
	}
	s.parked[dir] = e
}

// takeParked returns (and forgets) the parked engine of the store folder
// dir, or nil.
func (s *standbyRunner) takeParked(dir string) store.Engine {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.parked[dir]
	delete(s.parked, dir)
	return e
}

// closeParked closes the parked engines no task took (the task did not
// open here after all).
func (s *standbyRunner) closeParked() {
	if s == nil {
		return
	}
	s.mu.Lock()
	parked := s.parked
	s.parked = nil
	s.mu.Unlock()
	for dir, e := range parked {
		if err := e.Close(); err != nil {
			s.r.log.Warn("brook: close a standby store no task took", "action", "nothing: the next open restores what the close could not flush", "store", dir, "err", err)
		}
	}
}

// parkedOpener opens a store from the engine a promoted standby copy
// left open for it, when there is one, else as its Opener does.
type parkedOpener struct {
	store.Opener
	dir string
	sb  *standbyRunner
}

// HasLocalData implements store.LocalDataChecker: a parked engine is
// local data.
func (o parkedOpener) HasLocalData() (bool, error) {
	if o.sb == nil {
		return hasLocalData(o.Opener)
	}
	o.sb.mu.Lock()
	_, parked := o.sb.parked[o.dir]
	o.sb.mu.Unlock()
	if parked {
		return true, nil
	}
	return hasLocalData(o.Opener)
}

// Open implements store.Opener.
func (o parkedOpener) Open() (store.Engine, error) {
	if e := o.sb.takeParked(o.dir); e != nil {
		return e, nil
	}
	return o.Opener.Open()
}

// list returns the running copies.
func (s *standbyRunner) list() []*standbyCopy {
	s.mu.Lock()
	defer s.mu.Unlock()
	copies := make([]*standbyCopy, 0, len(s.copies))
	for _, c := range s.copies {
		copies = append(copies, c)
	}
	return copies
}

// status returns where every copy stands, by task.
func (s *standbyRunner) status() []StandbyStatus {
	if s == nil {
		return nil
	}
	copies := s.list()
	out := make([]StandbyStatus, 0, len(copies))
	for _, c := range copies {
		c.mu.Lock()
		st := StandbyStatus{Task: c.id, Role: c.role, Offsets: cloneOffsets(c.offsets), Ends: cloneOffsets(c.ends),
			Records: c.records, CaughtUp: c.caughtUp, Err: c.err}
		c.mu.Unlock()
		st.Lag = copyLag(st.Offsets, st.Ends)
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Task.Compare(out[j].Task) < 0 })
	return out
}

func cloneOffsets(m map[store.TopicPartition]int64) map[store.TopicPartition]int64 {
	out := make(map[store.TopicPartition]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// copyLag sums End - Offset over the changelogs with a known end.
func copyLag(offsets, ends map[store.TopicPartition]int64) int64 {
	var lag int64
	for tp, end := range ends {
		lag += max(end-offsets[tp], 0)
	}
	return lag
}

// StandbyStatus returns where this instance's standby and warm-up copies
// stand, by task.
func (r *Runtime) StandbyStatus() []StandbyStatus {
	r.mu.Lock()
	s := r.standbys
	r.mu.Unlock()
	return s.status()
}

// keep runs one copy until ctx ends: open its stores, catch up, and
// follow the changelogs every interval. A failure closes the stores,
// is logged, and the copy starts again after standbyRetry.
func (s *standbyRunner) keep(ctx context.Context, c *standbyCopy) {
	for ctx.Err() == nil {
		err := s.follow(ctx, c)
		if err == nil || ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		s.r.log.Warn("brook: standby copy failed; it starts again", "action",
			"nothing if it recovers: the copy only shortens a later restore; if it repeats, check the brokers and the state directory's disk",
			"task", c.id.String(), "err", err, "retry_in", standbyRetry.String())
		if !sleepCtx(ctx, standbyRetry) {
			return
		}
	}
}

// openStore is one store of a copy, open.
type openStore struct {
	taskChangelog
	engine store.Engine
	reader store.ChangelogReader
}

// follow opens c's stores (restoring what their checkpoint lacks, in
// steps of standbyChunk) and follows the changelogs until ctx ends (nil)
// or a round fails. The stores are flushed, checkpointed and closed when
// it returns.
func (s *standbyRunner) follow(ctx context.Context, c *standbyCopy) (err error) {
	r := s.r
	if err := r.ensureDir(c.dir); err != nil {
		return err
	}
	checkpoint, err := store.ReadCheckpoint(c.dir)
	if err != nil {
		var ce *store.CheckpointError
		if !errors.As(err, &ce) {
			return fmt.Errorf("brook: standby %s: %w", c.id, err)
		}
		checkpoint = map[store.TopicPartition]int64{}
	}
	if err := store.RemoveCheckpoint(c.dir); err != nil {
		return fmt.Errorf("brook: standby %s: %w", c.id, err)
	}
	var stores []*openStore
	offsets := map[store.TopicPartition]int64{}
	defer func() {
		// Queries first: point reads in flight finish, open iterators
		// are invalidated, before the engines close.
		c.reads.unpublish()
		// The last checkpoint: every engine is flushed first, then the
		// offsets they reflect written; the engines close, releasing the
		// LevelDB locks for openTask.
		var engines []store.Engine
		for _, st := range stores {
			engines = append(engines, st.engine)
		}
		if len(engines) > 0 {
			if cerr := store.FlushAndCheckpoint(c.dir, engines, offsets); cerr != nil {
				err = errors.Join(err, fmt.Errorf("brook: standby %s: %w", c.id, cerr))
			}
		}
		for i, e := range engines {
			if c.promoted.Load() && err == nil {
				s.park(filepath.Join(c.dir, stores[i].spec.Name), e)
				continue
			}
			if cerr := e.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("brook: standby %s: close store: %w", c.id, cerr))
			}
		}
		if ctx.Err() != nil && err != nil {
			r.log.Warn("brook: standby copy stopped with an error", "action",
				"nothing: the task restores what its checkpoint lacks wherever it opens", "task", c.id.String(), "err", err)
		}
	}()
	committed := s.tableEnds(ctx, c.id)
	for _, tc := range r.persistentChangelogs(c.id) {
		reader := changelog.NewReader(r.client, tc.tp.Topic, tc.tp.Partition, r.cfg.Sarama.Consumer.IsolationLevel)
		cp, has := checkpoint[tc.tp]
		begin, err := reader.BeginOffset(ctx)
		if err != nil {
			return fmt.Errorf("brook: standby %s: %w", c.id, err)
		}
		from := begin
		if has {
			from = max(cp, begin)
		}
		upTo := from + standbyChunk
		if tc.table {
			// Never past the group's committed offset (unknown: restore
			// nothing now; the rounds catch up).
			upTo = min(upTo, from)
			if co, ok := committed[tc.tp]; ok {
				upTo = min(from+standbyChunk, max(co, from))
			}
		}
		// The first step opens the engine (wiping it when the local
		// state cannot be trusted, as openTask would) and restores at
		// most standbyChunk offsets; the rest follows in steps.
		res, err := store.Restore(ctx, store.RestoreConfig{
			Store: tc.spec.Name, Changelog: tc.tp, Apply: tc.spec.Apply,
			Opener: parkedOpener{Opener: leveldb.Opener(filepath.Join(c.dir, tc.spec.Name), r.cfg.LevelDB),
				dir: filepath.Join(c.dir, tc.spec.Name), sb: s},
			Reader:     restoreUpTo{ChangelogReader: reader, end: upTo},
			Checkpoint: cp, HasCheckpoint: has, Logger: r.log,
		})
		if err != nil {
			return fmt.Errorf("brook: standby %s: %w", c.id, err)
		}
		stores = append(stores, &openStore{taskChangelog: tc, engine: res.Engine, reader: reader})
		offsets[tc.tp] = res.Offset
		s.noteProgress(c, offsets, nil, res.Records)
	}
	if err := store.WriteCheckpoint(c.dir, offsets); err != nil {
		return fmt.Errorf("brook: standby %s: %w", c.id, err)
	}
	views, err := s.queryViews(stores)
	if err != nil {
		return fmt.Errorf("brook: standby %s: %w", c.id, err)
	}
	published := false
	for {
		caughtUp, err := s.round(ctx, c, stores, offsets)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !published {
			// Readable once the copy has looked at its ends: a stale
			// read states its lag.
			c.reads.publish(views)
			published = true
		}
		if caughtUp {
			c.mu.Lock()
			c.caughtUp, c.err = true, nil
			c.mu.Unlock()
			t := time.NewTimer(s.interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-c.wake:
				t.Stop()
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return nil
		}
	}
}

// round reads each store's changelog from its offset towards its end, at
// most standbyChunk offsets per store, checkpointing after each store's
// step. It reports whether every store reached its end.
func (s *standbyRunner) round(ctx context.Context, c *standbyCopy, stores []*openStore, offsets map[store.TopicPartition]int64) (bool, error) {
	ends := map[store.TopicPartition]int64{}
	committed := s.tableEnds(ctx, c.id)
	all := true
	for _, st := range stores {
		end, err := st.reader.EndOffset(ctx)
		if err != nil {
			return false, fmt.Errorf("brook: standby %s: %w", c.id, err)
		}
		if st.table {
			co, ok := committed[st.tp]
			if !ok {
				all = false
				continue
			}
			end = min(end, max(co, 0))
		}
		from := offsets[st.tp]
		if st.table && end < from {
			// The committed offset is behind the copy (it holds the
			// active's checkpoint, written at its commits): nothing to
			// read yet.
			end = from
		}
		ends[st.tp] = end
		if end < from {
			// The changelog lost what the copy holds (deleted and
			// recreated, or truncated): the copy starts over.
			return false, fmt.Errorf("brook: standby %s: %s ends at %d, below the local copy's offset %d", c.id, st.tp, end, from)
		}
		to := min(end, from+standbyChunk)
		if to < end {
			all = false
		}
		if from >= to {
			continue
		}
		n, err := s.apply(ctx, c, st, from, to, offsets)
		s.noteProgress(c, offsets, ends, n)
		if err != nil {
			return false, err
		}
	}
	s.noteProgress(c, offsets, ends, 0)
	c.mu.Lock()
	c.roundEnds = cloneOffsets(ends)
	c.mu.Unlock()
	return all, nil
}

// queryViews builds the typed stores that stale queries read over the
// copy's open engines, with the options a task's query view has (the
// serde topic; no changelog, no cache): key-value stores only (see
// "Stale reads" in query.go), as read-only query views.
func (s *standbyRunner) queryViews(stores []*openStore) (map[string]any, error) {
	views := map[string]any{}
	for _, st := range stores {
		if st.spec.Kind != "key-value" || st.spec.Open == nil {
			continue
		}
		typed, err := st.spec.Open(st.engine, store.WithSerdeTopic(st.spec.SerdeTopic(s.r.cfg.ApplicationID)))
		if err != nil {
			return nil, fmt.Errorf("open store %q for queries: %w", st.spec.Name, err)
		}
		views[st.spec.Name] = store.QueryView(typed, store.ReadUncommitted)
	}
	return views, nil
}

// tableEnds returns the group's committed offsets of the table source
// partitions of task id: where a table's copy must stop. A failure (under
// exactly-once, a pending transaction of the active hides the offsets)
// gives none: the tables wait for the next round.
func (s *standbyRunner) tableEnds(ctx context.Context, id assign.TaskID) map[store.TopicPartition]int64 {
	var tables []store.TopicPartition
	for _, tc := range s.r.persistentChangelogs(id) {
		if tc.table {
			tables = append(tables, tc.tp)
		}
	}
	if len(tables) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, s.interval+5*time.Second)
	defer cancel()
	committed, err := s.r.committedOffsets(cctx, tables)
	if err != nil {
		if ctx.Err() == nil {
			s.r.log.Debug("brook: standby: committed offsets of table sources not known; tables wait for the next round", "task", id.String(), "err", err)
		}
		return nil
	}
	return committed
}

// apply reads st's changelog over [from, to) into its engine in batches;
// after each batch written it flushes the engine and checkpoints the
// copy, so offsets never run ahead of the data. It returns the records
// applied.
func (s *standbyRunner) apply(ctx context.Context, c *standbyCopy, st *openStore, from, to int64, offsets map[store.TopicPartition]int64) (int64, error) {
	b := st.engine.NewBatch()
	next := from
	var n int64
	write := func(upTo int64) error {
		if b.Len() > 0 {
			if err := b.Write(); err != nil {
				return err
			}
			b.Reset()
		}
		if upTo == offsets[st.tp] {
			return nil
		}
		if err := st.engine.Flush(); err != nil {
			return err
		}
		offsets[st.tp] = upTo
		return store.WriteCheckpoint(c.dir, offsets)
	}
	err := st.reader.Read(ctx, from, to, func(recs []store.ChangelogRecord) error {
		for i := range recs {
			rec := &recs[i]
			if rec.Offset < next || rec.Offset >= to {
				continue
			}
			next = rec.Offset + 1
			if rec.Key == nil {
				continue // a store cannot hold a null key (store.Restore skips them too)
			}
			var err error
			switch {
			case st.spec.Apply != nil:
				err = st.spec.Apply(b, rec.Key, rec.Value)
			case rec.Value == nil:
				b.Delete(rec.Key)
			default:
				b.Put(rec.Key, rec.Value)
			}
			if err != nil {
				return fmt.Errorf("%s offset %d: %w", st.tp, rec.Offset, err)
			}
			n++
			if b.Len() >= 10_000 {
				if err := write(next); err != nil {
					return err
				}
			}
		}
		return ctx.Err()
	})
	if err != nil {
		if ctx.Err() == nil {
			return n, fmt.Errorf("brook: standby %s: %w", c.id, err)
		}
		// Stopped: the records read since the last batch written are
		// not kept; the last checkpoint stands.
		return n, err
	}
	// Every offset below to is passed (markers and compacted offsets
	// included).
	if err := write(to); err != nil {
		return n, fmt.Errorf("brook: standby %s: %w", c.id, err)
	}
	return n, nil
}

// noteProgress publishes a copy's offsets (its warm state for the
// assignor and the status) and, when known, its ends.
func (s *standbyRunner) noteProgress(c *standbyCopy, offsets, ends map[store.TopicPartition]int64, records int64) {
	byTopic := make(map[string]int64, len(offsets))
	for tp, o := range offsets {
		byTopic[tp.Topic] = o
	}
	s.r.mu.Lock()
	s.r.restored[c.id] = byTopic
	s.r.mu.Unlock()
	c.mu.Lock()
	c.offsets = cloneOffsets(offsets)
	if ends != nil {
		c.ends = cloneOffsets(ends)
	}
	c.records += records
	c.mu.Unlock()
}

// warmupsCaughtUp reports whether this instance has warm-ups and every
// one of them is within lag of its changelogs' ends.
func (s *standbyRunner) warmupsCaughtUp(lag int64) bool {
	if s == nil {
		return false
	}
	n := 0
	for _, st := range s.status() {
		if st.Role != RoleWarmup {
			continue
		}
		n++
		if len(st.Ends) == 0 || st.Lag > lag {
			return false
		}
	}
	return n > 0
}

// endOffsets is the assignor's Config.EndOffsets: for each task, the sum
// of the end offsets of the changelogs a standby keeps
// (persistentChangelogs), listed from the partitions' leaders with one
// ListOffsets request per broker (the last stable offset under
// exactly-once). A table's source partition counts up to the group's
// committed offset, which is where its restore stops; when that cannot
// be read, its end offset is used.
func (r *Runtime) endOffsets(ctx context.Context, tasks []assign.TaskID) (map[assign.TaskID]int64, error) {
	byTask := map[assign.TaskID][]taskChangelog{}
	var tps, tables []store.TopicPartition
	for _, id := range tasks {
		for _, tc := range r.persistentChangelogs(id) {
			byTask[id] = append(byTask[id], tc)
			tps = append(tps, tc.tp)
			if tc.table {
				tables = append(tables, tc.tp)
			}
		}
	}
	ends, err := r.changelogEnds(ctx, tps)
	if err != nil {
		return nil, err
	}
	if len(tables) > 0 {
		if committed, err := r.committedOffsets(ctx, tables); err == nil {
			for tp, c := range committed {
				ends[tp] = min(ends[tp], max(c, 0))
			}
		} else if ctx.Err() != nil {
			return nil, err
		}
	}
	out := make(map[assign.TaskID]int64, len(byTask))
	for id, tcs := range byTask {
		var sum int64
		for _, tc := range tcs {
			sum += ends[tc.tp]
		}
		out[id] = sum
	}
	return out, nil
}

// changelogEnds lists the end offsets of tps (the last stable offsets
// under read_committed) with listEnds (one request per partition leader),
// returning when ctx ends even if a request is still waiting for its
// answer (it ends by the client's read time-out or when Run closes the
// client).
func (r *Runtime) changelogEnds(ctx context.Context, tps []store.TopicPartition) (map[store.TopicPartition]int64, error) {
	out := make(map[store.TopicPartition]int64, len(tps))
	if len(tps) == 0 {
		return out, nil
	}
	keys := make([]tpKey, len(tps))
	for i, tp := range tps {
		keys[i] = tpKey{tp.Topic, tp.Partition}
	}
	type result struct {
		ends map[tpKey]int64
		err  error
	}
	done := make(chan result, 1)
	client := r.client
	go func() { // bounded by the client's read time-out, or Run closing it
		ends, err := r.listEnds(ctx, client, keys)
		done <- result{ends, err}
	}()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("brook: changelog end offsets: %w", ctx.Err())
	case res := <-done:
		if res.err != nil {
			return nil, fmt.Errorf("brook: changelog end offsets: %w", res.err)
		}
		for k, e := range res.ends {
			out[store.TopicPartition{Topic: k.topic, Partition: k.partition}] = e
		}
		return out, nil
	}
}
