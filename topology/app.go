package topology

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/brookstream/brook/store/leveldb"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/meter"
	"github.com/brookstream/brook/internal/runtime"
	"github.com/brookstream/brook/internal/scram"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/store"
)

// Guarantee is the processing guarantee of an App.
type Guarantee int

const (
	// AtLeastOnce commits consumed offsets after the records they
	// produced are acknowledged: after a crash, records since the last
	// commit are processed again (duplicates, never losses).
	AtLeastOnce Guarantee = iota
	// ExactlyOnce makes each commit of a task one Kafka transaction that
	// holds its sink records, its changelog records and its consumed
	// offsets: every input record's effects (outputs and state changes)
	// become visible exactly once to read_committed consumers, across
	// crashes, rebalances and zombie instances. Store writes stay in memory
	// until their transaction commits, so a crash never leaves uncommitted
	// state on disk.
	//
	// Cost: output is visible only after its transaction commits, so
	// CommitInterval bounds the end-to-end latency (plan on CommitInterval
	// plus a few broker round trips); every task has its own transactional
	// producer (connections and an InitProducerId per task). Downstream
	// consumers must read with isolation.level=read_committed. Requires
	// Kafka 2.5 or later. See docs/EXACTLY_ONCE.md.
	ExactlyOnce
)

// State is an App's lifecycle state.
type State = runtime.State

// The App states. An App goes Created → Rebalancing → Restoring → Running,
// back to Rebalancing at each rebalance, and ends Stopped (through Error
// when Run fails).
const (
	StateCreated     = runtime.Created
	StateRebalancing = runtime.Rebalancing
	StateRestoring   = runtime.Restoring
	StateRunning     = runtime.Running
	StateError       = runtime.Error
	StateStopped     = runtime.Stopped
)

// SASL holds the credentials brook authenticates to the brokers with,
// over SASL/PLAIN or SASL/SCRAM (SHA-256 or SHA-512, with brook's own SCRAM
// client, which also checks that the broker knows the credentials). Use it
// together with TLS (Kafka's SASL_SSL listeners): PLAIN sends the password
// itself, and SCRAM without TLS leaves the session unprotected.
type SASL struct {
	// Mechanism is "PLAIN" (default), "SCRAM-SHA-256" or "SCRAM-SHA-512".
	Mechanism string
	// User is the user name. Required.
	User string
	// Password is the user's password (used as its UTF-8 bytes, as Kafka
	// does).
	Password string
}

