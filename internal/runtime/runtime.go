package runtime

import (
	"context"
	"errors"
	"fmt"
	"github.com/brookstream/brook/store/leveldb"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/meter"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/store"
)

// State is the runtime's lifecycle state.
type State int

// The states, in the order an application usually passes them.
const (
	Created State = iota
	Rebalancing
	Restoring
	Running
	Error
	Stopped
)

// String returns the state's name in lower case.
func (s State) String() string {
	switch s {
	case Created:
		return "created"
	case Rebalancing:
		return "rebalancing"
	case Restoring:
		return "restoring"
	case Running:
		return "running"
	case Error:
		return "error"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Config configures a Runtime. The public topology.Config is translated
// into it.
type Config struct {
	Graph          *task.Graph
	ApplicationID  string
	Brokers        []string
	Sarama         *sarama.Config // base client config: version, TLS, SASL, client id
	StateDir       string
	CommitInterval time.Duration
	// MaxTaskIdle bounds how long a task waits for a partition with
	// unfetched records before merging past it: 0 no bound (the records
	// on the broker are waited for; offsets that hold none, such as
	// transaction markers, are found by reading them); negative: never
	// wait (recordQueue).
	MaxTaskIdle time.Duration
	// RepartitionPurgeInterval is how often, at most, consumed records of
	// repartition topics are deleted (default
	// DefaultRepartitionPurgeInterval).
	RepartitionPurgeInterval time.Duration
	Workers                  int
	Endpoint                 string
	// MaxBuffered is the number of records buffered per partition before
	// its consumer is held back.
	MaxBuffered int
	// PunctuateInterval is how often wall-clock punctuators are checked.
	PunctuateInterval time.Duration
	Logger            *slog.Logger
	OnState           func(from, to State)
	OnRestore         func(store.RestoreProgress)
	// OnAssignment is called with this instance's part of every new
	// assignment (its generation and tasks) when its session starts.
	OnAssignment func(assign.MemberAssignment)
	// Clock returns wall-clock time; nil means time.Now.
	Clock func() time.Time
	// LevelDB tunes every persistent store's engine.
	LevelDB leveldb.Options
	// SerdePreflight checks the topology's serdes (Avro schemas against
	// the registry) before the group is joined; nil skips it.
	SerdePreflight func(context.Context) error
	// ExactlyOnce selects the exactly-once commit protocol (txn.go): one
	// transactional producer per task, read_committed consumers and
	// restores, store writes kept in memory until their transaction
	// commits.
	ExactlyOnce bool
	// ShutdownTimeout bounds stopping (shutdown.go); zero means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// ReplicationFactor of the changelog topics Run creates; 0 or -1 is
	// the broker's default. When positive, existing changelog topics are
	// checked against it.
	ReplicationFactor int16
	// MinInsyncReplicas, when positive, is set on the changelog topics Run
	// creates and checked on existing ones.
	MinInsyncReplicas int
	// StartupTimeout bounds the start-up steps before the group is joined
	// (0: defaultStartupTimeout).
	StartupTimeout time.Duration
	// LineageHeaders makes every sink record carry the lineage headers
	// (processor.Lineage).
	LineageHeaders bool
	// Meter receives the runtime's measurements; nil measures nothing
	// (metrics.go).
	Meter *meter.App
	// Standbys, AcceptableRecoveryLag, MaxWarmups and ProbingInterval
	// are the assignor's standby and warm-up settings (assign.Config);
	// standby.go runs the copies it places here and probe.go the probing
	// rebalances.
	Standbys              int
	AcceptableRecoveryLag int64
	MaxWarmups            int
	ProbingInterval       time.Duration
	// CacheMaxBytes bounds the record caches of this instance's tasks
	// (store.Cache), shared evenly by its active tasks; 0 means
	// DefaultCacheMaxBytes, negative turns caching off.
	CacheMaxBytes int64
	// Eager selects the eager rebalance protocol: every rebalance closes
	// every task of every instance, and their stores reopen. The default
	// is the cooperative protocol (coop.go), under which only the tasks
	// that move are closed.
	Eager bool
}

// defaultStartupTimeout is the StartupTimeout when Config leaves it 0.
const defaultStartupTimeout = 60 * time.Second

// Runtime runs one application instance.
type Runtime struct {
	cfg Config
	// group checks membership and commits offsets at an at-least-once
	// commit: the group coordinator (coordinatorGroup); unit tests that
	// run the worker without a broker put a fake here.
	group groupCommitter
	// gate keeps commits out of a join (coop.go).
	gate     *commitGate
	log      *slog.Logger
	strategy *assign.Strategy
	groups   []assign.TaskGroup
	client   sarama.Client
	prod     *changelog.Producer

	mu    sync.Mutex
	state State
	fatal error
	// commitOnStop: the fatal error was a record's; commit the work done
	// before it.
	commitOnStop bool
	cancel       context.CancelFunc
	running      map[assign.TaskID]*taskRun // tasks of the current session
	// restored remembers the changelog offsets of tasks whose state is on
	// disk (persistent stores only), reported to the assignor.
	restored map[assign.TaskID]map[string]int64
	// Restores counts restored changelog records per task, for tests and
	// observability.
	restoredRecords map[assign.TaskID]int64
	// txnStats counts exactly-once transactions (txn.go).
	txnStats TxnStats
	// queries is the interactive-query view of the open tasks (query.go).
	queries queryRegistry
	// Stopping (shutdown.go): base is the sarama configuration before the
	// net cutter is installed, net cuts every connection when stopping
	// exceeds ShutdownTimeout, stopCtx is Run's context, and uncommitted
	// names the tasks whose final commit did not complete.
	base        *sarama.Config
	net         *netCutter
	stopCtx     context.Context
	uncommitted []string
	// failures attributes the shared producer's failures to tasks
	// (failure.go).
	failures failureBook
	// purge deletes consumed records of repartition topics
	// (repartition.go).
	purge *purger
	// globals are the global tables' stores (global.go), set once they
	// are restored; globalRestored counts the records they restored.
	globals        *globalStores
	globalRestored int64
	// meter is cfg.Meter (nil: no metrics); ends caches the end offsets
	// of input partitions and what is known of their tails (lag.go);
	// sizes the stores' sizes (metrics.go).
	meter *meter.App
	ends  endCache
	sizes sizeCache
	// probes are the tasks' gap probes under way (recordQueue.probe),
	// awaited before Run closes its client.
	probes sync.WaitGroup
	// shared is client while Run runs (guarded by mu), for the
	// goroutines of callers (the caught-up check).
	shared sarama.Client
	// status keeps what the status page reads between calls (status.go).
	status statusBook
	// standbys runs this instance's standby and warm-up copies while Run
	// runs (standby.go; nil otherwise, guarded by mu).
	standbys *standbyRunner
	// sessionEnd cancels the context of the Consume call in progress
	// (probe.go; guarded by mu).
	sessionEnd context.CancelCauseFunc
}

// New validates cfg and returns a runtime in state Created. Only
// topology.NewApp calls it, so its errors read "topology: ...", as NewApp's
// own do (docs/DESIGN.md, "Errors and bad input").
func New(cfg Config) (*Runtime, error) {
	if cfg.Graph == nil {
		return nil, errors.New("topology: no topology")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = 1000
	}
	if cfg.PunctuateInterval <= 0 {
		cfg.PunctuateInterval = 100 * time.Millisecond
	}
	if cfg.Sarama == nil {
		cfg.Sarama = sarama.NewConfig()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.RepartitionPurgeInterval <= 0 {
		cfg.RepartitionPurgeInterval = DefaultRepartitionPurgeInterval
	}
	if cfg.StartupTimeout <= 0 {
		cfg.StartupTimeout = defaultStartupTimeout
	}
	if err := cfg.LevelDB.Validate(); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if cfg.ExactlyOnce {
		// Consumers, offset fetches and restores see committed
		// transactions only.
		sc := *cfg.Sarama
		sc.Consumer.IsolationLevel = sarama.ReadCommitted
		cfg.Sarama = &sc
	}
	r := &Runtime{
		cfg: cfg, log: cfg.Logger, base: cfg.Sarama, meter: cfg.Meter,
		restored:        map[assign.TaskID]map[string]int64{},
		restoredRecords: map[assign.TaskID]int64{},
	}
	// Every log record passes the status book, which keeps the warnings.
	r.log = slog.New(newRecentHandler(cfg.Logger.Handler(), &r.status.recent))
	r.cfg.Logger = r.log
	r.group = coordinatorGroup{r}
	r.purge = &purger{r: r}
	r.cfg.OnRestore = r.watchRestore(cfg.OnRestore)
	for _, st := range cfg.Graph.SubTopologies {
		if len(st.SourcePatterns) > 0 {
			return nil, fmt.Errorf("topology: sub-topology %d reads a topic pattern; the Kafka runtime supports fixed topics only so far", st.ID)
		}
		r.groups = append(r.groups, assign.TaskGroup{ID: int32(st.ID), Topics: slices.Clone(st.SourceTopics), Stateless: r.stateless(st)})
	}
	s, err := assign.NewStrategy(assign.Config{
		Groups: r.groups, Endpoint: cfg.Endpoint, State: r.localState, Describe: r.describeGroup, Logger: r.log,
		Standbys: cfg.Standbys, EndOffsets: r.endOffsets, AcceptableRecoveryLag: cfg.AcceptableRecoveryLag,
		MaxWarmups: cfg.MaxWarmups, ProbingInterval: cfg.ProbingInterval,
		Cooperative: !cfg.Eager,
	})
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	r.strategy = s
	bound := cfg.Sarama.Consumer.Group.Rebalance.Timeout
	if bound <= 0 {
		bound = time.Minute
	}
	r.gate = newCommitGate(bound)
	return r, nil
}

// Strategy returns the group's balance strategy (for assignment metadata).
func (r *Runtime) Strategy() *assign.Strategy { return r.strategy }

// State returns the current state.
func (r *Runtime) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// RestoredRecords returns how many changelog records each task restored
// when it was last opened.
func (r *Runtime) RestoredRecords() map[assign.TaskID]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[assign.TaskID]int64, len(r.restoredRecords))
	for k, v := range r.restoredRecords {
		out[k] = v
	}
	return out
}

func (r *Runtime) setState(s State) {
	r.mu.Lock()
	old := r.state
	if old == s || old == Error && s != Stopped {
		r.mu.Unlock()
		return
	}
	r.state = s
	r.mu.Unlock()
	if s == Rebalancing {
		r.meter.RebalanceStarted(time.Now())
	}
	r.log.Info("brook: state change", "from", old.String(), "to", s.String())
	if r.cfg.OnState != nil {
		r.cfg.OnState(old, s)
	}
}

// fail records the first fatal error and stops the runtime without
// committing anything more.
func (r *Runtime) fail(err error) { r.stopWith(err, false) }

// failRecord records a fatal error that leaves every task in a state that
// may be committed: a record (or punctuation) failed and its effects were
// rolled back, or a task whose commit failed was dropped. The runtime
// stops, but first commits what the tasks processed (for the failed
// record's task, the records before it), under both guarantees, so that a
// restart resumes exactly at the failed record.
func (r *Runtime) failRecord(err error) { r.stopWith(err, true) }

func (r *Runtime) stopWith(err error, commit bool) {
	r.mu.Lock()
	if r.fatal == nil {
		r.fatal = err
		r.commitOnStop = commit
	}
	cancel := r.cancel
	r.mu.Unlock()
	r.log.Error("brook: fatal error", "err", err)
	if cancel != nil {
		cancel()
	}
}

func (r *Runtime) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal
}

