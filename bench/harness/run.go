package harness

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
)

// Cell is one system's result on one workload. Missing says why a cell
// has no figures.
type Cell struct {
	Workload string `json:"workload"`
	System   string `json:"system"`
	// Records is how many input records the throughput phase consumed.
	Records       int64   `json:"records,omitempty"`
	RecordsPerSec float64 `json:"records_per_sec,omitempty"`
	// End-to-end latency (input record timestamp to the harness reading
	// the output) at Options.Rate records/s: its 50th, 99th and 99.9th
	// percentiles and its largest value. With repeats, each percentile
	// is the median over the runs with latency figures, MaxLatencyMs the
	// largest over them and LatencySamples their sum.
	P50Ms          float64 `json:"p50_ms,omitempty"`
	P99Ms          float64 `json:"p99_ms,omitempty"`
	P999Ms         float64 `json:"p999_ms,omitempty"`
	MaxLatencyMs   float64 `json:"max_latency_ms,omitempty"`
	LatencySamples int     `json:"latency_samples,omitempty"`
	LatencyMissing string  `json:"latency_missing,omitempty"`
	// Restore (B5): cold from an empty state directory, warm from a
	// checkpoint with a small tail.
	ColdMs         float64 `json:"restore_cold_ms,omitempty"`
	ColdKeysPerSec float64 `json:"restore_cold_keys_per_sec,omitempty"`
	WarmMs         float64 `json:"restore_warm_ms,omitempty"`
	WarmKeysPerSec float64 `json:"restore_warm_keys_per_sec,omitempty"`
	PeakRSSMB      float64 `json:"peak_rss_mb,omitempty"`
	// CPUUsPerRecord is the process's CPU time (user + system, all its
	// threads) from the first to the last output record of the
	// throughput phase, per output record in that span: less moved by
	// other load on the machine than records/s.
	CPUUsPerRecord  float64 `json:"cpu_us_per_record,omitempty"`
	Missing         string  `json:"missing,omitempty"`
	Note            string  `json:"note,omitempty"`
	ProfilePath     string  `json:"profile,omitempty"`
	DurationSeconds float64 `json:"duration_s"`
	// Output is, with Options.Verify, a digest of the output records of
	// the throughput phase (their number and an order-independent sum of
	// a hash of key, value and timestamp), to compare systems' outputs.
	Output string `json:"output,omitempty"`
	// Runs holds, with Options.Repeat above 1, each run's records/s (B5:
	// cold keys/s) in run order, 0 for a run without figures; the cell's
	// figures are then the median run's (but for the latency figures),
	// and RecordsPerSec (B5: ColdKeysPerSec) the median of Runs.
	Runs []float64 `json:"runs,omitempty"`
	// CPURuns holds each run's CPUUsPerRecord likewise; CPUUsPerRecord is
	// then their median.
	CPURuns []float64 `json:"cpu_runs,omitempty"`
	// P99Runs holds, with repeats, each run's P99Ms in run order, 0 for a
	// run without latency figures; P99Ms is then the median of the
	// others.
	P99Runs []float64 `json:"p99_runs,omitempty"`
	// The failover workloads (F1, F1s; failover.go). StoreKeys is the
	// store's key count, Standbys the standby replicas per task,
	// SessionTimeoutMs the group session timeout.
	StoreKeys        int     `json:"store_keys,omitempty"`
	Standbys         int     `json:"standbys,omitempty"`
	SessionTimeoutMs float64 `json:"session_timeout_ms,omitempty"`
	// FailoverMs is the time from the SIGKILL until the last of the
	// killed instance's tasks processed again; with repeats the median,
	// each run's in FailoverRuns (Runs).
	FailoverMs float64 `json:"failover_ms,omitempty"`
	// SteadyGapMs is the largest gap of any task in the steady phase
	// before the kill, from its second second to two seconds before the
	// kill (the reference for the others).
	SteadyGapMs float64 `json:"steady_gap_ms,omitempty"`
	// FailoverRetainedGapMs is the largest processing gap, from the kill
	// until the group settled, of the retained tasks: those a surviving
	// instance ran before and after the kill. ScaleOutGapMs and
	// ScaleOutRetainedGapMs are the largest gap of any task and of the
	// tasks that stayed where they were, from the start of a fourth
	// instance until the group settled. With repeats, the largest over
	// the runs.
	FailoverRetainedGapMs float64 `json:"failover_retained_gap_ms,omitempty"`
	// FailoverOthersGapMs is the largest gap of every task the killed
	// instance did not run (retained or moved between the survivors).
	FailoverOthersGapMs float64 `json:"failover_others_gap_ms,omitempty"`
	// FailoverRetained and ScaleOutRetained count the retained tasks (on
	// the same instance before and after) of the median run.
	FailoverRetained      int     `json:"failover_retained,omitempty"`
	ScaleOutRetained      int     `json:"scale_out_retained,omitempty"`
	ScaleOutGapMs         float64 `json:"scale_out_gap_ms,omitempty"`
	ScaleOutRetainedGapMs float64 `json:"scale_out_retained_gap_ms,omitempty"`
	// FailoverRestored and ScaleOutRestored are the changelog records the
	// live instances restored during the failover and the scale-out (as
	// the workers report them; with repeats, the median run's).
	FailoverRestored int64 `json:"failover_restored,omitempty"`
	ScaleOutRestored int64 `json:"scale_out_restored,omitempty"`
	// Lost and Duplicated count input records without their output and
	// outputs repeating a count, over every key (exactly-once: both 0;
	// with repeats, summed over the runs).
	Lost       int64 `json:"lost,omitempty"`
	Duplicated int64 `json:"duplicated,omitempty"`
}

// Report is the result of a run.
type Report struct {
	Started   time.Time         `json:"started"`
	Seconds   float64           `json:"seconds"`
	Machine   Machine           `json:"machine"`
	Versions  map[string]string `json:"versions"`
	Broker    string            `json:"broker"`
	Producer  Producer          `json:"producer"`
	Sizes     map[string]any    `json:"sizes"`
	Configs   map[string]string `json:"configs"`
	Cells     []Cell            `json:"cells"`
	Workloads []string          `json:"workloads"`
	Systems   []string          `json:"systems"`
}

// Cell returns the cell of system on workload, if any.
func (r *Report) Cell(workload, system string) (Cell, bool) {
	for _, c := range r.Cells {
		if c.Workload == workload && c.System == system {
			return c, true
		}
	}
	return Cell{}, false
}

