package brookprom

import (
	"strconv"

	"github.com/brookstream/brook/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector is a prometheus.Collector that reports the Apps of a
// metrics.Registry. Make one with NewCollector, or call Register.
type Collector struct {
	reg *metrics.Registry
	d   descs
}

// NewCollector returns a Collector over reg.
func NewCollector(reg *metrics.Registry) *Collector {
	return &Collector{reg: reg, d: newDescs()}
}

// Register registers a Collector over reg with r (for example
// prometheus.DefaultRegisterer).
func Register(r prometheus.Registerer, reg *metrics.Registry) error {
	return r.Register(NewCollector(reg))
}

// descs are the descriptions of every metric the Collector reports.
type descs struct {
	appState, taskState                                 *prometheus.Desc
	consumed, processed, nodeProcessed, produced        *prometheus.Desc
	processLatency, e2eLatency                          *prometheus.Desc
	lag, committedLag, position, committed, end         *prometheus.Desc
	commits, txnCommitted, txnAborted, fenced           *prometheus.Desc
	rebalances                                          *prometheus.Desc
	restoreRecords, restoreRemaining, restoreInProgress *prometheus.Desc
	storeKeys, storeDisk                                *prometheus.Desc
	deadLetter, dropped                                 *prometheus.Desc
	queries                                             *prometheus.Desc
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("brook_"+name, help, append([]string{"application_id"}, labels...), nil)
}

func newDescs() descs {
	return descs{
		appState:  desc("app_state", "1 for the App's current state, 0 for the others.", "state"),
		taskState: desc("task_state", "1 for the current state of each task assigned to this instance (restoring, running), 0 for the other.", "task", "state"),

		consumed:      desc("records_consumed_total", "Records fetched from an input partition into its task's queue.", "task", "topic", "partition"),
		processed:     desc("records_processed_total", "Records a task processed (including those an error handler dropped).", "task"),
		nodeProcessed: desc("node_records_processed_total", "Records a node of a task received.", "task", "node"),
		produced:      desc("records_produced_total", "Records a sink handed to the producer.", "task", "node"),

		processLatency: desc("process_latency_seconds", "Time a task spent on each record: taking it off its queue, running it through the sub-topology, handing its output to the producer.", "task"),
		e2eLatency:     desc("end_to_end_latency_seconds", "Age of each record a sink produced: when the task began the work that made it, minus the record's timestamp.", "task", "node"),

		lag:          desc("consumer_lag_records", "Offsets of an input partition not processed yet: end offset (last stable offset under exactly-once) minus the task's position; 0 when the offsets left hold only transaction markers or aborted records.", "task", "topic", "partition"),
		committedLag: desc("consumer_committed_lag_records", "End offset minus the offset last committed for the partition: what a restart would process again plus what is left.", "task", "topic", "partition"),
		position:     desc("consumer_position_offset", "Offset of the next record the task will process.", "task", "topic", "partition"),
		committed:    desc("consumer_committed_offset", "Offset last committed for the partition.", "task", "topic", "partition"),
		end:          desc("consumer_end_offset", "End offset of the partition as last listed (high watermark, or last stable offset under exactly-once).", "task", "topic", "partition"),

		commits:      desc("commit_duration_seconds", "Time each commit took (a worker committing its tasks; under exactly-once one transaction per task); the count is the number of commits."),
		txnCommitted: desc("transactions_committed_total", "Kafka transactions a task committed (exactly-once).", "task"),
		txnAborted:   desc("transactions_aborted_total", "Kafka transactions a task aborted (exactly-once).", "task"),
		fenced:       desc("tasks_fenced_total", "Times a task was found owned by another instance (exactly-once: fenced producer or stale group generation).", "task"),
		rebalances:   desc("rebalance_duration_seconds", "Time from stopping for a rebalance (or starting to join) until the new assignment arrived; the count is the number of rebalances."),

		restoreRecords:    desc("restore_records_total", "Changelog records applied to a store partition by its restores.", "task", "store", "partition"),
		restoreRemaining:  desc("restore_remaining_records", "Changelog offsets the restore in progress still has to read (0 when none is in progress).", "task", "store", "partition"),
		restoreInProgress: desc("restore_in_progress", "1 while a store partition restores.", "task", "store", "partition"),
		storeKeys:         desc("store_keys", "Keys a store of an open task held when last counted (a persistent store is counted at most once a minute).", "task", "store"),
		storeDisk:         desc("store_disk_bytes", "Size of a persistent store's files.", "task", "store"),

		deadLetter: desc("dead_letter_records_total", "Records an error handler wrote elsewhere (a dead-letter topic) for a failure at a node, letting processing go on.", "task", "node"),
		dropped:    desc("records_dropped_total", "Records a node dropped, by reason: late (per window), duplicate, null_key, null_value, error (an error handler answered Continue without writing the record anywhere).", "task", "node", "reason"),

		queries: desc("query_duration_seconds", "Interactive-query HTTP requests by route and status, and the time each took; the count is the number of requests.", "route", "status"),
	}
}

func (d *descs) all() []*prometheus.Desc {
	return []*prometheus.Desc{
		d.appState, d.taskState, d.consumed, d.processed, d.nodeProcessed, d.produced, d.processLatency, d.e2eLatency,
		d.lag, d.committedLag, d.position, d.committed, d.end, d.commits, d.txnCommitted, d.txnAborted, d.fenced,
		d.rebalances, d.restoreRecords, d.restoreRemaining, d.restoreInProgress, d.storeKeys, d.storeDisk,
		d.deadLetter, d.dropped, d.queries,
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d.all() {
		ch <- d
	}
}

// appStates are the values of the state label of brook_app_state.
var appStates = []string{"created", "rebalancing", "restoring", "running", "error", "stopped"}

// Collect implements prometheus.Collector: one Snapshot of the Registry.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, a := range c.reg.Snapshot().Apps {
		c.collectApp(ch, a)
	}
}