// mayCommit reports whether a final commit is allowed: no fatal error, or
// a record-level one.
func (r *Runtime) mayCommit() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal == nil || r.commitOnStop
}

func (r *Runtime) localState() assign.LocalState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := assign.LocalState{Restored: map[assign.TaskID]map[string]int64{}}
	for t, offs := range r.restored {
		out.Restored[t] = offs
	}
	return out
}

// Run starts the runtime and blocks until ctx ends (nil error) or a fatal
// error stops it. Every goroutine it starts has exited when it returns.
//
// Start-up, before the group is joined: lock the state folder, connect,
// check the serdes, check topics and create the changelogs, start the
// producer. Each step stops as soon as ctx ends (Run then returns nil) and
// all of them together are bounded by StartupTimeout (a
// *StartupTimeoutError). Until the first session starts, ending ctx also
// cuts the group join short.
//
// Stopping (the final commit, closing the clients) takes at most
// ShutdownTimeout: past it the runtime cuts its connections to the
// cluster and returns a *ShutdownTimeoutError (shutdown.go).
func (r *Runtime) Run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	r.cancel = cancel
	r.stopCtx = ctx
	r.mu.Unlock()
	defer func() {
		if err != nil {
			r.setState(Error)
		}
		r.setState(Stopped)
	}()
	// Every client dials through the net cutter; the watch cuts it if
	// stopping outlasts the bound. Deferred first after the state: it
	// ends after every client below is closed.
	sc := *r.base
	r.net = installNetCutter(&sc)
	r.cfg.Sarama = &sc
	endWatch := r.watchShutdown(ctx)
	defer func() {
		if endWatch() {
			err = r.shutdownError(err)
		}
	}()

	lock, err := lockStateDir(filepath.Join(r.cfg.StateDir, r.cfg.ApplicationID))
	if err != nil {
		return err
	}
	defer func() {
		if uerr := lock.unlock(); uerr != nil && err == nil {
			err = uerr
		}
	}()

	base, guard := guardSarama(r.cfg.Sarama)
	defer guard.disarm()
	startCtx, cancelStart := context.WithTimeout(ctx, r.cfg.StartupTimeout)
	defer cancelStart()
	guard.arm(startCtx)
	st := &startup{ctx: ctx, startCtx: startCtx, timeout: r.cfg.StartupTimeout}

	// TLS and SASL failures are configuration errors: report them now
	// rather than after the client's metadata retries.
	st.step = fmt.Sprintf("checking TLS and SASL with the brokers %v", r.cfg.Brokers)
	if err := checkSecurity(r.cfg.Brokers, base); err != nil {
		return st.fail(err)
	}
	st.step = fmt.Sprintf("connecting to the brokers %v", r.cfg.Brokers)
	client, err := sarama.NewClient(r.cfg.Brokers, base)
	if err != nil {
		return st.fail(connectError("connect to", r.cfg.Brokers, base, err))
	}
	r.client = client
	defer client.Close()
	if r.cfg.SerdePreflight != nil {
		st.step = "checking the serdes against the schema registry"
		if err := r.cfg.SerdePreflight(startCtx); err != nil {
			return st.fail(fmt.Errorf("brook: serde preflight refused to start: %w", err))
		}
	}
	if err := r.preflight(startCtx, st); err != nil {
		return st.fail(err)
	}
	// Every input topic exists now (internal ones were created): the
	// caught-up check may list their end offsets, from other goroutines.
	r.mu.Lock()
	r.shared = client
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.shared = nil
		r.mu.Unlock()
	}()

	if r.cfg.ExactlyOnce {
		// Every task has its own transactional producer (txn.go).
		return r.consume(ctx, base, st, guard)
	}
	pcfg := changelog.ProducerConfig(base, newBrookPartitioner, "")
	st.step = "starting the producer"
	ap, err := sarama.NewAsyncProducer(r.cfg.Brokers, pcfg)
	if err != nil {
		return st.fail(connectError("producer for", r.cfg.Brokers, pcfg, err))
	}
	r.prod = changelog.NewProducer(ap)
	defer r.prod.Close()
	return r.consume(ctx, base, st, guard)
}