// systemsOf lists the systems the issue compares on each workload.
var systemsOf = map[string][]string{
	"B0":  {SysSarama},
	"B1":  {SysBrook, SysKStreams},
	"B2u": {SysBrook, SysBrookDSL, SysBrookMetrics, SysBrookLineage, SysBrookNoCache, SysGoka, SysKStreams},
	"B2z": {SysBrook, SysBrookDSL, SysBrookMetrics, SysBrookLineage, SysBrookNoCache, SysGoka, SysKStreams},
	"B3":  {SysBrook, SysBrookDSL, SysBrookNoCache, SysGoka, SysKStreams},
	"B4":  {SysBrook, SysBrookDSL, SysKStreams},
	"B5":  {SysBrook, SysGoka, SysKStreams, SysLevelDB},
	"B6":  {SysBrook, SysGoka},
	"B7":  {SysBrook, SysKStreams},
	"B8":  {SysBrook, SysKStreams},
	"F1":  {SysBrook, SysKStreams},
	"F1s": {SysBrook, SysKStreams},
}

type runner struct {
	o      Options
	b      *broker
	prefix string
	rep    *Report
	inputs map[string]int64 // records in each input topic
	// outputs and reference hold, for an input whose workload does not
	// write one output per input record (B8), the number of records its
	// output must have and their digest (broker.digest's format).
	outputs   map[string]int64
	reference map[string]string
	made      map[string]bool
	round     int // the repeat being run (Options.Repeat), from 0
	// eventsAt is the timestamp of B3's events, set when its table is
	// made: every cell produces the same events, timestamps included.
	eventsAt time.Time
}

// selected reports whether sys runs in this run: the reference rows
// (goleveldb, brook-dsl) run with brook, and brook runs with
// brook-metrics and brook-lineage (their baseline).
func (o *Options) selected(sys string) bool {
	switch sys {
	case SysLevelDB, SysBrookDSL:
		return o.has(SysBrook)
	case SysBrook:
		return o.has(SysBrook) || o.has(SysBrookMetrics) || o.has(SysBrookLineage) || o.has(SysBrookNoCache)
	}
	return o.has(sys)
}

// isBrook reports whether sys is one of brook's worker systems.
func isBrook(sys string) bool {
	switch sys {
	case SysBrook, SysBrookDSL, SysBrookMetrics, SysBrookLineage, SysBrookNoCache:
		return true
	}
	return false
}

// cellName names the topics, application id, state and log of sys on
// workload w in the current round.
func (r *runner) cellName(w, sys string) string {
	if r.round == 0 {
		return w + "-" + sys
	}
	return fmt.Sprintf("%s-%s-r%d", w, sys, r.round+1)
}