// Config configures an App. Only ApplicationID and Brokers are required;
// every other zero value picks the documented default. NewApp applies the
// defaults to its own copy; the Config itself is never modified.
type Config struct {
	// ApplicationID names the application: it is the consumer group id,
	// the prefix of its changelog topics and the folder of its state
	// under StateDir. Required. It must be a legal part of a Kafka topic
	// name: only ASCII letters, digits, '.', '_' and '-', and short
	// enough that every changelog topic "<ApplicationID>-<store>-changelog"
	// stays within Kafka's 249 characters.
	ApplicationID string
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// StateDir holds the local stores, one folder per application and
	// task. Default: os.TempDir()/brook. An instance locks
	// <StateDir>/<ApplicationID> while it runs: a second instance of the
	// same application with the same StateDir is refused at start
	// (*StateDirLockedError). Give each instance on a host its own.
	StateDir string
	// CommitInterval is how often processed records are committed.
	// Default 1s.
	CommitInterval time.Duration
	// ShutdownTimeout bounds how long Run (and so Close) takes to return
	// once its context ends or a fatal error stops it: the final commit of
	// every task and the closing of brook's clients. When they have not
	// finished by then (the cluster cannot be reached), brook closes its
	// connections to the brokers, which ends them at once, and Run returns
	// a *ShutdownTimeoutError naming the tasks whose work since their last
	// commit was not committed (it is processed again after a restart).
	// Default 30s.
	ShutdownTimeout time.Duration
	// MaxTaskIdle bounds how long a task whose input partitions (a
	// stream and a table, or several co-partitioned topics) are not all
	// buffered waits for a partition known to have records on the broker
	// that are not fetched yet, before it processes the others' records
	// past it: waiting keeps the merge in timestamp order (a stream record
	// joins the table as of its time).
	//
	// 0, the default, waits without a bound, as Kafka Streams'
	// max.task.idle.ms=0 (KIP-695): no stream record is joined before
	// earlier table records already on the broker, however slow their
	// fetch. Offsets a consumer is never handed (transaction markers, and
	// under exactly-once aborted records and records of transactions
	// still open) are not waited for: once a partition has held the
	// others for 500 ms, brook reads its unfetched offsets (up to the
	// last stable offset under exactly-once) and stops waiting when they
	// hold no record. While the brokers cannot be read the task keeps
	// waiting and logs a warning. A positive value waits at most that
	// long per wait, trading completeness for latency; negative: never
	// wait.
	MaxTaskIdle time.Duration
	// RepartitionPurgeInterval is how often, at most, the App deletes the
	// records of its repartition topics that it has consumed and
	// committed (DeleteRecords up to the committed offset), so those
	// topics stay small. Default 30s, as Kafka Streams'
	// repartition.purge.interval.ms.
	RepartitionPurgeInterval time.Duration
	// Guarantee is the processing guarantee. Default AtLeastOnce.
	Guarantee Guarantee
	// Workers is the number of processing goroutines; tasks are spread
	// over them. Default 1. More workers pay where a record costs more
	// than the Kafka client's share of it (store lookups, windows,
	// exactly-once): on two cores, 2 workers made a stream-table join
	// 1.25 times and exactly-once counting 1.8 times as fast, and a
	// stateless pipeline 0.75 times (docs/BENCHMARKS.md).
	Workers int
	// QueryEndpoint is the host:port other instances reach this one at
	// for interactive queries; it travels in the group's assignment.
	QueryEndpoint string
	// MaxBufferedRecords is how many records per partition wait for
	// processing before that partition's fetching is held back. Default
	// 1000.
	MaxBufferedRecords int
	// LevelDB tunes the engine of every persistent store (block cache,
	// write buffer, compression, bloom filter, open-time verification);
	// the zero value takes leveldb.Options' defaults.
	LevelDB leveldb.Options
	// TLS enables TLS to the brokers when set: RootCAs must trust the
	// brokers' certificates (nil RootCAs: the system roots), Certificates
	// holds a client certificate when the brokers ask for one (mutual
	// TLS). An empty ServerName is taken from each broker's host.
	TLS *tls.Config
	// SASL enables SASL authentication when set.
	SASL *SASL
	// ClientID is sent to the brokers. Default "brook-<ApplicationID>".
	ClientID string
	// ReplicationFactor is the replication factor of the internal topics
	// the App creates (the changelog topics of logged stores). Default
	// (0 or -1): the broker's default.replication.factor (KIP-464, Kafka
	// 2.4+). When positive, an existing changelog topic must have it too,
	// else Run refuses to start naming the topic.
	ReplicationFactor int
	// MinInsyncReplicas sets min.insync.replicas on the internal topics
	// the App creates. Default (0): not set, the topic follows the
	// broker's min.insync.replicas. When positive, an existing changelog
	// topic must have it too, else Run refuses to start naming the topic.
	// It must not exceed a positive ReplicationFactor.
	MinInsyncReplicas int
	// StartupTimeout bounds the start-up steps before the App joins its
	// group: connecting to the brokers, the schema-registry preflight,
	// checking topics, creating changelog topics, starting the producer.
	// A broker that accepts connections but never answers makes Run fail
	// after StartupTimeout with a *StartupTimeoutError naming the step.
	// Default 60s (Kafka's default.api.timeout.ms); keep it above the
	// sarama dial time-out (30s) when some bootstrap brokers may be
	// unreachable.
	StartupTimeout time.Duration
	// LineageHeaders makes every record a sink writes carry a lineage
	// header naming the input record whose processing produced it
	// (topic, partition, offset), the application id and the sink node:
	// processor.HeaderLineage, read back with processor.LineageOf. Off by
	// default; when off nothing is added and nothing is spent.
	// Dead-letter records carry the same header whatever this says
	// (processor.DeadLetterRecord). See docs/RUNTIME.md ("Lineage
	// headers") for the scheme and its cost.
	LineageHeaders bool
	// Logger receives the App's logs. Default: slog.Default().
	Logger *slog.Logger
	// StateListener is called on every state change, on the goroutine
	// that changes it; it must return promptly.
	StateListener func(from, to State)
	// RestoreListener is called as stores restore from their changelogs.
	RestoreListener func(store.RestoreProgress)
	// Metrics, when set, receives the App's measurements (records
	// consumed, processed and produced, latencies, consumer lag per
	// partition, commits, transactions, rebalances, task states,
	// restores, store sizes, dead-lettered and dropped records, queries):
	// NewApp registers the App with it under its ApplicationID and Close
	// removes it. Serve them with the Prometheus adapter
	// (github.com/brookstream/brook/prometheus) or read Snapshot. nil (the
	// default) measures nothing. See package metrics and
	// docs/OPERATIONS.md.
	Metrics *metrics.Registry
	// NumStandbyReplicas is the number of standby replicas of each
	// stateful task (Kafka Streams' num.standby.replicas): other instances
	// keep a copy of the task's persistent stores current by reading
	// their changelogs (read_committed under ExactlyOnce), never the
	// instance running the task, so that when that instance fails the task
	// moves to one with a copy and restores only the tail. Each standby
	// costs its instance the disk of the copy and the changelog reads. The
	// group leader's setting counts; give every instance the same. Default
	// 0: none. See docs/RUNTIME.md ("Standbys, warm-ups and static
	// membership").
	NumStandbyReplicas int
	// AcceptableRecoveryLag is the largest lag (changelog offsets summed
	// over a task's changelog partitions) at which an instance counts as
	// caught up for a task (Kafka Streams' acceptable.recovery.lag): a
	// task moves to an instance further behind only after a warm-up copy
	// there has caught up, and stays meanwhile where it is. Default
	// 10,000.
	AcceptableRecoveryLag int64
	// MaxWarmupReplicas bounds the warm-up copies in the whole group at
	// any time (Kafka Streams' max.warmup.replicas). Default 2.
	MaxWarmupReplicas int
	// ProbingRebalanceInterval is how long after an assignment with
	// warm-ups their instance makes the group rebalance again, to move the
	// tasks whose warm-ups caught up (Kafka Streams'
	// probing.rebalance.interval.ms); the instance does it earlier once
	// all its warm-ups are within AcceptableRecoveryLag. Default one
	// minute (Kafka Streams: ten).
	ProbingRebalanceInterval time.Duration
	// GroupInstanceID makes this instance a static member of its group
	// (Kafka's group.instance.id, KIP-345): it does not leave the group
	// when it stops, and when it starts again with the same id within the
	// session timeout it gets its tasks back without a rebalance (the
	// other instances go on processing). It must be unique in the group
	// and stay with the instance across restarts (a host name, a pod
	// name); a second instance started with the same id fences the first,
	// which then stops with an error. Default "": dynamic membership. A
	// static instance that stops for good is removed only when the
	// session timeout (sarama's Consumer.Group.Session.Timeout, 10s by
	// default) expires, so its tasks wait that long.
	GroupInstanceID string
	// StoreCacheMaxBytes bounds the record cache in front of the
	// instance's key-value stores (Kafka Streams'
	// statestore.cache.max.bytes), shared evenly by the tasks assigned
	// when each opens: a lookup that hits it costs neither a LevelDB read
	// nor the value serde. It only holds what the store holds (every
	// write still goes to the store and its changelog at once; outputs
	// are never held back), a failed record's writes leave it with their
	// rollback, and interactive queries never read it. Default 0: 10 MiB;
	// negative turns it off. See docs/RUNTIME.md ("Record cache").
	StoreCacheMaxBytes int64
	// EagerRebalancing selects Kafka's eager rebalance protocol: at every
	// rebalance every instance stops and closes all its tasks before the
	// group re-forms, and reopens those it gets back. The default (false)
	// is the cooperative protocol (KIP-429, as Kafka Streams since 2.4):
	// only the tasks that move stop (committed and closed on the instance
	// they leave, then opened on their new one in a follow-up rebalance);
	// the others go on processing throughout. Every instance of a group
	// should use the same. Upgrading from a brook version without
	// cooperative rebalancing takes two rolling restarts: first with
	// EagerRebalancing set, then without. See docs/RUNTIME.md ("Rebalance
	// protocol").
	EagerRebalancing bool
	// ConfigureSarama is the escape hatch: it may change the sarama
	// configuration brook built, before any client is created. brook's
	// own settings for the producer and the consumer group are applied
	// after it where correctness depends on them.
	ConfigureSarama func(*sarama.Config)
}