func (c *Collector) collectApp(ch chan<- prometheus.Metric, a metrics.AppSnapshot) {
	d := &c.d
	id := a.ApplicationID
	send := func(desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels []string) {
		m, err := prometheus.NewConstMetric(desc, typ, v, append([]string{id}, labels...)...)
		if err != nil {
			// A label value that is not valid UTF-8: the scrape reports
			// the error instead of the whole scrape failing here.
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) { send(desc, prometheus.GaugeValue, v, labels) }
	counter := func(desc *prometheus.Desc, v int64, labels ...string) {
		send(desc, prometheus.CounterValue, float64(v), labels)
	}
	hist := func(desc *prometheus.Desc, h metrics.Histogram, labels ...string) {
		buckets := make(map[float64]uint64, len(h.Bounds))
		var cum uint64
		for i, b := range h.Bounds {
			if i < len(h.Counts) {
				cum += h.Counts[i]
			}
			buckets[b.Seconds()] = cum
		}
		m, err := prometheus.NewConstHistogram(desc, h.Count, h.Sum.Seconds(), buckets, append([]string{id}, labels...)...)
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
	for _, s := range appStates {
		gauge(d.appState, b2f(a.State == s), s)
	}
	for _, t := range a.Tasks {
		counter(d.processed, t.RecordsProcessed, t.Task)
		hist(d.processLatency, t.ProcessLatency, t.Task)
		counter(d.txnCommitted, t.TransactionsCommitted, t.Task)
		counter(d.txnAborted, t.TransactionsAborted, t.Task)
		counter(d.fenced, t.Fenced, t.Task)
		if t.State != metrics.TaskClosed {
			for _, s := range []string{metrics.TaskRestoring, metrics.TaskRunning} {
				gauge(d.taskState, b2f(t.State == s), t.Task, s)
			}
		}
	}
	for _, p := range a.Partitions {
		part := strconv.Itoa(int(p.Partition))
		counter(d.consumed, p.RecordsConsumed, p.Task, p.Topic, part)
		if !p.Assigned {
			continue
		}
		for _, g := range []struct {
			desc *prometheus.Desc
			v    int64
		}{{d.lag, p.Lag}, {d.committedLag, p.CommittedLag}, {d.position, p.Position}, {d.committed, p.Committed}, {d.end, p.End}} {
			if g.v >= 0 {
				gauge(g.desc, float64(g.v), p.Task, p.Topic, part)
			}
		}
	}
	for _, n := range a.Nodes {
		counter(d.nodeProcessed, n.RecordsProcessed, n.Task, n.Node)
		if n.Kind == "sink" {
			counter(d.produced, n.RecordsProduced, n.Task, n.Node)
			hist(d.e2eLatency, n.EndToEndLatency, n.Task, n.Node)
		}
		counter(d.deadLetter, n.DeadLettered, n.Task, n.Node)
		for _, r := range metrics.DropReasons() {
			counter(d.dropped, n.Dropped.Get(r), n.Task, n.Node, r.String())
		}
	}
	for _, s := range a.Stores {
		if s.Keys >= 0 {
			gauge(d.storeKeys, float64(s.Keys), s.Task, s.Store)
		}
		if s.Persistent {
			gauge(d.storeDisk, float64(s.DiskBytes), s.Task, s.Store)
		}
	}
	for _, r := range a.Restores {
		part := strconv.Itoa(int(r.Partition))
		counter(d.restoreRecords, r.Records, r.Task, r.Store, part)
		gauge(d.restoreRemaining, float64(r.Remaining), r.Task, r.Store, part)
		gauge(d.restoreInProgress, b2f(r.Restoring), r.Task, r.Store, part)
	}
	hist(d.commits, a.Commits)
	hist(d.rebalances, a.Rebalances)
	for _, q := range a.Queries {
		hist(d.queries, q.Latency, q.Route, strconv.Itoa(q.Status))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
