package brookprom_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/processor"
	brookprom "github.com/brookstream/brook/prometheus"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// gate pauses a running App: while closed, its Peek blocks the worker.
type gate struct {
	mu   sync.Mutex
	open chan struct{} // nil: open
}

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open == nil {
		g.open = make(chan struct{})
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open != nil {
		close(g.open)
		g.open = nil
	}
}

func (g *gate) pass(string, int64) {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// served is an App with its metrics and query API on one HTTP server.
type served struct {
	app  *topology.App
	srv  *httptest.Server
	done chan error
}

func serve(t *testing.T, ctx context.Context, topo *topology.Topology, cfg topology.Config) *served {
	t.Helper()
	reg := metrics.NewRegistry()
	cfg.Metrics = reg
	app, err := topology.NewApp(topo, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pr := prometheus.NewRegistry()
	if err := brookprom.Register(pr, reg); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(pr, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	mux.Handle("/", app.QueryHandler())
	s := &served{app: app, srv: httptest.NewServer(mux), done: make(chan error, 1)}
	go func() { s.done <- app.Run(ctx) }()
	return s
}

func (s *served) stop(t *testing.T) {
	t.Helper()
	s.srv.Close()
	if err := s.app.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-s.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// scrape reads /metrics as Prometheus does and parses the text format.
func (s *served) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(s.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s: %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// total sums the samples of family name whose labels include want (for a
// histogram: its count). ok is false when no sample matched.
func total(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (sum float64, n int) {
	mf := mfs[name]
	if mf == nil {
		return 0, 0
	}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		n++
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum, n
}

// until scrapes until cond holds, or fails the test after timeout with
// what the last scrape showed.
func (s *served) until(t *testing.T, timeout time.Duration, what string, cond func(map[string]*dto.MetricFamily) (bool, string)) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		mfs := s.scrape(t)
		ok, seen := cond(mfs)
		if ok {
			return mfs
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s: %s", timeout, what, seen)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func int64Bytes(v int64) []byte {
	b, _ := serde.Int64().Serialize("", v)
	return b
}

// stableCount counts the records of topic until two counts a second apart
// agree (an embedded broker compacts changelogs in the background).
func stableCount(t *testing.T, b *testutil.Broker, topic string) int {
	t.Helper()
	last := -1
	for i := 0; i < 30; i++ {
		n := len(b.ConsumeAll(t, topic))
		if n == last {
			return n
		}
		last = n
		time.Sleep(time.Second)
	}
	t.Fatalf("%s: record count did not settle (last %d)", topic, last)
	return 0
}

// TestMetricsEndpoint is issue #17's acceptance test for metrics: an App
// serves its metrics over HTTP through this adapter, and the scraped
// numbers move as they must.
//
//   - Records with values that are not int64 go to the dead-letter topic,
//     records older than their closed window to the late topic: the
//     dead-letter and late counters equal the records in those topics.
//   - With the App paused (its worker blocked in a Peek) and input
//     produced, the lag rises by at least what was produced; released,
//     it falls to zero.
//   - Queries are counted by route and status.
//   - A second instance with a wiped state folder restores the stores:
//     the restore counters equal the records in their changelog topics.
//
// It runs on the embedded broker, and on real Kafka when KAFKA_BROKERS is
// set (as in CI, through scripts/test).
func TestMetricsEndpoint(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	dlq, late := testutil.TopicName(t, "dlq"), testutil.TopicName(t, "late")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	b.CreateTopic(t, dlq, 1, nil)
	b.CreateTopic(t, late, 1, nil)
	appID := testutil.TopicName(t, "app")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	g := &gate{}
	defer g.release()
	tb := topology.New(topology.WithDeserializationHandler(processor.DeadLetter(dlq, logger)))
	s := topology.Stream(tb, "in", in, serde.String(), serde.Int64()).Peek("gate", g.pass)
	topology.Count(s.GroupByKey(), "counts").ToStream("count-changes").
		To("counts-out", out, serde.String(), topology.ChangeSerde(serde.Int64()))
	ws := topology.WindowedBy(s.GroupByKey(), topology.Tumbling(time.Minute).Grace(0))
	ws.Count("per-minute")
	ws.LateRecords("late").To("late-out", late, serde.String(), serde.Int64())
	topo, err := tb.Build()
	if err != nil {
		t.Fatal(err)
	}

	// Input: 10 good records per partition (ten keys each, placed where
	// the key's hash puts them, as queries expect), 3 with a value that is
	// not an int64 and then 4 an hour old (their windows closed) on
	// partition 0.
	keys := [2][]string{}
	for i := 0; len(keys[0]) < 10 || len(keys[1]) < 10; i++ {
		k := fmt.Sprint("k", i)
		p, err := partition.ForKey([]byte(k), 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys[p]) < 10 {
			keys[p] = append(keys[p], k)
		}
	}
	now := time.Now()
	var msgs []*sarama.ProducerMessage
	add := func(p int32, key string, value []byte, ts time.Time) {
		msgs = append(msgs, &sarama.ProducerMessage{Partition: p, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value), Timestamp: ts})
	}
	for i := 0; i < 10; i++ {
		add(0, keys[0][i], int64Bytes(int64(i)), now)
		add(1, keys[1][i], int64Bytes(int64(i)), now)
	}
	for i := 0; i < 3; i++ {
		add(0, keys[0][i], []byte("not a number"), now)
	}
	for i := 0; i < 4; i++ {
		add(0, keys[0][i], int64Bytes(100), now.Add(-time.Hour))
	}
	b.Produce(t, in, msgs...)
	const firstInput, deadLettered, lateRecords = 27, 3, 4

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
		CommitInterval: 200 * time.Millisecond, Logger: logger,
	}
	a := serve(t, ctx, topo, cfg)
	if rep, err := a.app.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("WaitCaughtUp: %v (%+v)", err, rep)
	}
	app := map[string]string{"application_id": appID}
	a.until(t, time.Minute, "the first input counted", func(mfs map[string]*dto.MetricFamily) (bool, string) {
		consumed, _ := total(mfs, "brook_records_consumed_total", app)
		dead, _ := total(mfs, "brook_dead_letter_records_total", app)
		lateDrops, _ := total(mfs, "brook_records_dropped_total", map[string]string{"application_id": appID, "reason": "late"})
		lag, lags := total(mfs, "brook_consumer_lag_records", app)
		return consumed == firstInput && dead == deadLettered && lateDrops == lateRecords && lag == 0 && lags == 2,
			fmt.Sprintf("consumed %v, dead-lettered %v, late %v, lag %v over %d partitions; want %d, %d, %d, 0 over 2",
				consumed, dead, lateDrops, lag, lags, firstInput, deadLettered, lateRecords)
	})
	if n := len(b.WaitForRecords(t, dlq, deadLettered, false, time.Minute)); n != deadLettered {
		t.Errorf("dead-letter topic holds %d records, the counter says %d", n, deadLettered)
	}
	if n := len(b.WaitForRecords(t, late, lateRecords, false, time.Minute)); n != lateRecords {
		t.Errorf("late topic holds %d records, the counter says %d", n, lateRecords)
	}

	// Paused: the first record of the next batch blocks the worker; what
	// is produced behind it is lag.
	g.shut()
	msgs = nil
	const paused = 40
	for i := 0; i < paused/2; i++ {
		add(0, keys[0][i%10], int64Bytes(1), time.Now())
		add(1, keys[1][i%10], int64Bytes(1), time.Now())
	}
	b.Produce(t, in, msgs...)
	var peak float64
	a.until(t, time.Minute, "lag up while paused", func(mfs map[string]*dto.MetricFamily) (bool, string) {
		lag, _ := total(mfs, "brook_consumer_lag_records", app)
		committedLag, _ := total(mfs, "brook_consumer_committed_lag_records", app)
		peak = max(peak, lag)
		return lag >= paused-1 && committedLag >= lag, fmt.Sprintf("lag %v, committed lag %v; want at least %d and at least the lag", lag, committedLag, paused-1)
	})
	// The caught-up endpoint says 503 and what is left, per partition.
	resp, err := http.Get(a.srv.URL + "/caught-up")
	if err != nil {
		t.Fatal(err)
	}
	var cu struct {
		Error      string `json:"error"`
		CaughtUp   bool   `json:"caught_up"`
		Partitions []struct {
			Topic     string `json:"topic"`
			Remaining int64  `json:"remaining"`
		} `json:"partitions"`
	}
	err = json.NewDecoder(resp.Body).Decode(&cu)
	resp.Body.Close()
	left := int64(0)
	for _, p := range cu.Partitions {
		left += p.Remaining
	}
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || cu.CaughtUp || cu.Error == "" || len(cu.Partitions) != 2 || left < paused-1 {
		t.Errorf("GET /caught-up while paused: %d %+v (%v); want 503 with 2 partitions and at least %d offsets remaining", resp.StatusCode, cu, err, paused-1)
	}
	g.release()
	mfs := a.until(t, time.Minute, "lag back to zero", func(mfs map[string]*dto.MetricFamily) (bool, string) {
		lag, lags := total(mfs, "brook_consumer_lag_records", app)
		committedLag, _ := total(mfs, "brook_consumer_committed_lag_records", app)
		consumed, _ := total(mfs, "brook_records_consumed_total", app)
		return lag == 0 && lags == 2 && committedLag == 0 && consumed == firstInput+paused,
			fmt.Sprintf("lag %v over %d partitions, committed lag %v, consumed %v; want 0, 2, 0, %d", lag, lags, committedLag, consumed, firstInput+paused)
	})
	t.Logf("lag peaked at %v while paused", peak)
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"brook_records_processed_total", app, firstInput + paused},
		{"brook_records_produced_total", map[string]string{"application_id": appID, "node": "counts-out"}, firstInput + paused - deadLettered},
		{"brook_records_produced_total", map[string]string{"application_id": appID, "node": "late-out"}, lateRecords},
		{"brook_process_latency_seconds", app, firstInput + paused},
		{"brook_end_to_end_latency_seconds", map[string]string{"application_id": appID, "node": "counts-out"}, firstInput + paused - deadLettered},
		{"brook_commit_duration_seconds", app, 1},
		{"brook_rebalance_duration_seconds", app, 1},
		{"brook_app_state", map[string]string{"application_id": appID, "state": "running"}, 1},
		{"brook_task_state", map[string]string{"application_id": appID, "state": "running"}, 2},
	} {
		if got, _ := total(mfs, c.name, c.labels); got < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, got, c.min)
		}
	}

	// Queries, by route and status.
	for path, want := range map[string]int{"/stores/counts/keys/" + keys[0][1]: 200, "/stores/counts/keys/" + keys[1][1]: 200, "/stores/counts/keys/zz": 404, "/caught-up": 200} {
		resp, err := http.Get(a.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d %v, want %d", path, resp.StatusCode, body, want)
		}
	}
	mfs = a.scrape(t)
	for _, c := range []struct {
		route, status string
		n             float64
	}{{"/stores/{store}/keys/{key}", "200", 2}, {"/stores/{store}/keys/{key}", "404", 1}, {"/caught-up", "200", 1}, {"/caught-up", "503", 1}} {
		if n, _ := total(mfs, "brook_query_duration_seconds", map[string]string{"application_id": appID, "route": c.route, "status": c.status}); n != c.n {
			t.Errorf("query %s %s counted %v times, want %v", c.route, c.status, n, c.n)
		}
	}
	// Store sizes: the counts store holds the twenty keys (counted when
	// the monitor first sees the store, then at most once a minute).
	a.until(t, 2*time.Minute, "store sizes", func(mfs map[string]*dto.MetricFamily) (bool, string) {
		keys, _ := total(mfs, "brook_store_keys", map[string]string{"application_id": appID, "store": "counts"})
		disk, _ := total(mfs, "brook_store_disk_bytes", map[string]string{"application_id": appID, "store": "counts"})
		return keys == 20 && disk > 0, fmt.Sprintf("counts store: %v keys, %v bytes; want 20 keys and some bytes", keys, disk)
	})
	a.stop(t)

	// A second instance with a wiped state folder restores both stores:
	// its restore counters equal the records in their changelogs.
	changelogs := map[string]int{}
	for _, st := range []string{"counts", "per-minute"} {
		changelogs[st] = stableCount(t, b, store.ChangelogTopic(appID, st))
		if changelogs[st] == 0 {
			t.Fatalf("changelog of %s is empty", st)
		}
	}
	cfg.StateDir = t.TempDir()
	a2 := serve(t, ctx, topo, cfg)
	defer a2.stop(t)
	if rep, err := a2.app.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("WaitCaughtUp after the restart: %v (%+v)", err, rep)
	}
	mfs = a2.scrape(t)
	for st, want := range changelogs {
		labels := map[string]string{"application_id": appID, "store": st}
		got, n := total(mfs, "brook_restore_records_total", labels)
		if got != float64(want) || n != 2 {
			t.Errorf("store %s: restore counted %v records over %d partitions; its changelog holds %d records in 2 partitions", st, got, n, want)
		}
		if rem, _ := total(mfs, "brook_restore_remaining_records", labels); rem != 0 {
			t.Errorf("store %s: %v records still to restore after the restore", st, rem)
		}
		if busy, _ := total(mfs, "brook_restore_in_progress", labels); busy != 0 {
			t.Errorf("store %s: restore still in progress", st)
		}
	}
	if got, _ := total(mfs, "brook_records_consumed_total", app); got != 0 {
		t.Errorf("the restarted instance consumed %v records; everything was committed", got)
	}
}