// Validate reports the first problem of the configuration. It does not
// change c: the defaults are applied by NewApp to its own copy.
func (c Config) Validate() error {
	if c.ApplicationID == "" {
		return errors.New("topology: Config.ApplicationID is required")
	}
	if err := validTopicPart(c.ApplicationID); err != nil {
		return fmt.Errorf("topology: Config.ApplicationID %q %w", c.ApplicationID, err)
	}
	if n := len(changelogName(c.ApplicationID, "s")); n > maxTopicLen {
		return fmt.Errorf("topology: Config.ApplicationID %q is too long: its changelog topics would exceed Kafka's %d characters", c.ApplicationID, maxTopicLen)
	}
	if len(c.Brokers) == 0 {
		return errors.New("topology: Config.Brokers is required")
	}
	if c.Guarantee != AtLeastOnce && c.Guarantee != ExactlyOnce {
		return fmt.Errorf("topology: Config.Guarantee %d is not AtLeastOnce or ExactlyOnce", int(c.Guarantee))
	}
	if c.SASL != nil {
		switch c.SASL.Mechanism {
		case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return fmt.Errorf("topology: Config.SASL.Mechanism %q is not supported (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", c.SASL.Mechanism)
		}
		if c.SASL.User == "" {
			return errors.New("topology: Config.SASL.User is required when Config.SASL is set")
		}
	}
	if err := c.LevelDB.Validate(); err != nil {
		return fmt.Errorf("topology: Config.LevelDB: %w", err)
	}
	if c.ReplicationFactor < -1 || c.ReplicationFactor > math.MaxInt16 {
		return fmt.Errorf("topology: Config.ReplicationFactor %d must be -1 (broker default), 0 (default) or a positive replica count", c.ReplicationFactor)
	}
	if c.MinInsyncReplicas < 0 {
		return fmt.Errorf("topology: Config.MinInsyncReplicas %d is negative", c.MinInsyncReplicas)
	}
	if c.ReplicationFactor > 0 && c.MinInsyncReplicas > c.ReplicationFactor {
		return fmt.Errorf("topology: Config.MinInsyncReplicas %d exceeds Config.ReplicationFactor %d: no write with acks=all could succeed", c.MinInsyncReplicas, c.ReplicationFactor)
	}
	if c.StartupTimeout < 0 {
		return fmt.Errorf("topology: Config.StartupTimeout %v is negative", c.StartupTimeout)
	}
	if c.RepartitionPurgeInterval < 0 {
		return fmt.Errorf("topology: Config.RepartitionPurgeInterval %v is negative", c.RepartitionPurgeInterval)
	}
	if c.NumStandbyReplicas < 0 {
		return fmt.Errorf("topology: Config.NumStandbyReplicas %d is negative", c.NumStandbyReplicas)
	}
	if c.AcceptableRecoveryLag < 0 {
		return fmt.Errorf("topology: Config.AcceptableRecoveryLag %d is negative", c.AcceptableRecoveryLag)
	}
	if c.MaxWarmupReplicas < 0 {
		return fmt.Errorf("topology: Config.MaxWarmupReplicas %d is negative", c.MaxWarmupReplicas)
	}
	if c.ProbingRebalanceInterval < 0 {
		return fmt.Errorf("topology: Config.ProbingRebalanceInterval %v is negative", c.ProbingRebalanceInterval)
	}
	if id := c.GroupInstanceID; id != "" {
		// The broker's own check (JoinGroup refuses other ids).
		if err := validTopicPart(id); err != nil {
			return fmt.Errorf("topology: Config.GroupInstanceID %q %w", id, err)
		}
		if len(id) > maxTopicLen || id == "." || id == ".." {
			return fmt.Errorf("topology: Config.GroupInstanceID %q is not a legal group instance id: at most %d characters, not \".\" or \"..\"", id, maxTopicLen)
		}
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("brook: Config.ShutdownTimeout %v is negative", c.ShutdownTimeout)
	}
	return nil
}