// Run runs the selected workloads and systems and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.WorkDir == "" {
		d, err := os.MkdirTemp("", "brookbench-")
		if err != nil {
			return nil, err
		}
		o.WorkDir = d
	}
	b, err := startBroker(&o)
	if err != nil {
		return nil, err
	}
	defer b.close()
	start := time.Now()
	r := &runner{
		o: o, b: b, prefix: fmt.Sprintf("bb%d", start.UnixNano()%1e9),
		inputs: map[string]int64{}, made: map[string]bool{}, outputs: map[string]int64{}, reference: map[string]string{},
		rep: &Report{
			Started: start, Machine: machine(), Versions: versions(o), Producer: DefaultProducer,
			Workloads: o.Workloads, Systems: o.Systems,
			Sizes: map[string]any{
				"partitions": o.Partitions, "records": o.Records, "value_bytes": o.ValueBytes,
				"uniform_keys": o.UniformKeys, "zipf_keys": o.ZipfKeys, "zipf_s": o.ZipfS,
				"table_keys": o.TableKeys, "restore_keys": o.RestoreKeys, "restore_tail": o.RestoreTail,
				"latency_rate_per_s": o.Rate, "latency_seconds": o.LatencyFor.Seconds(),
			},
			Configs: map[string]string{
				"commit_interval": "1s for brook, goka (per message marking, sarama autocommit 1s), Kafka Streams and the sarama pipe",
				"brook":           "topology.Config defaults (1 worker, LevelDB stores, MaxBufferedRecords 1000; MaxTaskIdle 0: as Kafka Streams, wait without a bound for records already on the broker before taking another partition's later ones), at-least-once unless B7",
				"goka":            "goka.DefaultConfig with the common producer settings, LevelDB storage (storage.DefaultBuilder), offsets oldest",
				"kafka_streams":   "1 stream thread, statestore.cache.max.bytes=0 (one output per input, like brook and goka), topology.optimization=all (the B3 table topic is its changelog, as in brook), RocksDB stores, consumer internal.leave.group.on.close=true (as brook and goka leave on close), JVM -Xmx1g",
				"sarama_pipe":     "consumer group + async producer, murmur2 partitioner, MarkMessage per record",
				"partitioner":     "murmur2 (Java default) for the harness's inputs",
				"latency":         "harness producer stamps each record with the send time; latency = harness receive time of the output − that timestamp (includes the harness producer's linger)",
				"restore":         "brook: Restoring→Running state change; goka: first rebalance callback→Recovered(); Kafka Streams: first onRestoreStart→last onRestoreEnd",
				"b3":              "the 1M-key table topic is filled first; each cell starts the system with an empty stream topic of its own, waits until it has loaded the table (goka: recovered; brook, Kafka Streams: the group committed the table topic's end offsets), then produces the 300,000 events (the same in every cell); records/s times the joins only",
				"b4_brook":        "a hand-written processor over a window store (Fetch, Put, AdvanceTime per record), no grace, output key <key>@<window start ms>",
				"brook_metrics":   "brook's hand-written B2 with topology.Config.Metrics = metrics.NewRegistry(), its Snapshot read every 5 s in the worker (a Prometheus scrape's cost)",
				"brook_lineage":   "brook's hand-written B2 with topology.Config.LineageHeaders (one brook.lineage header on every output record, checked on every record of the output under -verify)",
				"brook_dsl":       "brook's Streams DSL: B2 Stream → GroupByKey → Count → ToStream → MapValues(count) → To; B3 TableOf(table) and Join(Stream, table) → To; B4 WindowedBy(GroupByKey, Tumbling(10m)) → Count → ToStream → Map(<key>@<window start ms>, count) → To; same outputs as brook's hand-written processors",
				"b8":              "authorisations (stream) joined with captures (stream), inner, window 0 before and 5 min after each authorisation, grace 20 min; brook: DSL JoinStreams with JoinWindow(0).After(5m).Grace(20m) (LevelDB window stores); Kafka Streams: KStream#join with JoinWindows.ofTimeDifferenceAndGrace(5m, 20m).before(0) (RocksDB); records/s counts join results, each system's output is checked against the harness's own join of the input",
			},
		},
	}
	if b.embedded() {
		r.rep.Broker = "kfake (embedded, in the harness process)"
	} else {
		r.rep.Broker = "Kafka at " + strings.Join(b.addrs, ",")
	}
	if o.Repeat > 1 {
		r.rep.Sizes["repeat"] = o.Repeat
	}
	if slices.ContainsFunc(o.Workloads, func(w string) bool { return slices.Contains(FailoverWorkloads, w) }) {
		r.rep.Sizes["failover_keys"] = o.FailoverKeys
		r.rep.Sizes["failover_rate_per_partition_per_s"] = o.FailoverRate
		r.rep.Sizes["failover_instances"] = failoverInstances
		r.rep.Configs["failover"] = fmt.Sprintf("F1/F1s: B2's count per key, exactly-once (brook ExactlyOnce; Kafka Streams exactly_once_v2), %d instances as separate processes, each with its own state directory; "+
			"group session timeout %v and heartbeat %v for both, static membership off; brook: eager rebalancing (its protocol today), warm-ups at their defaults (AcceptableRecoveryLag 10000, ProbingRebalanceInterval 1 min, earlier once caught up), its metrics registry on to report restored records; "+
			"Kafka Streams: defaults otherwise (cooperative rebalancing, acceptable.recovery.lag 10000, probing.rebalance.interval.ms 10 min, transaction.timeout.ms 10 s); standbys: num.standby.replicas / topology.Config.NumStandbyReplicas",
			failoverInstances, o.SessionTimeout, o.SessionTimeout/3)
	}
	for _, w := range append(slices.Clone(AllWorkloads), FailoverWorkloads...) {
		if !slices.Contains(o.Workloads, w) || ctx.Err() != nil {
			continue
		}
		o.Logf("== %s", w)
		var systems []string
		for _, sys := range systemsOf[w] {
			if o.selected(sys) {
				systems = append(systems, sys)
			}
		}
		runs := map[string][]Cell{}
		for r.round = 0; r.round < max(1, o.Repeat) && ctx.Err() == nil; r.round++ {
			order := slices.Clone(systems)
			if r.round%2 == 1 {
				// ABBA: no system always runs first (or right after
				// another's load) in every round.
				slices.Reverse(order)
			}
			for _, sys := range order {
				if ctx.Err() != nil {
					break
				}
				t0 := time.Now()
				var c Cell
				if o.Deadline > 0 && t0.Sub(start) > o.Deadline-o.RunTimeout/2 {
					c.Missing = fmt.Sprintf("not run: the run's %v deadline (-deadline) was near", o.Deadline)
				} else {
					c = r.runCell(ctx, w, sys)
				}
				c.Workload, c.System = w, sys
				c.DurationSeconds = time.Since(t0).Seconds()
				if o.Repeat > 1 {
					o.Logf("   %-9s run %d: %s", sys, r.round+1, c.summary())
				} else {
					o.Logf("   %-9s %s", sys, c.summary())
				}
				runs[sys] = append(runs[sys], c)
			}
		}
		for _, sys := range systems {
			if cs := runs[sys]; len(cs) > 0 {
				c := mergeRuns(cs)
				if len(cs) > 1 {
					o.Logf("   %-9s median of %d: %s", sys, len(cs), c.summary())
				}
				r.rep.Cells = append(r.rep.Cells, c)
			}
		}
	}
	r.round = 0
	if !b.embedded() && !o.KeepTopics {
		r.deleteTopics()
	}
	r.rep.Seconds = time.Since(start).Seconds()
	return r.rep, ctx.Err()
}

// runMetric is the figure repeats are compared by: records/s, or for B5
// the cold restore rate.
func runMetric(c Cell) float64 {
	if c.Missing != "" {
		return 0
	}
	if c.FailoverMs > 0 {
		return c.FailoverMs
	}
	if c.RecordsPerSec > 0 {
		return c.RecordsPerSec
	}
	return c.ColdKeysPerSec
}

// mergeRuns folds the repeats of one system on one workload into a cell:
// the figures of the median run (by runMetric; the lower middle one of an
// even count), the median of runMetric over the runs that have one, and
// every run's value in Runs. The latency percentiles are each the median
// over the runs with latency figures (not the median run's: a run's
// throughput says nothing of its tail), every run's p99 in P99Runs. A
// cell is missing only if every run is.
func mergeRuns(cs []Cell) Cell {
	if len(cs) == 1 {
		return cs[0]
	}
	var ok, lat []Cell
	var vals, cpus []float64
	var total float64
	runs, cpuRuns, p99Runs := make([]float64, len(cs)), make([]float64, len(cs)), make([]float64, len(cs))
	for i, c := range cs {
		total += c.DurationSeconds
		runs[i] = runMetric(c)
		if runs[i] > 0 {
			ok = append(ok, c)
			vals = append(vals, runs[i])
			if cpuRuns[i] = c.CPUUsPerRecord; cpuRuns[i] > 0 {
				cpus = append(cpus, cpuRuns[i])
			}
			if p99Runs[i] = c.P99Ms; p99Runs[i] > 0 {
				lat = append(lat, c)
			}
		}
	}
	if len(ok) == 0 {
		c := cs[0]
		c.Runs, c.DurationSeconds = runs, total
		return c
	}
	sort.Slice(ok, func(i, j int) bool { return runMetric(ok[i]) < runMetric(ok[j]) })
	c := ok[(len(ok)-1)/2]
	if len(lat) > 0 {
		mergeLatency(&c, lat, len(ok))
		c.P99Runs = p99Runs
	}
	if c.FailoverMs > 0 {
		// The worst gaps and every loss or duplicate over the runs.
		c.Lost, c.Duplicated = 0, 0
		for _, x := range cs {
			c.FailoverRetainedGapMs = max(c.FailoverRetainedGapMs, x.FailoverRetainedGapMs)
			c.FailoverOthersGapMs = max(c.FailoverOthersGapMs, x.FailoverOthersGapMs)
			c.ScaleOutGapMs = max(c.ScaleOutGapMs, x.ScaleOutGapMs)
			c.ScaleOutRetainedGapMs = max(c.ScaleOutRetainedGapMs, x.ScaleOutRetainedGapMs)
			c.SteadyGapMs = max(c.SteadyGapMs, x.SteadyGapMs)
			c.Lost += x.Lost
			c.Duplicated += x.Duplicated
		}
		if c.Lost > 0 || c.Duplicated > 0 {
			c.Output = ""
		}
	}
	switch {
	case c.FailoverMs > 0:
		c.FailoverMs = median(vals)
	case c.RecordsPerSec > 0:
		c.RecordsPerSec = median(vals)
	default:
		c.ColdKeysPerSec = median(vals)
	}
	if len(cpus) > 0 {
		c.CPUUsPerRecord, c.CPURuns = median(cpus), cpuRuns
	}
	c.Runs, c.DurationSeconds = runs, total
	strs := make([]string, len(runs))
	for i, v := range runs {
		strs[i] = f0(v)
	}
	note := fmt.Sprintf("median of %d runs (%s); other figures from the median run", len(cs), strings.Join(strs, ", "))
	if len(lat) > 0 {
		note = fmt.Sprintf("median of %d runs (%s); latency percentiles the medians over %d runs; other figures from the median run", len(cs), strings.Join(strs, ", "), len(lat))
	}
	if n := len(cs) - len(ok); n > 0 {
		for _, m := range cs {
			if runMetric(m) == 0 {
				note += fmt.Sprintf("; %d of %d runs without figures, first: %s", n, len(cs), strings.TrimSpace(m.Missing+" "+m.Note))
				break
			}
		}
	}
	c.Note = strings.TrimPrefix(c.Note+"; "+note, "; ")
	return c
}

