package brookprom_test

import (
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/metrics"
	brookprom "github.com/brookstream/brook/prometheus"
	"github.com/brookstream/brook/testutil"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// sample is an App snapshot with one of everything.
func sample(s *metrics.AppSnapshot) {
	h := metrics.Histogram{Bounds: []time.Duration{time.Millisecond, time.Second}, Counts: []uint64{2, 1, 1}, Count: 4, Sum: 3 * time.Second}
	s.State = "running"
	s.Tasks = []metrics.TaskSnapshot{
		{Task: "0_0", State: metrics.TaskRunning, RecordsProcessed: 10, ProcessLatency: h, TransactionsCommitted: 3, TransactionsAborted: 1, Fenced: 1},
		{Task: "0_1", State: metrics.TaskClosed, RecordsProcessed: 4},
	}
	s.Partitions = []metrics.PartitionSnapshot{
		{Task: "0_0", Topic: "in", Partition: 0, RecordsConsumed: 12, Assigned: true, Position: 10, Committed: 8, End: 15, Lag: 5, CommittedLag: 7},
		{Task: "0_1", Topic: "in", Partition: 1, RecordsConsumed: 4, Position: -1, Committed: -1, End: -1, Lag: -1, CommittedLag: -1},
	}
	s.Nodes = []metrics.NodeSnapshot{
		{Task: "0_0", Node: "src", Kind: "source", RecordsProcessed: 12, DeadLettered: 2},
		{Task: "0_0", Node: "out", Kind: "sink", RecordsProcessed: 9, RecordsProduced: 9, EndToEndLatency: h, Dropped: metrics.Drops{Late: 3}},
	}
	s.Stores = []metrics.StoreSnapshot{{Task: "0_0", Store: "counts", Keys: 42, DiskBytes: 4096, Persistent: true}}
	s.Restores = []metrics.RestoreSnapshot{{Task: "0_0", Store: "counts", Partition: 0, Records: 100, Remaining: 20, Restoring: true}}
	s.Commits = h
	s.Rebalances = h
	s.Queries = []metrics.QuerySnapshot{{Route: "/stores/{store}/keys/{key}", Status: 200, Latency: h}}
}

func TestCollectorReportsSnapshot(t *testing.T) {
	reg := metrics.NewRegistry()
	unregister, err := reg.Register("payments", sample)
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	pr := prometheus.NewPedanticRegistry()
	if err := brookprom.Register(pr, reg); err != nil {
		t.Fatal(err)
	}
	problems, err := promtest.GatherAndLint(pr)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP brook_consumer_lag_records Offsets of an input partition not processed yet: end offset (last stable offset under exactly-once) minus the task's position; 0 when the offsets left hold only transaction markers or aborted records.
# TYPE brook_consumer_lag_records gauge
brook_consumer_lag_records{application_id="payments",partition="0",task="0_0",topic="in"} 5
# HELP brook_records_consumed_total Records fetched from an input partition into its task's queue.
# TYPE brook_records_consumed_total counter
brook_records_consumed_total{application_id="payments",partition="0",task="0_0",topic="in"} 12
brook_records_consumed_total{application_id="payments",partition="1",task="0_1",topic="in"} 4
# HELP brook_task_state 1 for the current state of each task assigned to this instance (restoring, running), 0 for the other.
# TYPE brook_task_state gauge
brook_task_state{application_id="payments",state="restoring",task="0_0"} 0
brook_task_state{application_id="payments",state="running",task="0_0"} 1
# HELP brook_end_to_end_latency_seconds Age of each record a sink produced: when the task began the work that made it, minus the record's timestamp.
# TYPE brook_end_to_end_latency_seconds histogram
brook_end_to_end_latency_seconds_bucket{application_id="payments",node="out",task="0_0",le="0.001"} 2
brook_end_to_end_latency_seconds_bucket{application_id="payments",node="out",task="0_0",le="1"} 3
brook_end_to_end_latency_seconds_bucket{application_id="payments",node="out",task="0_0",le="+Inf"} 4
brook_end_to_end_latency_seconds_sum{application_id="payments",node="out",task="0_0"} 3
brook_end_to_end_latency_seconds_count{application_id="payments",node="out",task="0_0"} 4
`
	if err := promtest.GatherAndCompare(pr, strings.NewReader(want),
		"brook_consumer_lag_records", "brook_records_consumed_total", "brook_task_state", "brook_end_to_end_latency_seconds"); err != nil {
		t.Error(err)
	}
	for name, v := range map[string]float64{
		"brook_dead_letter_records_total":      2,
		"brook_records_dropped_total":          3, // late, at out; every other reason 0
		"brook_restore_records_total":          100,
		"brook_restore_remaining_records":      20,
		"brook_store_keys":                     42,
		"brook_store_disk_bytes":               4096,
		"brook_transactions_aborted_total":     1,
		"brook_consumer_committed_lag_records": 7,
		"brook_app_state":                      1,
	} {
		if got := sum(t, pr, name); got != v {
			t.Errorf("%s sums to %v, want %v", name, got, v)
		}
	}
	// Unassigned partitions report no lag; closed tasks no state.
	if n, err := promtest.GatherAndCount(pr, "brook_consumer_lag_records", "brook_task_state", "brook_app_state"); err != nil || n != 1+2+6 {
		t.Errorf("%d series (err %v), want 9", n, err)
	}
}

func sum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				s += m.Counter.GetValue()
			case m.Gauge != nil:
				s += m.Gauge.GetValue()
			}
		}
	}
	return s
}