// withDefaults returns a copy of c with every zero field set to its
// documented default.
func (c Config) withDefaults() Config {
	if c.StateDir == "" {
		c.StateDir = defaultStateDir()
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.RepartitionPurgeInterval == 0 {
		c.RepartitionPurgeInterval = runtime.DefaultRepartitionPurgeInterval
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.MaxBufferedRecords <= 0 {
		c.MaxBufferedRecords = 1000
	}
	if c.ClientID == "" {
		c.ClientID = "brook-" + c.ApplicationID
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.StartupTimeout == 0 {
		c.StartupTimeout = defaultStartupTimeout
	}
	return c
}

// defaultStartupTimeout is Config.StartupTimeout's default.
const defaultStartupTimeout = 60 * time.Second

// maxTopicLen is Kafka's limit on topic name length.
const maxTopicLen = 249

// validTopicPart checks that s only has characters Kafka allows in topic
// names (ASCII letters, digits, '.', '_', '-').
func validTopicPart(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("has the character %q at byte %d; Kafka topic names allow only ASCII letters, digits, '.', '_' and '-'", rune(c), i)
	}
	return nil
}

func changelogName(appID, storeName string) string { return store.ChangelogTopic(appID, storeName) }

// checkTopicNames checks that every changelog topic of topo's logged
// stores is a legal Kafka topic name for appID.
func checkTopicNames(topo *Topology, appID string) error {
	for _, name := range topo.storeOrder {
		spec := topo.graph.Stores[name]
		if spec == nil || !spec.Logged || spec.SourceTopic != "" {
			continue
		}
		topic := changelogName(appID, name)
		if err := validTopicPart(name); err != nil {
			return fmt.Errorf("topology: store %q cannot name its changelog topic %q: the store name %w", name, topic, err)
		}
		if len(topic) > maxTopicLen {
			return fmt.Errorf("topology: store %q: its changelog topic %q has %d characters, more than Kafka's %d; shorten the application id or the store name", name, topic, len(topic), maxTopicLen)
		}
	}
	for _, placeholder := range slices.Sorted(maps.Keys(topo.graph.Repartitions)) {
		// The step's name, without the suffix of its kind of topic.
		name := strings.TrimPrefix(placeholder, task.ApplicationIDPlaceholder+"-")
		for _, suffix := range internalTopicSuffixes {
			if n, ok := strings.CutSuffix(name, suffix); ok {
				name = n
				break
			}
		}
		topic := appID + strings.TrimPrefix(placeholder, task.ApplicationIDPlaceholder)
		if err := validTopicPart(name); err != nil {
			return fmt.Errorf("topology: repartition step %q cannot name its topic %q: the name %w", name, topic, err)
		}
		if len(topic) > maxTopicLen {
			return fmt.Errorf("topology: repartition step %q: its topic %q has %d characters, more than Kafka's %d; shorten the application id or the step's name", name, topic, len(topic), maxTopicLen)
		}
	}
	return nil
}

// SaramaConfig returns a sarama configuration with the connection settings
// brook's own clients use (protocol version, client id, TLS, SASL, then
// ConfigureSarama), for clients of your own that must reach the same
// brokers the same way. It validates c and applies the defaults to a copy;
// c is not changed.
func (c Config) SaramaConfig() (*sarama.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d := c.withDefaults()
	return d.sarama(), nil
}

func (c *Config) sarama() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = c.ClientID
	sc.Metadata.Retry.Backoff = 100 * time.Millisecond
	if c.TLS != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = c.TLS
	}
	if c.SASL != nil {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.User = c.SASL.User
		sc.Net.SASL.Password = c.SASL.Password
		switch c.SASL.Mechanism {
		case "SCRAM-SHA-256":
			sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return scram.NewClient(scram.SHA256) }
		case "SCRAM-SHA-512":
			sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return scram.NewClient(scram.SHA512) }
		default:
			sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		}
	}
	sc.Consumer.Group.InstanceId = c.GroupInstanceID
	if c.ConfigureSarama != nil {
		c.ConfigureSarama(sc)
	}
	return sc
}