// startup tracks the start-up step in progress, to tell a time-out or a
// cancellation from a failure.
type startup struct {
	ctx, startCtx context.Context
	timeout       time.Duration
	step          string
}

// fail turns a start-up step's error into Run's result: nil when Run's
// context ended (the caller stopped it), a *StartupTimeoutError when
// StartupTimeout ran out, else err.
func (s *startup) fail(err error) error {
	switch {
	case s.ctx.Err() != nil:
		return nil
	case s.startCtx.Err() != nil:
		return &StartupTimeoutError{Step: s.step, Timeout: s.timeout, Err: err}
	}
	return err
}

// StartupTimeoutError reports a start-up step that did not finish within
// the start-up time-out (topology.Config.StartupTimeout): typically a
// broker that accepts connections but does not answer, or a schema
// registry that hangs.
type StartupTimeoutError struct {
	// Step is the step that was running ("connecting to the brokers
	// [...]", "creating changelog topics", ...).
	Step string
	// Timeout is the time-out that ran out.
	Timeout time.Duration
	// Err is the error the step returned when it was cut short.
	Err error
}

// Error implements error.
func (e *StartupTimeoutError) Error() string {
	return fmt.Sprintf("brook: start-up did not finish within %v (Config.StartupTimeout): still %s: %v", e.Timeout, e.Step, e.Err)
}