// TestTwoAppsOneRegistry: one Registry serves two Apps of different
// applications; a second App of the same application is refused.
func TestTwoAppsOneRegistry(t *testing.T) {
	b := testutil.NewBroker(t)
	tb := topology.New()
	topology.Stream(tb, "in", "in", serde.String(), serde.String()).To("out", "out", serde.String(), serde.String())
	topo, err := tb.Build()
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	cfg := func(id string) topology.Config {
		return topology.Config{ApplicationID: id, Brokers: b.Addrs(), StateDir: t.TempDir(), Metrics: reg}
	}
	a1, err := topology.NewApp(topo, cfg("one"))
	if err != nil {
		t.Fatal(err)
	}
	defer a1.Close()
	a2, err := topology.NewApp(topo, cfg("two"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topology.NewApp(topo, cfg("one")); err == nil || !strings.Contains(err.Error(), "registered already") {
		t.Errorf("a second App of application one: %v, want a refusal", err)
	}
	pr := prometheus.NewPedanticRegistry()
	if err := brookprom.Register(pr, reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := pr.Gather()
	if err != nil {
		t.Fatal(err)
	}
	apps := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() == "brook_app_state" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "application_id" {
						apps[l.GetValue()] = true
					}
				}
			}
		}
	}
	if !apps["one"] || !apps["two"] || len(apps) != 2 {
		t.Errorf("apps reported: %v, want one and two", apps)
	}
	a2.Close()
	if _, err := topology.NewApp(topo, cfg("two")); err != nil {
		t.Errorf("NewApp after the first App of two closed: %v", err)
	}
}