// App runs a Topology on Kafka as one instance of its application.
// Instances with the same ApplicationID share the work through a consumer
// group: each task (a sub-topology's partition, with its state) runs on
// exactly one instance.
type App struct {
	rt *runtime.Runtime
	// unregister removes the App from Config.Metrics (nil without it).
	unregister func()

	mu      sync.Mutex
	cancel  context.CancelFunc
	running bool
	done    chan struct{}
	closed  bool
}

// NewApp validates cfg and prepares an App for topo. Nothing connects to
// Kafka before Run.
func NewApp(topo *Topology, cfg Config) (*App, error) {
	if topo == nil || topo.graph == nil {
		return nil, errors.New("topology: NewApp needs a built Topology")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkTopicNames(topo, cfg.ApplicationID); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	appID := c.ApplicationID
	var m *meter.App
	if c.Metrics != nil {
		m = meter.NewApp()
	}
	rt, err := runtime.New(runtime.Config{
		Graph: topo.graph.ForApplication(appID), ApplicationID: appID, Brokers: c.Brokers,
		Sarama: c.sarama(), StateDir: c.StateDir, CommitInterval: c.CommitInterval,
		Workers: c.Workers, Endpoint: c.QueryEndpoint, MaxBuffered: c.MaxBufferedRecords,
		Logger: c.Logger, OnState: c.StateListener, OnRestore: c.RestoreListener,
		SerdePreflight: func(ctx context.Context) error { return topo.PreflightFor(ctx, appID) },
		LevelDB:        c.LevelDB, ExactlyOnce: c.Guarantee == ExactlyOnce,
		ReplicationFactor: int16(c.ReplicationFactor), MinInsyncReplicas: c.MinInsyncReplicas,
		StartupTimeout: c.StartupTimeout, ShutdownTimeout: c.ShutdownTimeout,
		RepartitionPurgeInterval: c.RepartitionPurgeInterval, MaxTaskIdle: c.MaxTaskIdle,
		LineageHeaders: c.LineageHeaders,
		Meter:          m,
		Standbys:       c.NumStandbyReplicas, AcceptableRecoveryLag: c.AcceptableRecoveryLag,
		MaxWarmups: c.MaxWarmupReplicas, ProbingInterval: c.ProbingRebalanceInterval,
		Eager: c.EagerRebalancing, CacheMaxBytes: c.StoreCacheMaxBytes,
	})
	if err != nil {
		return nil, err
	}
	a := &App{rt: rt}
	if c.Metrics != nil {
		if a.unregister, err = c.Metrics.Register(appID, rt.CollectMetrics); err != nil {
			return nil, fmt.Errorf("topology: Config.Metrics: %w", err)
		}
	}
	return a, nil
}

// Run joins the group and processes until ctx ends (it then returns nil)
// or a fatal error stops it (returned, naming the topic, partition and
// offset where it applies). It returns only after every goroutine it
// started has exited. An App runs once.
func (a *App) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running || a.closed {
		a.mu.Unlock()
		return errors.New("brook: App.Run called twice or after Close")
	}
	a.running = true
	ctx, a.cancel = context.WithCancel(ctx)
	a.done = make(chan struct{})
	a.mu.Unlock()
	defer close(a.done)
	return a.rt.Run(ctx)
}