// mergeLatency sets c's latency figures (c is the median run) from lat,
// the runs with latency figures among the withFigures runs that have
// throughput figures: each percentile the median over them, the largest
// latency of any, their samples summed. The median run's LatencyMissing
// stays if it has latency figures (it is then a caveat, such as outputs
// that did not arrive); runs without latency figures are counted in it.
func mergeLatency(c *Cell, lat []Cell, withFigures int) {
	if c.P99Ms == 0 {
		c.LatencyMissing = "" // why the median run has none: the others' stand
	}
	var p50s, p99s, p999s []float64
	c.MaxLatencyMs, c.LatencySamples = 0, 0
	for _, x := range lat {
		p99s = append(p99s, x.P99Ms)
		if x.P50Ms > 0 {
			p50s = append(p50s, x.P50Ms)
		}
		if x.P999Ms > 0 {
			p999s = append(p999s, x.P999Ms)
		}
		c.MaxLatencyMs = max(c.MaxLatencyMs, x.MaxLatencyMs)
		c.LatencySamples += x.LatencySamples
	}
	c.P50Ms, c.P99Ms, c.P999Ms = median(p50s), median(p99s), median(p999s)
	if n := withFigures - len(lat); n > 0 {
		c.LatencyMissing = strings.TrimPrefix(c.LatencyMissing+fmt.Sprintf("; %d of %d runs without latency figures", n, withFigures), "; ")
	}
}

// median returns the median of xs (the mean of the middle two of an even
// count), sorting xs; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	if len(xs)%2 == 0 {
		return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return xs[len(xs)/2]
}

// deleteTopics deletes the topics of this run (inputs, outputs and every
// system's internal topics, all named after the run's prefix) from a
// shared broker.
func (r *runner) deleteTopics() {
	topics, err := r.b.admin.ListTopics()
	if err != nil {
		r.o.Logf("   could not list topics to delete: %v", err)
		return
	}
	n := 0
	for t := range topics {
		if !strings.HasPrefix(t, r.prefix+"-") {
			continue
		}
		if err := r.b.admin.DeleteTopic(t); err != nil {
			r.o.Logf("   could not delete topic %s: %v", t, err)
			continue
		}
		n++
	}
	r.o.Logf("   deleted the run's %d topics (prefix %s-; -keep-topics keeps them)", n, r.prefix)
}

func (c Cell) summary() string {
	if c.Missing != "" {
		return "missing: " + c.Missing
	}
	var parts []string
	if c.RecordsPerSec > 0 {
		parts = append(parts, fmt.Sprintf("%.0f rec/s", c.RecordsPerSec))
	}
	if c.P99Ms > 0 {
		lat := fmt.Sprintf("p50 %.1fms p99 %.1fms", c.P50Ms, c.P99Ms)
		if c.P999Ms > 0 {
			lat += fmt.Sprintf(" p99.9 %.1fms", c.P999Ms)
		}
		if c.MaxLatencyMs > 0 {
			lat += fmt.Sprintf(" max %.1fms", c.MaxLatencyMs)
		}
		parts = append(parts, lat)
	}
	if c.ColdKeysPerSec > 0 {
		parts = append(parts, fmt.Sprintf("cold %.0f keys/s warm %.0f keys/s", c.ColdKeysPerSec, c.WarmKeysPerSec))
	}
	if c.CPUUsPerRecord > 0 {
		parts = append(parts, fmt.Sprintf("%.1f CPU µs/rec", c.CPUUsPerRecord))
	}
	if c.FailoverMs > 0 {
		parts = append(parts, fmt.Sprintf("failover %.1f s, retained gaps %.0f ms / %.0f ms (failover / scale-out), %d restored",
			c.FailoverMs/1000, c.FailoverRetainedGapMs, c.ScaleOutRetainedGapMs, c.FailoverRestored))
	}
	if c.Output != "" {
		parts = append(parts, "output "+c.Output)
	}
	parts = append(parts, fmt.Sprintf("rss %.0fMB (%.1fs)", c.PeakRSSMB, c.DurationSeconds))
	return strings.Join(parts, ", ")
}

func (r *runner) topic(name string) string { return r.prefix + "-" + name }

// input makes (once) an input topic of Options.Records records.
func (r *runner) input(name string, gen func(i int) record) (string, error) {
	t := r.topic(name)
	if r.made[t] {
		return t, nil
	}
	if err := r.b.createTopic(t, r.o.Partitions, false); err != nil {
		return "", err
	}
	t0 := time.Now()
	if err := r.b.produceN(t, r.o.Records, gen); err != nil {
		return "", fmt.Errorf("produce %s: %w", t, err)
	}
	r.o.Logf("   input %s: %d records in %v", name, r.o.Records, time.Since(t0).Round(time.Millisecond))
	r.made[t] = true
	r.inputs[t] = int64(r.o.Records)
	return t, nil
}

