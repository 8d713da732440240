package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
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
	Workers        int
	Endpoint       string
	// MaxBuffered is the number of records buffered per partition before
	// its consumer is held back.
	MaxBuffered int
	// PunctuateInterval is how often wall-clock punctuators are checked.
	PunctuateInterval time.Duration
	Logger            *slog.Logger
	OnState           func(from, to State)
	OnRestore         func(store.RestoreProgress)
	// OnAssignment is called with every new assignment (who runs which
	// task), for interactive-query routing.
	OnAssignment func(assign.Assignment)
	// Clock returns wall-clock time; nil means time.Now.
	Clock func() time.Time
	// LevelDB tunes every persistent store's engine.
	LevelDB store.LevelDBOptions
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
}

// Runtime runs one application instance.
type Runtime struct {
	cfg      Config
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
	// disk, reported to the assignor.
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
}

// New validates cfg and returns a runtime in state Created.
func New(cfg Config) (*Runtime, error) {
	if cfg.Graph == nil {
		return nil, errors.New("runtime: no topology")
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
	if cfg.ExactlyOnce {
		// Consumers, offset fetches and restores see committed
		// transactions only.
		sc := *cfg.Sarama
		sc.Consumer.IsolationLevel = sarama.ReadCommitted
		cfg.Sarama = &sc
	}
	r := &Runtime{
		cfg: cfg, log: cfg.Logger, base: cfg.Sarama,
		restored:        map[assign.TaskID]map[string]int64{},
		restoredRecords: map[assign.TaskID]int64{},
	}
	r.cfg.OnRestore = r.watchRestore(cfg.OnRestore)
	for _, st := range cfg.Graph.SubTopologies {
		if len(st.SourcePatterns) > 0 {
			return nil, fmt.Errorf("runtime: sub-topology %d reads a topic pattern; the Kafka runtime supports fixed topics only so far", st.ID)
		}
		r.groups = append(r.groups, assign.TaskGroup{ID: int32(st.ID), Topics: slices.Clone(st.SourceTopics)})
	}
	s, err := assign.NewStrategy(assign.Config{
		Groups: r.groups, Endpoint: cfg.Endpoint, State: r.localState, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	r.strategy = s
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

	base := r.cfg.Sarama
	// TLS and SASL failures are configuration errors: report them now
	// rather than after the client's metadata retries.
	if err := checkSecurity(r.cfg.Brokers, base); err != nil {
		return err
	}
	client, err := sarama.NewClient(r.cfg.Brokers, base)
	if err != nil {
		return connectError("connect to", r.cfg.Brokers, base, err)
	}
	r.client = client
	defer client.Close()
	if r.cfg.SerdePreflight != nil {
		if err := r.cfg.SerdePreflight(ctx); err != nil {
			return fmt.Errorf("brook: serde preflight refused to start: %w", err)
		}
	}
	if err := r.preflight(ctx); err != nil {
		return err
	}

	if r.cfg.ExactlyOnce {
		// Every task has its own transactional producer (txn.go).
		return r.consume(ctx, base)
	}
	pcfg := *base
	pcfg.Producer.Partitioner = newBrookPartitioner
	pcfg.Producer.Return.Successes = true
	pcfg.Producer.Return.Errors = true
	pcfg.Producer.RequiredAcks = sarama.WaitForAll
	pcfg.Producer.Idempotent = true
	pcfg.Net.MaxOpenRequests = 1
	if pcfg.Producer.Retry.Max < 10 {
		pcfg.Producer.Retry.Max = 10
	}
	ap, err := sarama.NewAsyncProducer(r.cfg.Brokers, &pcfg)
	if err != nil {
		return connectError("producer for", r.cfg.Brokers, &pcfg, err)
	}
	r.prod = changelog.NewProducer(ap)
	defer r.prod.Close()
	return r.consume(ctx, base)
}

// consume runs the consumer-group loop until ctx ends or a fatal error.
func (r *Runtime) consume(ctx context.Context, base *sarama.Config) error {
	gcfg := *base
	gcfg.Consumer.Offsets.AutoCommit.Enable = false
	gcfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	gcfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{r.strategy}
	gcfg.Consumer.Return.Errors = true
	group, err := sarama.NewConsumerGroup(r.cfg.Brokers, r.cfg.ApplicationID, &gcfg)
	if err != nil {
		return connectError(fmt.Sprintf("consumer group %q at", r.cfg.ApplicationID), r.cfg.Brokers, &gcfg, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by Run: drains group errors until the group closes
		defer wg.Done()
		for e := range group.Errors() {
			r.log.Warn("brook: consumer group", "err", e)
		}
	}()
	defer wg.Wait()
	defer group.Close()

	topics := r.strategy.Topics()
	h := &handler{r: r}
	for ctx.Err() == nil {
		r.setState(Rebalancing)
		if err := group.Consume(ctx, topics, h); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
				break
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
			return fmt.Errorf("brook: consumer group %q: %w", r.cfg.ApplicationID, err)
		}
		if ferr := r.failed(); ferr != nil {
			return ferr
		}
	}
	return r.failed()
}

// preflight checks source topics and co-partitioning, and creates or
// validates the changelog topics.
func (r *Runtime) preflight(ctx context.Context) error {
	// A topic created just before the application starts can take a
	// moment to show in every broker's metadata: look again for a few
	// seconds before calling it missing.
	var missing []string
	for deadline := time.Now().Add(topicAppearWait); ; {
		if err := r.client.RefreshMetadata(); err != nil {
			return fmt.Errorf("brook: metadata: %w", err)
		}
		existing, err := r.client.Topics()
		if err != nil {
			return fmt.Errorf("brook: list topics: %w", err)
		}
		have := map[string]bool{}
		for _, t := range existing {
			have[t] = true
		}
		missing = missing[:0]
		for _, st := range r.cfg.Graph.SubTopologies {
			for _, t := range st.SourceTopics {
				if !have[t] {
					missing = append(missing, t)
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return &MissingTopicsError{Topics: missing}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	counts := map[int]int32{}
	for _, st := range r.cfg.Graph.SubTopologies {
		n := int32(-1)
		var first string
		for _, t := range st.SourceTopics {
			ps, err := r.client.Partitions(t)
			if err != nil {
				return fmt.Errorf("brook: partitions of %s: %w", t, err)
			}
			if n < 0 {
				n, first = int32(len(ps)), t
			} else if int32(len(ps)) != n {
				return &CoPartitionError{SubTopology: st.ID, Topics: []string{first, t}, Counts: []int32{n, int32(len(ps))}}
			}
		}
		counts[st.ID] = n
	}
	admin, err := sarama.NewClusterAdminFromClient(r.client)
	if err != nil {
		return fmt.Errorf("brook: admin: %w", err)
	}
	// Not closed: closing the admin would close the shared client.
	for _, st := range r.cfg.Graph.SubTopologies {
		for _, name := range st.Stores {
			spec := r.cfg.Graph.Stores[name]
			if spec == nil || !spec.Logged || spec.SourceTopic != "" {
				continue
			}
			topic := store.ChangelogTopic(r.cfg.ApplicationID, name)
			if err := changelog.EnsureTopic(admin, changelog.TopicSpec{Name: topic, Partitions: counts[st.ID]}); err != nil {
				return fmt.Errorf("brook: changelog of store %q: %w", name, err)
			}
		}
	}
	return nil
}

// topicAppearWait is how long start-up waits for missing source topics to
// appear in metadata before failing.
const topicAppearWait = 5 * time.Second

// MissingTopicsError reports source topics that do not exist.
type MissingTopicsError struct {
	Topics []string
}

func (e *MissingTopicsError) Error() string {
	return fmt.Sprintf("brook: source topics do not exist: %v (create them before starting the application)", e.Topics)
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
