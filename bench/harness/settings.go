package harness

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// Systems and workloads by name.
const (
	SysSarama   = "sarama"
	SysBrook    = "brook"
	SysGoka     = "goka"
	SysKStreams = "kstreams"
	SysLevelDB  = "goleveldb" // raw batch writes, the reference of B5
	// SysBrookDSL is brook's Streams DSL on B2, B3 and B4, run beside
	// the hand-written brook processors whenever brook is selected (B8
	// has no hand-written version: brook runs it through the DSL).
	SysBrookDSL = "brook-dsl"
	// SysBrookMetrics is brook's hand-written B2 with
	// topology.Config.Metrics set and the registry read every
	// ScrapeInterval, as a Prometheus scrape would (issue 17).
	SysBrookMetrics = "brook-metrics"
	// SysBrookLineage is brook's hand-written B2 with
	// topology.Config.LineageHeaders on (issue 17).
	SysBrookLineage = "brook-lineage"
	// SysBrookNoCache is brook's hand-written B2 and B3 with the record
	// cache off (topology.Config.StoreCacheMaxBytes < 0), the "before" of
	// the cache (issue 19).
	SysBrookNoCache = "brook-nocache"
)

// ObservabilitySystems are brook with its observability on (issue 17).
// They run only when named in Options.Systems (the full run leaves them
// out) and bring plain brook with them, their baseline, on B2u and B2z.
// (brook-nocache, issue 19, is run the same way.)
var ObservabilitySystems = []string{SysBrookMetrics, SysBrookLineage, SysBrookNoCache}

// ScrapeInterval is how often the brook-metrics worker reads its metrics
// registry's Snapshot: what a Prometheus server scraping the App's
// /metrics every 5 s costs it (the adapter renders one Snapshot per
// scrape).
const ScrapeInterval = 5 * time.Second

// AllSystems lists the systems in report order.
var AllSystems = []string{SysSarama, SysBrook, SysGoka, SysKStreams}

// AllWorkloads lists the workloads in report order.
var AllWorkloads = []string{"B0", "B1", "B2u", "B2z", "B3", "B4", "B5", "B6", "B7", "B8"}

// FailoverWorkloads are the failover benchmark of issue 18: three
// instances of B2's count under exactly-once, one SIGKILLed, then a new
// one started; F1 with no standby replica, F1s with one. They run only
// when named in Options.Workloads (they take about a minute per system
// and round, and the default run stays as it was).
var FailoverWorkloads = []string{"F1", "F1s"}

// Producer holds the producer settings every system uses.
type Producer struct {
	// Acks is "all" (every in-sync replica) for everyone.
	Acks string `json:"acks"`
	// LingerMs is Java's linger.ms and sarama's Producer.Flush.Frequency.
	LingerMs int `json:"linger_ms"`
	// BatchBytes is Java's batch.size and sarama's Producer.Flush.Bytes.
	BatchBytes int `json:"batch_bytes"`
	// Idempotent is enable.idempotence / Producer.Idempotent.
	Idempotent bool `json:"idempotent"`
	// Compression is none for everyone.
	Compression string `json:"compression"`
}

// DefaultProducer is what the report states and every system gets.
var DefaultProducer = Producer{Acks: "all", LingerMs: 5, BatchBytes: 64 << 10, Idempotent: true, Compression: "none"}

// applySarama applies p to a sarama config.
func (p Producer) applySarama(c *sarama.Config) {
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Flush.Frequency = time.Duration(p.LingerMs) * time.Millisecond
	c.Producer.Flush.Bytes = p.BatchBytes
	c.Producer.Flush.MaxMessages = 0
	c.Producer.Compression = sarama.CompressionNone
	if p.Idempotent {
		c.Producer.Idempotent = true
		c.Net.MaxOpenRequests = 1
		if c.Producer.Retry.Max < 10 {
			c.Producer.Retry.Max = 10
		}
	}
}