// inputList makes (once) an input topic of recs, in order.
func (r *runner) inputList(name string, recs []record) (string, error) {
	t := r.topic(name)
	if r.made[t] {
		return t, nil
	}
	if err := r.b.createTopic(t, r.o.Partitions, false); err != nil {
		return "", err
	}
	t0 := time.Now()
	if err := r.b.produceN(t, len(recs), func(i int) record { return recs[i] }); err != nil {
		return "", fmt.Errorf("produce %s: %w", t, err)
	}
	r.o.Logf("   input %s: %d records in %v", name, len(recs), time.Since(t0).Round(time.Millisecond))
	r.made[t] = true
	r.inputs[t] = int64(len(recs))
	return t, nil
}

// authCaptureInputs makes (once) B8's two topics, authorisations and
// captures, of about Options.Records records together, and records the
// join's expected output for the authorisations topic. Event time ends an
// hour and a half before now (brokers refuse timestamps too far ahead).
func (r *runner) authCaptureInputs() (auths, captures string, err error) {
	auths, captures = r.topic("auths"), r.topic("captures")
	if r.made[auths] && r.made[captures] {
		return auths, captures, nil
	}
	span := time.Duration(max(1, r.o.Records/2))*authCaptureGap + authCaptureAfter + 10*time.Minute
	d := makeAuthCapture(r.o.Records, r.o.ValueBytes, time.Now().Add(-span-90*time.Minute).Truncate(time.Millisecond))
	if _, err := r.inputList("auths", d.auths); err != nil {
		return "", "", err
	}
	if _, err := r.inputList("captures", d.captures); err != nil {
		return "", "", err
	}
	r.outputs[auths], r.reference[auths] = d.outputs, d.digest
	r.o.Logf("   B8 reference join: %s", d.digest)
	return auths, captures, nil
}

func (r *runner) uniformInput() (string, error) {
	k, v := newUniform(r.o.UniformKeys, 1), newValues(r.o.ValueBytes, 1)
	now := time.Now()
	return r.input("uniform", func(int) record { return record{key: k.next(), value: v.next(), ts: now} })
}

// hasPeer reports whether sys can run now.
func (r *runner) available(sys string) string {
	if sys == SysKStreams && len(r.o.JavaCmd) == 0 {
		return "Kafka Streams not run (no JVM command: the smoke pass skips it, or -systems excluded it)"
	}
	return ""
}

func (r *runner) runCell(ctx context.Context, w, sys string) Cell {
	if why := r.available(sys); why != "" {
		return Cell{Missing: why}
	}
	switch w {
	case "F1", "F1s":
		return r.failover(ctx, w, sys)
	case "B0", "B1", "B2u":
		in, err := r.uniformInput()
		if err != nil {
			return Cell{Missing: err.Error()}
		}
		wl := map[string]string{"B0": "B0", "B1": "B1", "B2u": "B2"}[w]
		return r.throughput(ctx, w, sys, wl, in, "", "alos", sys != SysGoka)
	case "B2z":
		k, v := newZipf(r.o.ZipfKeys, r.o.ZipfS, 2), newValues(r.o.ValueBytes, 2)
		now := time.Now()
		in, err := r.input("zipf", func(int) record { return record{key: k.next(), value: v.next(), ts: now} })
		if err != nil {
			return Cell{Missing: err.Error()}
		}
		return r.throughput(ctx, w, sys, "B2", in, "", "alos", false)
	case "B3":
		table := r.topic("B3-table")
		if !r.made[table] {
			if err := r.b.createTopic(table, r.o.Partitions, true); err != nil {
				return Cell{Missing: err.Error()}
			}
			v := newValues(r.o.ValueBytes, 3)
			now := time.Now().Add(-time.Hour)
			t0 := time.Now()
			if err := r.b.produceN(table, r.o.TableKeys, func(i int) record {
				return record{key: restoreKey(i), value: v.next(), ts: now}
			}); err != nil {
				return Cell{Missing: err.Error()}
			}
			r.o.Logf("   table: %d keys in %v", r.o.TableKeys, time.Since(t0).Round(time.Millisecond))
			r.made[table] = true
			r.eventsAt = time.Now()
		}
		// The stream goes into a topic of the cell's own, produced once
		// the system has loaded the table (tableLoaded): goka recovers a
		// joined table before it processes anything, while brook and
		// Kafka Streams process a table and a stream that are both on
		// the broker in timestamp order, so with both topics full from
		// the start their first output came before their last table
		// writes, which then fell inside the timed window and goka's did
		// not. The records are the same in every cell.
		in := r.topic(r.cellName(w, sys) + "-joinstream")
		if err := r.b.createTopic(in, r.o.Partitions, false); err != nil {
			return Cell{Missing: err.Error()}
		}
		before := func(p *proc, app string) error {
			t0 := time.Now()
			if err := r.tableLoaded(ctx, p, sys, app, table); err != nil {
				return fmt.Errorf("loading the table: %w", err)
			}
			r.o.Logf("   %s loaded the table in %v", sys, time.Since(t0).Round(time.Millisecond))
			k, v := newUniform(r.o.TableKeys, 3), newValues(r.o.ValueBytes, 4)
			if err := r.b.produceN(in, r.o.Records, func(int) record { return record{key: k.next(), value: v.next(), ts: r.eventsAt} }); err != nil {
				return fmt.Errorf("produce %s: %w", in, err)
			}
			r.inputs[in] = int64(r.o.Records)
			return nil
		}
		return r.throughputQ(ctx, w, sys, "B3", in, table, "alos", sys != SysGoka, nil, before)
	case "B4":
		k, v := newUniform(r.o.UniformKeys, 5), newValues(r.o.ValueBytes, 5)
		base := time.Now().Add(-time.Hour).Truncate(time.Hour)
		n := r.o.Records
		in, err := r.input("windowed", func(i int) record {
			return record{key: k.next(), value: v.next(), ts: base.Add(time.Duration(int64(time.Hour) * int64(i) / int64(n)))}
		})
		if err != nil {
			return Cell{Missing: err.Error()}
		}
		return r.throughput(ctx, w, sys, "B4", in, "", "alos", false)
	case "B5":
		if sys == SysLevelDB {
			return r.levelDBReference()
		}
		return r.restore(sys)
	case "B6":
		in, err := r.uniformInput()
		if err != nil {
			return Cell{Missing: err.Error()}
		}
		q := &queryLoad{keys: newUniform(r.o.UniformKeys, 21)}
		c := r.throughputQ(ctx, w, sys, "B6", in, "", "alos", true, q, nil)
		if c.Missing != "" {
			return c
		}
		fp50, fp99, fn := q.quantiles(1)
		p50, p99, n := q.quantiles(2)
		// The cell's latency is the GETs': drop the fixed-rate phase's
		// end-to-end p99.9 and largest latency (the queries report no
		// such figures).
		c.P50Ms, c.P99Ms, c.LatencySamples, c.LatencyMissing = p50, p99, n, ""
		c.P999Ms, c.MaxLatencyMs = 0, 0
		c.Note = fmt.Sprintf("GET latency over HTTP on loopback, one client back to back, while B2 runs at %d records/s (%d answers); while B2 runs at full speed: p50 %.2f ms, p99 %.2f ms (%d answers); records/s is B2's while queried", r.o.Rate, n, fp50, fp99, fn)
		if q.other > 0 || q.errs > 0 {
			c.Note += fmt.Sprintf("; %d not-ready answers, %d errors", q.other, q.errs)
		}
		if n == 0 {
			c.Missing = "no query answers in the fixed-rate phase"
		}
		return c
	case "B8":
		auths, captures, err := r.authCaptureInputs()
		if err != nil {
			return Cell{Missing: err.Error()}
		}
		c := r.throughput(ctx, w, sys, "B8", auths, captures, "alos", false)
		if c.Missing == "" {
			c.Note = strings.TrimPrefix(c.Note+fmt.Sprintf("; %d authorisations and %d captures in, %d join results out (records/s counts results)",
				r.inputs[auths], r.inputs[captures], r.outputs[auths]), "; ")
		}
		return c
	case "B7":
		in, err := r.uniformInput()
		if err != nil {
			return Cell{Missing: err.Error()}
		}
		c := r.throughput(ctx, w, sys, "B7", in, "", "eos", false)
		if base, ok := r.rep.Cell("B2u", sys); ok && base.RecordsPerSec > 0 && c.RecordsPerSec > 0 {
			c.Note = fmt.Sprintf("exactly-once ÷ at-least-once (B2u) = %.2f", c.RecordsPerSec/base.RecordsPerSec)
		}
		return c
	}
	return Cell{Missing: "unknown workload"}
}