// Unwrap returns the step's error.
func (e *StartupTimeoutError) Unwrap() error { return e.Err }

// consume runs the consumer-group loop until ctx ends or a fatal error.
// The start-up time-out still covers creating the group; ending ctx cuts
// the join short until the first session starts.
func (r *Runtime) consume(ctx context.Context, base *sarama.Config, st *startup, guard *dialGuard) error {
	gcfg := *base
	gcfg.Consumer.Offsets.AutoCommit.Enable = false
	gcfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	hnd := &handler{r: r, cooperative: !r.cfg.Eager}
	gcfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{&groupStrategy{
		Strategy: r.strategy, gate: r.gate, assigned: hnd.assigned, beforeJoin: hnd.awaitPoll,
	}}
	gcfg.Consumer.Return.Errors = true
	// The coordinator may hold a JoinGroup (and a follower's SyncGroup)
	// until every member has rejoined, up to the rebalance time-out, but
	// sarama reads every answer within Net.ReadTimeout (30s by default,
	// less than the 60s default rebalance time-out): a join that is slow
	// for good reason would fail as a network time-out. The group's own
	// client waits as long as the coordinator may hold, plus a margin, as
	// Kafka's Java consumer does for the join.
	if least := gcfg.Consumer.Group.Rebalance.Timeout + joinReadMargin; gcfg.Net.ReadTimeout < least {
		gcfg.Net.ReadTimeout = least
	}
	st.step = fmt.Sprintf("creating the consumer group %q", r.cfg.ApplicationID)
	group, err := sarama.NewConsumerGroup(r.cfg.Brokers, r.cfg.ApplicationID, &gcfg)
	if err != nil {
		return st.fail(connectError(fmt.Sprintf("consumer group %q at", r.cfg.ApplicationID), r.cfg.Brokers, &gcfg, err))
	}
	// Joining may wait for other members as long as the group's
	// rebalance time-out: not bounded by StartupTimeout, only by ctx.
	guard.arm(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by Run: drains group errors until the group closes
		defer wg.Done()
		for e := range group.Errors() {
			r.log.Warn("brook: consumer group", "action", "the group client retries; if this persists, check the brokers, the group's ACLs and the session timeout", "err", e)
		}
	}()
	defer wg.Wait()
	// The standby and warm-up copies outlive sessions; they stop (and
	// release their stores) once the group is closed, before the client.
	sb := newStandbyRunner(r, ctx)
	r.mu.Lock()
	r.standbys = sb
	r.mu.Unlock()
	defer func() {
		sb.stopAll()
		r.mu.Lock()
		r.standbys = nil
		r.mu.Unlock()
	}()
	defer group.Close()
	// The sessions have ended (and their probes' contexts with them) by
	// the time the deferred calls run.
	defer r.probes.Wait()

	if r.hasGlobals() {
		// Global tables restore before the group is joined, so before
		// any task processes a record; restoring is not bounded by
		// StartupTimeout (guard armed with ctx above).
		r.setState(Restoring)
		if err := r.restoreGlobals(ctx); err != nil {
			if ctx.Err() != nil {
				return r.failed()
			}
			return err
		}
		defer r.closeGlobals()
		gctx, stopGlobals := context.WithCancel(ctx)
		var gwg sync.WaitGroup
		gwg.Add(1)
		go func() { // owned by Run: keeps the global stores current
			defer gwg.Done()
			err := r.runGlobalReader(gctx, base)
			switch {
			case err == nil:
			case gctx.Err() != nil:
				r.log.Warn("brook: global tables: stopping", "action", "nothing: the next start restores the global tables' tail", "err", err)
			default:
				// The tasks' work is sound: let them commit it.
				r.failRecord(err)
			}
		}()
		// Stopped (and awaited) before the stores close, after the
		// sessions' tasks have closed (group.Consume returns after them).
		defer gwg.Wait()
		defer stopGlobals()
	}

	if r.meter != nil {
		// Owned by Run: keeps the lag gauges and store sizes fresh.
		mctx, stopMonitor := context.WithCancel(ctx)
		var mwg sync.WaitGroup
		mwg.Add(1)
		go func() {
			defer mwg.Done()
			r.runMonitor(mctx, r.client)
		}()
		defer mwg.Wait()
		defer stopMonitor()
	}

	topics := r.strategy.Topics()
	h := &joinedHook{ConsumerGroupHandler: hnd, joined: guard.disarm}
	var outage rejoinOutage
	for ctx.Err() == nil {
		r.setState(Rebalancing)
		sessions := h.sessions.Load()
		// Each Consume call has its own context, which a probing
		// rebalance cancels to end the session (probe.go).
		sctx, endSession := context.WithCancelCause(ctx)
		r.mu.Lock()
		r.sessionEnd = endSession
		r.mu.Unlock()
		err := group.Consume(sctx, topics, h)
		endSession(nil)
		if h.sessions.Load() != sessions {
			outage.reset() // a session started: the group was reachable
		}
		if err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
				break
			}
			if (errors.Is(err, sarama.ErrUnknownMemberId) || errors.Is(err, sarama.ErrIllegalGeneration) ||
				errors.Is(err, sarama.ErrRebalanceTimedOut)) && r.failed() == nil {
				// A cooperative session's member was dropped by the group
				// (it could not rejoin in time: a worker stalled, or a
				// revoked task took too long to close). Its tasks were
				// closed without committing what the group may have given
				// away (loseMembership); join again as a new member.
				r.log.Warn("brook: this instance was dropped from the group during a rebalance; joining again",
					"action", "nothing if rare; if frequent, a processor blocks longer than the rebalance timeout: find it, or raise the rebalance timeout", "err", err)
				continue
			}
			if r.cfg.ExactlyOnce && errors.Is(err, sarama.ErrUnstableOffsetCommit) && r.failed() == nil {
				// A previous owner's transaction holds offsets of our
				// new tasks (txn.go): end it, then join again.
				r.fenceAssigned(ctx)
				continue
			}
			if ferr := r.failed(); ferr != nil {
				return ferr
			}
			if transientGroupError(err) {
				lasted, ok := outage.retry(time.Now())
				if !ok {
					return fmt.Errorf("brook: consumer group %q: could not rejoin for %v (transient failures only, the last): %w",
						r.cfg.ApplicationID, lasted.Round(time.Second), err)
				}
				r.log.Warn("brook: consumer group: transient failure while rebalancing; joining again",
					"action", "nothing while it lasts less than the group's session timeout; if it persists, check the brokers and the group coordinator", "err", err, "failing_for", lasted.Round(time.Millisecond).String())
				if !sleepCtx(ctx, gcfg.Consumer.Group.Rebalance.Retry.Backoff) {
					break
				}
				continue
			}
			return fmt.Errorf("brook: consumer group %q: %w", r.cfg.ApplicationID, err)
		}
		outage.reset()
		if ferr := r.failed(); ferr != nil {
			return ferr
		}
	}
	return r.failed()
}