// Options selects what a run does and how big it is.
type Options struct {
	// Workloads and Systems to run (names from AllWorkloads, AllSystems).
	Workloads []string
	Systems   []string
	// Partitions of every topic.
	Partitions int32
	// Records per throughput workload.
	Records int
	// ValueBytes is the size of input values.
	ValueBytes int
	// UniformKeys is the key space of B0, B1, B2u, B4 (10k in the issue).
	UniformKeys int
	// ZipfKeys is the key space of B2z (1M in the issue); ZipfS its
	// exponent.
	ZipfKeys int
	ZipfS    float64
	// TableKeys is the size of B3's table (1M in the issue).
	TableKeys int
	// RestoreKeys is the size of B5's changelog (1M); RestoreTail the
	// records appended before the warm restore.
	RestoreKeys int
	RestoreTail int
	// Rate (records/s) and LatencyFor of the fixed-rate latency phase; a
	// zero LatencyFor skips it.
	Rate       int
	LatencyFor time.Duration
	// Brokers overrides the broker (else KAFKA_BROKERS, else kfake).
	Brokers []string
	// WorkDir holds state directories, logs and profiles.
	WorkDir string
	// JavaCmd is the command line prefix that starts the Kafka Streams
	// peer (java ... -cp ... dev.brook.bench.Peer); empty skips it.
	JavaCmd []string
	// WorkerCmd starts this harness as a worker (the binary itself).
	WorkerCmd []string
	// Profile writes a CPU profile of every brook worker into WorkDir.
	Profile bool
	// RunTimeout bounds one system's run of one workload.
	RunTimeout time.Duration
	// Deadline bounds the whole run: cells not started by then are
	// reported missing with that reason. Zero means none.
	Deadline time.Duration
	// JavaVersion is reported (java -version) when the JVM runs.
	JavaVersion string
	// Repeat runs every cell this many times (values below 2: once),
	// the systems of a workload interleaved (round 2 in reverse order,
	// and so on); the report gives medians (Cell.Runs).
	Repeat int
	// Verify records a digest of every throughput cell's output
	// (Cell.Output), so the smoke pass can check that brook-dsl writes
	// what brook writes.
	Verify bool
	// FailoverKeys is the key space of the failover workloads: the
	// store is built with one record per key before the instances are
	// measured (issue 18's target names a 1M-key store).
	FailoverKeys int
	// FailoverRate is the input rate of the failover workloads, in
	// records/s per input partition.
	FailoverRate int
	// SessionTimeout is the consumer-group session timeout of every
	// failover instance (brook and Kafka Streams alike; heartbeat a
	// third of it). Static membership is off.
	SessionTimeout time.Duration
	// FailoverSteady is how long the failover workloads produce at
	// FailoverRate before the kill (the steady-state reference), and
	// FailoverSettle how long they keep measuring after every task
	// processes again and the group is stable.
	FailoverSteady, FailoverSettle time.Duration
	// KeepTopics keeps the run's topics on a real broker; by default
	// they are deleted at the end (the embedded broker goes away anyway).
	KeepTopics bool
	// Logf receives progress lines.
	Logf func(format string, args ...any)
}

// FullOptions are the sizes of the full run (docs/BENCHMARKS.md).
func FullOptions() Options {
	return Options{
		Workloads: AllWorkloads, Systems: AllSystems, Partitions: 6,
		Records: 300_000, ValueBytes: 100, UniformKeys: 10_000, ZipfKeys: 1_000_000, ZipfS: 1.1,
		TableKeys: 1_000_000, RestoreKeys: 1_000_000, RestoreTail: 10_000,
		Rate: 5_000, LatencyFor: 6 * time.Second, RunTimeout: 3 * time.Minute, Deadline: 18 * time.Minute,
		FailoverKeys: 200_000, FailoverRate: 300, SessionTimeout: 10 * time.Second,
		FailoverSteady: 6 * time.Second, FailoverSettle: 5 * time.Second,
	}
}

// SmokeOptions are the sizes of the seconds-long smoke pass.
func SmokeOptions() Options {
	o := FullOptions()
	o.Systems = []string{SysSarama, SysBrook, SysGoka}
	o.Partitions = 2
	o.Records, o.UniformKeys, o.ZipfKeys = 2_000, 100, 10_000
	o.TableKeys, o.RestoreKeys, o.RestoreTail = 2_000, 2_000, 100
	o.Rate, o.LatencyFor = 500, time.Second
	o.RunTimeout = time.Minute
	o.FailoverKeys, o.FailoverRate = 2_000, 50
	o.SessionTimeout, o.FailoverSteady, o.FailoverSettle = 6*time.Second, 4*time.Second, 2*time.Second
	return o
}

// Validate checks names and sizes.
func (o *Options) Validate() error {
	for _, w := range o.Workloads {
		if !slices.Contains(AllWorkloads, w) && !slices.Contains(FailoverWorkloads, w) {
			return fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(append(slices.Clone(AllWorkloads), FailoverWorkloads...), ","))
		}
	}
	for _, s := range o.Systems {
		if !slices.Contains(AllSystems, s) && !slices.Contains(ObservabilitySystems, s) {
			return fmt.Errorf("unknown system %q (have %s)", s, strings.Join(append(slices.Clone(AllSystems), ObservabilitySystems...), ","))
		}
	}
	if o.Partitions <= 0 || o.Records <= 0 || o.ValueBytes <= 0 || o.UniformKeys <= 0 || o.ZipfKeys <= 0 ||
		o.TableKeys <= 0 || o.RestoreKeys <= 0 || o.RestoreTail < 0 {
		return fmt.Errorf("sizes must be positive")
	}
	for _, w := range FailoverWorkloads {
		if slices.Contains(o.Workloads, w) && (o.FailoverKeys <= 0 || o.FailoverRate <= 0 || o.SessionTimeout < time.Second || o.FailoverSteady <= 0 || o.FailoverSettle < 0) {
			return fmt.Errorf("%s: failover keys and rate must be positive, the session timeout at least 1s", w)
		}
	}
	if o.ZipfS <= 1 {
		return fmt.Errorf("zipf exponent must be > 1")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.RunTimeout <= 0 {
		o.RunTimeout = 3 * time.Minute
	}
	return nil
}

func (o *Options) has(sys string) bool { return slices.Contains(o.Systems, sys) }