// launch starts sys on workload wl; second is the workload's second
// input topic (B3's table, B8's captures), if any.
func (r *runner) launch(name, sys, wl, app, in, out, second, state, guarantee string, extra ...string) (*proc, string, error) {
	logPath := filepath.Join(r.o.WorkDir, name+".log")
	var argv, env []string
	var profile string
	switch sys {
	case SysKStreams:
		argv = append(slices.Clone(r.o.JavaCmd),
			"workload="+wl, "brokers="+strings.Join(r.b.addrs, ","), "app="+app, "in="+in, "out="+out,
			"table="+second, "state="+state, "guarantee="+guarantee, "acks="+DefaultProducer.Acks,
			"linger="+strconv.Itoa(DefaultProducer.LingerMs), "batch="+strconv.Itoa(DefaultProducer.BatchBytes))
		argv = append(argv, extra...)
	default:
		argv = append(slices.Clone(r.o.WorkerCmd),
			"-system", sys, "-workload", wl, "-brokers", strings.Join(r.b.addrs, ","), "-app", app,
			"-in", in, "-out", out, "-table", second, "-state", state, "-guarantee", guarantee,
			"-keys", strconv.Itoa(r.o.RestoreKeys))
		if r.o.Profile && isBrook(sys) {
			profile = filepath.Join(r.o.WorkDir, name+".cpu.pprof")
			argv = append(argv, "-cpuprofile", profile)
		}
		argv = append(argv, extra...)
		env = []string{WorkerEnv + "=1"}
	}
	if sys == SysKStreams && r.b.embedded() {
		// Kafka Streams' admin client cannot create topics on kfake
		// ("id should be positive, id: -1"): make its internal topics
		// up front, as Kafka Streams would (it then only validates them).
		if err := r.kstreamsTopics(app, wl); err != nil {
			return nil, "", err
		}
	}
	p, err := startProc(sys, argv, env, logPath)
	return p, profile, err
}