// joinReadMargin is how much longer than the rebalance time-out the
// group's client waits for an answer (Kafka's Java consumer: 5s).
const joinReadMargin = 5 * time.Second

// rejoinBound is how long an instance keeps joining its group again after
// transient failures (transientGroupError) with no session starting in
// between, before Run returns the last one: long enough to ride out a
// coordinator moving or a broker restarting, bounded so that a cluster
// that stays unreachable stops the application with an error.
const rejoinBound = 2 * time.Minute

// rejoinOutage times a run of transient group failures.
type rejoinOutage struct {
	since time.Time // zero: no failure since the last session
}

func (o *rejoinOutage) reset() { o.since = time.Time{} }

// retry records a transient failure at now and reports how long the
// failures have lasted and whether joining again is still within
// rejoinBound.
func (o *rejoinOutage) retry(now time.Time) (time.Duration, bool) {
	if o.since.IsZero() {
		o.since = now
	}
	lasted := now.Sub(o.since)
	return lasted, lasted < rejoinBound
}

// transientGroupError reports whether an error of a consumer-group round
// (join, sync, offset fetch, metadata) is a network failure or a
// coordinator that is moving or busy: joining again may well succeed, so
// it is not a reason to stop. Anything else (authorization, an invalid
// configuration, a fenced static member, ...) is returned by Run.
func transientGroupError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, sarama.ErrOutOfBrokers) || errors.Is(err, sarama.ErrNotConnected) {
		return true
	}
	for _, k := range []sarama.KError{
		sarama.ErrConsumerCoordinatorNotAvailable, sarama.ErrNotCoordinatorForConsumer,
		sarama.ErrRebalanceInProgress, sarama.ErrOffsetsLoadInProgress,
		sarama.ErrRequestTimedOut, sarama.ErrNetworkException, sarama.ErrBrokerNotAvailable,
		sarama.ErrLeaderNotAvailable, sarama.ErrNotLeaderForPartition,
	} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// sleepCtx waits d, or less if ctx ends first; it reports whether the