// Close stops a running App and waits for Run to return, then removes the
// App from Config.Metrics. It is safe to call more than once and from any
// goroutine.
func (a *App) Close() error {
	a.mu.Lock()
	a.closed = true
	cancel, done := a.cancel, a.done
	a.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	if a.unregister != nil {
		a.unregister()
	}
	return nil
}

// CaughtUpReport says whether this instance has processed its input up to
// the end offsets listed at one moment (App.CaughtUp, App.WaitCaughtUp):
// CaughtUp, the App's State, a Reason when not, and the Partitions of the
// tasks assigned to this instance with their Target (end offset),
// Position, Committed offset and Remaining offsets.
type CaughtUpReport = runtime.CaughtUpReport

// PartitionProgress is one input partition in a CaughtUpReport.
type PartitionProgress = runtime.PartitionProgress

// CaughtUp lists the end offsets of every input partition of the
// application now (ListOffsets: the high watermark, or the last stable
// offset under ExactlyOnce) and reports, without waiting, whether every
// task assigned to this instance has processed its partitions up to them.
// Offsets that hold only transaction markers (or aborted records under
// ExactlyOnce) count as processed: no consumer ever receives them, so a
// position may rest below such an end. The input partitions include
// repartition and table topics; records written to a repartition topic
// after the end offsets were listed are not waited for (call again to
// follow them through). It fails when the App is not running or the
// brokers cannot list the offsets.
func (a *App) CaughtUp(ctx context.Context) (CaughtUpReport, error) {
	mark, err := a.rt.MarkEnds(ctx)
	if err != nil {
		return CaughtUpReport{State: a.State()}, err
	}
	return a.rt.CaughtUp(ctx, mark), nil
}