// kstreamsTopics creates the internal topics of the Kafka Streams peer's
// workload wl for application app.
func (r *runner) kstreamsTopics(app, wl string) error {
	switch wl {
	case "B2", "B7", "F1":
		return r.b.createTopic(app+"-counts-changelog", r.o.Partitions, true)
	case "B4":
		return r.b.createTopicConfigs(app+"-window-counts-changelog", r.o.Partitions, map[string]string{
			"cleanup.policy": "compact,delete", "retention.ms": strconv.FormatInt(30*24*3600*1000, 10),
		})
	case "B8":
		for _, s := range []string{"this", "other"} {
			if err := r.b.createTopicConfigs(app+"-auth-capture-"+s+"-join-store-changelog", r.o.Partitions, map[string]string{
				"cleanup.policy": "compact,delete", "retention.ms": strconv.FormatInt(30*24*3600*1000, 10),
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// throughput runs sys on wl over in (and second: B3's table, B8's
// captures) until its output holds one record per input record (or, for
// B8, as many as the harness's reference join), then (if latency) the
// fixed-rate phase.
func (r *runner) throughput(ctx context.Context, w, sys, wl, in, second, guarantee string, latency bool) (c Cell) {
	return r.throughputQ(ctx, w, sys, wl, in, second, guarantee, latency, nil, nil)
}

// throughputQ is throughput with B6's query load (when q is not nil)
// running against the worker's query endpoint throughout, and (when
// before is not nil) before called once the worker started, before the
// timing: B3 loads the table and only then produces the stream.
func (r *runner) throughputQ(ctx context.Context, w, sys, wl, in, second, guarantee string, latency bool, q *queryLoad, before func(p *proc, app string) error) (c Cell) {
	name := r.cellName(w, sys)
	out := r.topic(name + "-out")
	if err := r.b.createTopic(out, r.o.Partitions, false); err != nil {
		return Cell{Missing: err.Error()}
	}
	state := filepath.Join(r.o.WorkDir, "state", name)
	var extra []string
	if q != nil {
		extra = []string{"-query", "127.0.0.1:0"}
	}
	p, profile, err := r.launch(name, sys, wl, r.topic(name), in, out, second, state, guarantee, extra...)
	if err != nil {
		return Cell{Missing: err.Error()}
	}
	c = Cell{ProfilePath: profile}
	defer func() { c.PeakRSSMB = float64(p.stop(40*time.Second)) / (1 << 20) }()
	if before != nil {
		if err := before(p, r.topic(name)); err != nil {
			c.Missing = err.Error()
			return c
		}
	}
	records, expected := r.inputs[in], r.inputs[in]
	ref, checked := r.reference[in]
	if checked {
		records += r.inputs[second]
		expected = r.outputs[in]
	}
	c.Records = records
	if q != nil {
		e, err := p.waitEvent("query", r.o.RunTimeout)
		if err != nil {
			c.Missing = err.Error()
			return c
		}
		q.phase.Store(1)
		q.start(e.Addr)
		defer q.stop()
	}
	t0 := time.Now()
	var tFirst time.Time
	var nFirst int64
	var cpuFirst float64
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			c.Missing = "interrupted"
			return c
		case <-tick.C:
		}
		n, err := r.b.endOffsets(out)
		if err != nil {
			continue
		}
		now := time.Now()
		if n > 0 && tFirst.IsZero() {
			tFirst, nFirst = now, n
			cpuFirst, _ = p.cpuSeconds()
		}
		if n >= expected {
			if d := now.Sub(tFirst).Seconds(); d > 0 && n > nFirst {
				c.RecordsPerSec = float64(n-nFirst) / d
				if cpu, err := p.cpuSeconds(); err == nil && cpuFirst > 0 {
					c.CPUUsPerRecord = (cpu - cpuFirst) * 1e6 / float64(n-nFirst)
				}
			} else {
				c.Note = "too few records to time"
			}
			if r.o.Verify || checked {
				if c.Output, err = r.b.digest(ctx, out, lineageCheck(sys, in, r.topic(name))); err != nil {
					c.Missing = "output digest: " + err.Error()
					return c
				}
			}
			if checked && c.Output != ref {
				c.Missing = fmt.Sprintf("wrong output: %s, the harness's reference join has %s", c.Output, ref)
				return c
			}
			break
		}
		if err := p.failure(); err != nil {
			c.Missing = err.Error()
			return c
		}
		if now.Sub(t0) > r.o.RunTimeout {
			c.Missing = fmt.Sprintf("timeout after %v: %d of %d output records", r.o.RunTimeout, n, expected)
			return c
		}
	}
	switch {
	case !latency:
	case r.o.LatencyFor <= 0:
		c.LatencyMissing = "latency phase off"
	default:
		if q != nil {
			q.phase.Store(2)
		}
		var gen func() record
		switch w {
		case "B3":
			k, v := newUniform(r.o.TableKeys, 13), newValues(r.o.ValueBytes, 14)
			gen = func() record { return record{key: k.next(), value: v.next()} }
		default:
			k, v := newUniform(r.o.UniformKeys, 11), newValues(r.o.ValueBytes, 12)
			gen = func() record { return record{key: k.next(), value: v.next()} }
		}
		if err := r.latency(ctx, &c, in, out, gen); err != nil {
			c.LatencyMissing = err.Error()
		}
	}
	if sys == SysGoka && (w == "B2u" || w == "B3") {
		c.LatencyMissing = "goka's Emit sets no record timestamp, so output timestamps are not the input's"
	}
	return c
}

// latency produces at Options.Rate for Options.LatencyFor and measures
// output timestamp age at arrival: its p50, p99, p99.9 and largest value
// into c.
//
// The harness's producer and consumer are new for the phase; before the
// phase starts, one warm-up record goes through the system and its output
// is awaited. Without it the phase's first 90 ms of records waited for the
// producer's and consumer's start-up (connections, metadata, the
// idempotent producer's id) and arrived 30–90 ms late all together: 1.5 %
// of the phase's outputs, so every system's p99 measured 40–43 ms and its
// p99.9 and largest 90–92 ms, the raw sarama pipe's included.
func (r *runner) latency(ctx context.Context, c *Cell, in, out string, gen func() record) error {
	ends, err := r.b.partitionEnds(out)
	if err != nil {
		return err
	}
	// phase is the start of the measured phase in Unix nanoseconds; no
	// output counts until it is set. warm receives the first output.
	var phaseNs atomic.Int64
	phaseNs.Store(math.MaxInt64)
	warm := make(chan struct{}, 1)
	var mu sync.Mutex
	var lats []time.Duration
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var cerr error
	wg.Add(1)
	go func() { // owned by latency
		defer wg.Done()
		cerr = r.b.consumeFrom(cctx, out, ends, func(m *sarama.ConsumerMessage) {
			now := time.Now()
			select {
			case warm <- struct{}{}:
			default:
			}
			if m.Timestamp.UnixNano() < phaseNs.Load() {
				return
			}
			mu.Lock()
			lats = append(lats, now.Sub(m.Timestamp))
			mu.Unlock()
		})
	}()
	defer func() { cancel(); wg.Wait() }()
	prod, err := r.b.newProducer()
	if err != nil {
		return err
	}
	rec := gen()
	rec.ts = time.Now()
	prod.send(in, rec)
	r.inputs[in]++
	if err := prod.flush(); err != nil {
		prod.close()
		return fmt.Errorf("warm-up record: %w", err)
	}
	select {
	case <-warm:
	case <-time.After(30 * time.Second):
		prod.close()
		return fmt.Errorf("warm-up record: no output within 30 s")
	case <-ctx.Done():
		prod.close()
		return ctx.Err()
	}
	phase := time.Now()
	phaseNs.Store(phase.UnixNano())
	const tick = 10 * time.Millisecond
	per := max(1, r.o.Rate*int(tick)/int(time.Second))
	t := time.NewTicker(tick)
	var sent int64
	for time.Since(phase) < r.o.LatencyFor && ctx.Err() == nil {
		<-t.C
		for i := 0; i < per; i++ {
			rec := gen()
			rec.ts = time.Now()
			prod.send(in, rec)
			sent++
		}
	}
	t.Stop()
	perr := prod.close()
	r.inputs[in] += sent
	if perr != nil {
		return perr
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(lats)
		mu.Unlock()
		if int64(n) >= sent || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if cerr != nil {
		return cerr
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lats) == 0 {
		return fmt.Errorf("no output records in the latency phase")
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	q := func(f float64) float64 {
		return float64(lats[min(len(lats)-1, int(f*float64(len(lats))))].Microseconds()) / 1000
	}
	c.P50Ms, c.P99Ms, c.P999Ms, c.LatencySamples = q(0.50), q(0.99), q(0.999), len(lats)
	c.MaxLatencyMs = float64(lats[len(lats)-1].Microseconds()) / 1000
	if int64(len(lats)) < sent {
		c.LatencyMissing = fmt.Sprintf("only %d of %d outputs arrived within 10s", len(lats), sent)
	}
	return nil
}

// lineageCheck returns the check of brook's output records' lineage
// headers (nil for other systems): brook-lineage's records must each name
// the application, the sink and an input record of in; plain brook's
// (lineage off) must carry none.
func lineageCheck(sys, in, app string) func(*sarama.ConsumerMessage) error {
	if !isBrook(sys) {
		return nil
	}
	return func(m *sarama.ConsumerMessage) error {
		h := make(processor.Headers, 0, len(m.Headers))
		for _, x := range m.Headers {
			h = append(h, processor.Header{Key: string(x.Key), Value: x.Value})
		}
		l, ok := processor.LineageOf(h)
		switch {
		case sys != SysBrookLineage && len(m.Headers) > 0:
			return fmt.Errorf("%s wrote %d headers with lineage off", sys, len(m.Headers))
		case sys != SysBrookLineage:
			return nil
		case !ok:
			return fmt.Errorf("no lineage header (%d headers)", len(m.Headers))
		case l.ApplicationID != app || l.Node != "out" || l.Topic != in || l.Partition < 0 || l.Offset < 0:
			return fmt.Errorf("lineage %+v, want application %s, node out, an offset of %s", l, app, in)
		}
		return nil
	}
}

func countBytes(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

// restore runs B5 for sys: cold from an empty state directory over a
// changelog of RestoreKeys keys, then warm after RestoreTail more records.
func (r *runner) restore(sys string) Cell {
	in := r.topic("B5-in")
	if !r.made[in] {
		if err := r.b.createTopic(in, r.o.Partitions, false); err != nil {
			return Cell{Missing: err.Error()}
		}
		r.made[in] = true
	}
	name := r.cellName("B5", sys)
	app := r.topic(name)
	changelog := app + "-counts-changelog"
	if sys == SysGoka {
		changelog = app + "-table"
	}
	if err := r.b.createTopic(changelog, r.o.Partitions, true); err != nil {
		return Cell{Missing: err.Error()}
	}
	now := time.Now()
	if err := r.b.produceN(changelog, r.o.RestoreKeys, func(i int) record {
		return record{key: restoreKey(i), value: countBytes(int64(i)), ts: now}
	}); err != nil {
		return Cell{Missing: err.Error()}
	}
	out := r.topic(name + "-out")
	if err := r.b.createTopic(out, r.o.Partitions, false); err != nil {
		return Cell{Missing: err.Error()}
	}
	state := filepath.Join(r.o.WorkDir, "state", name)
	var c Cell
	var notes []string
	once := func(phase string) (event, error) {
		p, _, err := r.launch(name+"-"+phase, sys, "B5", app, in, out, "", state, "alos")
		if err != nil {
			return event{}, err
		}
		e, err := p.waitEvent("running", r.o.RunTimeout)
		rss := float64(p.stop(40*time.Second)) / (1 << 20)
		c.PeakRSSMB = max(c.PeakRSSMB, rss)
		if e.Restored > 0 {
			notes = append(notes, fmt.Sprintf("%s restored %d records", phase, e.Restored))
		}
		return e, err
	}
	e, err := once("cold")
	if err != nil {
		c.Missing = err.Error()
		return c
	}
	c.ColdMs = e.RestoreMs
	if e.RestoreMs > 0 {
		c.ColdKeysPerSec = float64(r.o.RestoreKeys) / (e.RestoreMs / 1000)
	}
	if err := r.b.produceN(changelog, r.o.RestoreTail, func(i int) record {
		return record{key: restoreKey(i), value: countBytes(int64(i + 1)), ts: now}
	}); err != nil {
		c.Missing = err.Error()
		return c
	}
	e, err = once("warm")
	if err != nil {
		c.Missing = "warm: " + err.Error()
		return c
	}
	c.WarmMs = e.RestoreMs
	if e.RestoreMs > 0 {
		c.WarmKeysPerSec = float64(r.o.RestoreTail) / (e.RestoreMs / 1000)
	}
	c.Note = strings.Join(notes, "; ")
	return c
}

// levelDBReference writes the B5 data set straight into goleveldb.
func (r *runner) levelDBReference() Cell {
	name := r.cellName("B5", SysLevelDB)
	p, _, err := r.launch(name, SysLevelDB, "B5", "", "", "", "", filepath.Join(r.o.WorkDir, "state", name), "alos")
	if err != nil {
		return Cell{Missing: err.Error()}
	}
	e, err := p.waitEvent("done", r.o.RunTimeout)
	c := Cell{PeakRSSMB: float64(p.stop(10*time.Second)) / (1 << 20)}
	if err != nil {
		c.Missing = err.Error()
		return c
	}
	c.ColdMs = e.Ms
	c.ColdKeysPerSec = float64(e.Keys) / (e.Ms / 1000)
	c.Note = "raw goleveldb batch writes (10,000 per batch, brook's engine options) of the same keys and values"
	return c
}

// tableLoaded waits until the system p runs (application or group app)
// has loaded every record of the table topic: goka reports that its
// processor recovered its tables; brook and Kafka Streams have committed
// the table topic's end offsets in the group (the table topic is the
// table's source and changelog, and they commit it as they process it).
func (r *runner) tableLoaded(ctx context.Context, p *proc, sys, app, table string) error {
	if sys == SysGoka {
		_, err := p.waitEvent("running", r.o.RunTimeout)
		return err
	}
	ends, err := r.b.partitionEnds(table)
	if err != nil {
		return err
	}
	parts := make([]int32, 0, len(ends))
	for p := range ends {
		parts = append(parts, p)
	}
	deadline := time.Now().Add(r.o.RunTimeout)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.failure(); err != nil {
			return err
		}
		resp, err := r.b.admin.ListConsumerGroupOffsets(app, map[string][]int32{table: parts})
		if err == nil {
			done := 0
			for part, end := range ends {
				if b := resp.GetBlock(table, part); b != nil && b.Offset >= end {
					done++
				}
			}
			if done == len(ends) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timeout after %v: the group %s has not committed the end of %s", r.o.RunTimeout, app, table)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