// whole wait passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// joinedHook calls joined once, when the first session starts: from then
// on the connections serve the commits that end a session, which must not
// be cut when ctx ends.
// It also counts the sessions that started.
type joinedHook struct {
	sarama.ConsumerGroupHandler
	joined   func()
	once     sync.Once
	sessions atomic.Int64
}

// Setup implements sarama.ConsumerGroupHandler.
func (h *joinedHook) Setup(s sarama.ConsumerGroupSession) error {
	h.sessions.Add(1)
	h.once.Do(h.joined)
	return h.ConsumerGroupHandler.Setup(s)
}

// preflight checks that the source, sink and dead-letter topics exist and
// that the sources are co-partitioned, creates or validates the changelog
// topics, and checks the cleanup policy of table source topics.
func (r *Runtime) preflight(ctx context.Context, st *startup) error {
	// A topic created just before the application starts can take a
	// moment to show in every broker's metadata: look again for a few
	// seconds before calling it missing.
	st.step = "checking that the topics exist"
	var missing *MissingTopicsError
	for deadline := time.Now().Add(topicAppearWait); ; {
		if err := r.client.RefreshMetadata(); err != nil {
			return fmt.Errorf("brook: metadata: %w", err)
		}
		existing, err := r.client.Topics()
		if err != nil {
			return fmt.Errorf("brook: list topics: %w", err)
		}
		missing = r.missingTopics(existing)
		if missing == nil {
			break
		}
		if time.Now().After(deadline) {
			return missing
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	counts := map[int]int32{}
	for _, sub := range r.cfg.Graph.SubTopologies {
		n := int32(-1)
		var first string
		for _, t := range sub.SourceTopics {
			if r.cfg.Graph.IsInternalTopic(t) {
				continue // created below, with a count worked out from these
			}
			ps, err := r.client.Partitions(t)
			if err != nil {
				return fmt.Errorf("brook: partitions of %s: %w", t, err)
			}
			if n < 0 {
				n, first = int32(len(ps)), t
			} else if int32(len(ps)) != n {
				return &CoPartitionError{SubTopology: sub.ID, Topics: []string{first, t}, Counts: []int32{n, int32(len(ps))}}
			}
		}
		counts[sub.ID] = n
	}
	admin, err := sarama.NewClusterAdminFromClient(r.client)
	if err != nil {
		return fmt.Errorf("brook: admin: %w", err)
	}
	// Not closed: closing the admin would close the shared client.
	st.step = "checking the cleanup policy of table source topics"
	for _, sub := range r.cfg.Graph.SubTopologies {
		for _, name := range sub.Stores {
			if spec := r.cfg.Graph.Stores[name]; spec != nil && spec.SourceTopic != "" {
				if err := r.checkTableSource(admin, name, spec.SourceTopic); err != nil {
					return err
				}
			}
		}
	}
	for _, spec := range r.globalSpecs() {
		if err := r.checkTableSource(admin, spec.Name, spec.SourceTopic); err != nil {
			return err
		}
	}
	var configs map[string]string
	if r.cfg.MinInsyncReplicas > 0 {
		configs = map[string]string{"min.insync.replicas": strconv.Itoa(r.cfg.MinInsyncReplicas)}
	}
	st.step = "creating or checking the repartition topics"
	if err := r.ensureRepartitionTopics(ctx, admin, counts, configs); err != nil {
		return err
	}
	st.step = "creating or checking the changelog topics"
	for _, sub := range r.cfg.Graph.SubTopologies {
		for _, name := range sub.Stores {
			spec := r.cfg.Graph.Stores[name]
			if spec == nil || !spec.Logged || spec.SourceTopic != "" {
				continue
			}
			topic := store.ChangelogTopic(r.cfg.ApplicationID, name)
			if err := changelog.EnsureTopic(ctx, admin, changelog.TopicSpec{
				Name: topic, Partitions: counts[sub.ID],
				ReplicationFactor: r.cfg.ReplicationFactor, Configs: configs,
				Retention: spec.ChangelogRetention,
			}); err != nil {
				return fmt.Errorf("brook: changelog of store %q: %w", name, err)
			}
		}
	}
	return nil
}

// missingTopics returns the source, sink and dead-letter topics absent
// from existing, or nil.
func (r *Runtime) missingTopics(existing []string) *MissingTopicsError {
	have := map[string]bool{}
	for _, t := range existing {
		have[t] = true
	}
	var e MissingTopicsError
	seen := map[string]bool{}
	check := func(t string, list *[]string) {
		if t == "" || have[t] || seen[t] {
			return
		}
		seen[t] = true
		*list = append(*list, t)
		e.Topics = append(e.Topics, t)
	}
	for _, st := range r.cfg.Graph.SubTopologies {
		for _, t := range st.SourceTopics {
			if !r.cfg.Graph.IsInternalTopic(t) {
				check(t, &e.Sources)
			}
		}
	}
	for _, spec := range r.globalSpecs() {
		check(spec.SourceTopic, &e.Sources) // a global table's topic
	}
	var sinks []string
	for _, n := range r.cfg.Graph.Nodes {
		if n.Kind == task.Sink && n.SinkTopic != "" && !r.cfg.Graph.IsInternalTopic(n.SinkTopic) {
			sinks = append(sinks, n.SinkTopic)
		}
	}
	slices.Sort(sinks)
	for _, t := range sinks {
		check(t, &e.Sinks)
	}
	for _, t := range r.cfg.Graph.Handlers.Topics {
		check(t, &e.DeadLetters)
	}
	if len(e.Topics) == 0 {
		return nil
	}
	return &e
}

// checkTableSource warns when a table's source topic is not compacted.
// The topic is the table's changelog: restores read it from the start.
// Without compaction they read every record ever kept (slower and slower,
// but nothing is lost); with deletion by retention, a restored table lacks
// the keys whose latest record has expired, which a table that never
// restored still holds. Kafka Streams accepts such topics too, and the
// topic's content is the user's choice, so this is a warning, not an
// error.
func (r *Runtime) checkTableSource(admin sarama.ClusterAdmin, storeName, topic string) error {
	entries, err := admin.DescribeConfig(sarama.ConfigResource{
		Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"cleanup.policy", "retention.ms", "retention.bytes"},
	})
	if err != nil {
		return fmt.Errorf("brook: table %q: describe configs of its source topic %q: %w", storeName, topic, err)
	}
	policy, retMs, retBytes := "delete", "", "" // Kafka's default policy when the broker does not say
	for _, e := range entries {
		switch e.Name {
		case "cleanup.policy":
			policy = e.Value
		case "retention.ms":
			retMs = e.Value
		case "retention.bytes":
			retBytes = e.Value
		}
	}
	if changelog.HasCompact(policy) {
		return nil
	}
	if retMs == "-1" && (retBytes == "-1" || retBytes == "") {
		r.log.Warn("brook: table source topic is not compacted: restores read every record it ever had, and take longer as it grows",
			"action", "set cleanup.policy=compact on the topic", "store", storeName, "topic", topic, "cleanup.policy", policy)
		return nil
	}
	r.log.Warn("brook: table source topic is not compacted and deletes by retention: a table restored from it lacks the keys whose latest record has expired",
		"action", "set cleanup.policy=compact on the topic", "store", storeName, "topic", topic, "cleanup.policy", policy, "retention.ms", retMs, "retention.bytes", retBytes)
	return nil
}

// topicAppearWait is how long start-up waits for missing source topics to
// appear in metadata before failing.
const topicAppearWait = 5 * time.Second

// MissingTopicsError reports topics the application needs that do not
// exist: source topics, sink topics (a sink with a fixed topic) and the
// topics of dead-letter handlers.
type MissingTopicsError struct {
	// Topics lists every missing topic.
	Topics []string
	// Sources, Sinks and DeadLetters split Topics by use.
	Sources, Sinks, DeadLetters []string
}

func (e *MissingTopicsError) Error() string {
	var b strings.Builder
	b.WriteString("brook: topics do not exist (create them before starting the application):")
	sep := " "
	for _, part := range []struct {
		what   string
		topics []string
	}{{"source topics", e.Sources}, {"sink topics", e.Sinks}, {"dead-letter topics", e.DeadLetters}} {
		if len(part.topics) > 0 {
			fmt.Fprintf(&b, "%s%s %v", sep, part.what, part.topics)
			sep = "; "
		}
	}
	if sep == " " { // built by hand without the split
		fmt.Fprintf(&b, " %v", e.Topics)
	}
	return b.String()
}

// CoPartitionError reports co-partitioned source topics with different
// partition counts.
type CoPartitionError struct {
	SubTopology int
	Topics      []string
	Counts      []int32
}

func (e *CoPartitionError) Error() string {
	return fmt.Sprintf("brook: sub-topology %d reads co-partitioned topics with different partition counts: %s has %d, %s has %d",
		e.SubTopology, e.Topics[0], e.Counts[0], e.Topics[1], e.Counts[1])
}

func (r *Runtime) taskDir(id assign.TaskID) string {
	return filepath.Join(r.cfg.StateDir, r.cfg.ApplicationID, id.String())
}

func (r *Runtime) ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("brook: state dir: %w", err)
	}
	return nil
}

func toProcessorTaskID(id assign.TaskID) processor.TaskID {
	return processor.TaskID{SubTopology: int(id.Group), Partition: id.Partition}
}