// WaitCaughtUp lists the end offsets of every input partition of the
// application (as CaughtUp does; if Run has not connected yet, as soon as
// it has) and waits until every task assigned to this instance has
// processed its partitions up to them. It returns the report that said
// so, or the last report and an error when ctx ends or the App stops
// first. Tests use it to wait for an App to process what they produced;
// deploy checks, to wait for a new instance to catch up. Processed means
// taken through the topology: under ExactlyOnce the output becomes visible
// at the next commit (CommitInterval).
func (a *App) WaitCaughtUp(ctx context.Context) (CaughtUpReport, error) {
	for {
		mark, err := a.rt.MarkEnds(ctx)
		if err == nil {
			return a.rt.WaitCaughtUp(ctx, mark)
		}
		s := a.State()
		if !errors.Is(err, runtime.ErrNotRunning) || s == StateStopped || s == StateError {
			return CaughtUpReport{State: s}, err
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return CaughtUpReport{State: s}, fmt.Errorf("brook: not caught up: %w (the application has not connected yet)", ctx.Err())
		case <-t.C:
		}
	}
}

// ErrNotRunning is returned by CaughtUp when the App is not running (Run
// not called yet, or returned).
var ErrNotRunning = runtime.ErrNotRunning

// State returns the App's current state.
func (a *App) State() State { return a.rt.State() }

// RestoredRecords returns, per task ("<sub-topology>_<partition>"), how
// many changelog records its stores restored when the task last opened;
// and under "global", how many records the global tables (GlobalTable)
// restored when Run started, if the topology has any.
func (a *App) RestoredRecords() map[string]int64 {
	out := map[string]int64{}
	for id, n := range a.rt.RestoredRecords() {
		out[id.String()] = n
	}
	if a.rt.GlobalsReady() || a.rt.GlobalRestoredRecords() > 0 {
		out["global"] = a.rt.GlobalRestoredRecords()
	}
	return out
}

// AuthenticationError is returned by Run when a broker refuses the SASL
// credentials or mechanism (Config.SASL); it names the broker, mechanism
// and user. Run checks the credentials before anything else and does not
// retry them.
type AuthenticationError = runtime.AuthenticationError

// TLSError is returned by Run when the TLS handshake with a broker fails
// (Config.TLS): an untrusted or invalid broker certificate, a client
// certificate the broker refuses, or a listener that does not speak TLS.
// It names the broker and says which. Run does not retry it.
type TLSError = runtime.TLSError

// ShutdownTimeoutError is returned by Run when stopping took longer than
// Config.ShutdownTimeout (the cluster could not be reached) and brook cut
// its connections to the brokers: Uncommitted names the tasks whose final
// commit did not complete (their work since their last commit is
// processed again after a restart: duplicates under at-least-once, an
// aborted transaction under exactly-once), and Unwrap returns the error
// that stopped the App, or the one the final commit ran into.
type ShutdownTimeoutError = runtime.ShutdownTimeoutError

// MissingTopicsError is returned by Run when source topics do not exist;
// Topics lists them.
type MissingTopicsError = runtime.MissingTopicsError

// StateDirLockedError is returned by Run when another instance (in this
// process or another) holds the application's folder under StateDir.
type StateDirLockedError = runtime.StateDirLockedError

// StartupTimeoutError is returned by Run when a start-up step before
// joining the group did not finish within Config.StartupTimeout.
type StartupTimeoutError = runtime.StartupTimeoutError

// TopicMismatchError is returned by Run when an existing changelog topic's
// partition count, cleanup policy, replication factor or
// min.insync.replicas is not what the App needs; it names the topic, the
// setting and the expected and actual values.
type TopicMismatchError = changelog.TopicMismatchError

// CoPartitionError is returned by Run when co-partitioned source topics of
// a sub-topology have different partition counts; it names the topics and
// their counts.
type CoPartitionError = runtime.CoPartitionError
