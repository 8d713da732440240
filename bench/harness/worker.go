package harness

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/topology"
	"github.com/lovoo/goka"
	gokastorage "github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// WorkerEnv marks a process started by the harness as a worker.
const WorkerEnv = "BROOKBENCH_WORKER"

// workerArgs are the flags of a worker process.
type workerArgs struct {
	system, workload     string
	brokers              string
	app, in, out, table  string
	state                string
	guarantee            string
	cpuprofile           string
	keys                 int
	lingerMs, batchBytes int
	windowMinutes        int
	queryAddr            string
	partitions           int
	// The failover workloads (F1, F1s): the instance's name (its client
	// id is "<app>-<instance>", how the harness tells the group's members
	// apart), standby replicas per task, and the group session timeout.
	instance string
	standbys int
	session  time.Duration
}

// event is a line a worker prints on stdout for the harness.
type event struct {
	Event     string  `json:"event"`
	RestoreMs float64 `json:"restore_ms,omitempty"`
	Restored  int64   `json:"restored,omitempty"`
	Msg       string  `json:"msg,omitempty"`
	Keys      int     `json:"keys,omitempty"`
	Ms        float64 `json:"ms,omitempty"`
	Addr      string  `json:"addr,omitempty"`
}

func emit(w io.Writer, e event) {
	b, _ := json.Marshal(e)
	fmt.Fprintf(w, "%s\n", b)
}

// WorkerMain runs one system's workload until SIGTERM or SIGINT; it is
// the main function of a worker process and returns its exit code.
func WorkerMain(argv []string) int {
	var a workerArgs
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.StringVar(&a.system, "system", "", "system")
	fs.StringVar(&a.workload, "workload", "", "workload")
	fs.StringVar(&a.brokers, "brokers", "", "brokers, comma-separated")
	fs.StringVar(&a.app, "app", "", "application id / group")
	fs.StringVar(&a.in, "in", "", "input topic")
	fs.StringVar(&a.out, "out", "", "output topic")
	fs.StringVar(&a.table, "table", "", "second input topic: the table (B3), the captures (B8)")
	fs.StringVar(&a.state, "state", "", "state directory")
	fs.StringVar(&a.guarantee, "guarantee", "alos", "alos or eos")
	fs.StringVar(&a.cpuprofile, "cpuprofile", "", "write a CPU profile here")
	fs.IntVar(&a.keys, "keys", 0, "keys (goleveldb reference)")
	fs.IntVar(&a.lingerMs, "linger", DefaultProducer.LingerMs, "producer linger ms")
	fs.IntVar(&a.batchBytes, "batch", DefaultProducer.BatchBytes, "producer batch bytes")
	fs.IntVar(&a.windowMinutes, "window", 10, "window size in minutes (B4)")
	fs.StringVar(&a.queryAddr, "query", "", "listen address of the query handler (B6)")
	fs.IntVar(&a.partitions, "partitions", 0, "partitions")
	fs.StringVar(&a.instance, "instance", "", "instance name (failover workloads): client id <app>-<instance>")
	fs.IntVar(&a.standbys, "standbys", 0, "standby replicas per task (failover workloads)")
	fs.DurationVar(&a.session, "session", 0, "consumer-group session timeout (failover workloads; heartbeat a third of it)")
	if err := fs.Parse(argv); err != nil {
		return 2
	}
	if a.cpuprofile != "" {
		f, err := os.Create(a.cpuprofile)
		if err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch a.system {
	case SysSarama:
		err = runSaramaPipe(ctx, a)
	case SysBrook, SysBrookDSL, SysBrookMetrics, SysBrookLineage, SysBrookNoCache:
		err = runBrook(ctx, a)
	case SysGoka:
		err = runGoka(ctx, a)
	case SysLevelDB:
		err = runLevelDB(a)
	default:
		err = fmt.Errorf("unknown system %q", a.system)
	}
	if err != nil {
		emit(os.Stdout, event{Event: "error", Msg: err.Error()})
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

func (a workerArgs) producer() Producer {
	p := DefaultProducer
	p.LingerMs, p.BatchBytes = a.lingerMs, a.batchBytes
	return p
}

func (a workerArgs) brokerList() []string { return strings.Split(a.brokers, ",") }

// transform is the map of B0 and B1: the value with its first byte
// changed, in a new slice (as the Java peer does).
func transform(v []byte) []byte {
	out := append([]byte(nil), v...)
	if len(out) > 0 {
		out[0] ^= 1
	}
	return out
}

// enrich is the join of B3: the event's bytes followed by the profile's.
func enrich(event, profile []byte) []byte {
	out := make([]byte, 0, len(event)+len(profile))
	return append(append(out, event...), profile...)
}

// ---------- B0: raw sarama consume → map → produce ----------

func runSaramaPipe(ctx context.Context, a workerArgs) error {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "bench-sarama"
	a.producer().applySarama(cfg)
	cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = time.Second
	cfg.Consumer.Return.Errors = true
	prod, err := sarama.NewAsyncProducer(a.brokerList(), cfg)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	var wg sync.WaitGroup
	var perr error
	var pmu sync.Mutex
	wg.Add(2)
	go func() { // owned by runSaramaPipe: drains successes until the producer closes
		defer wg.Done()
		for range prod.Successes() {
		}
	}()
	go func() { // owned by runSaramaPipe: records the first produce error
		defer wg.Done()
		for e := range prod.Errors() {
			pmu.Lock()
			if perr == nil {
				perr = e
			}
			pmu.Unlock()
		}
	}()
	group, err := sarama.NewConsumerGroup(a.brokerList(), a.app, cfg)
	if err != nil {
		prod.Close()
		wg.Wait()
		return fmt.Errorf("group: %w", err)
	}
	wg.Add(1)
	go func() { // owned by runSaramaPipe: drains group errors until the group closes
		defer wg.Done()
		for range group.Errors() {
		}
	}()
	h := pipeHandler{out: a.out, prod: prod}
	var cerr error
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{a.in}, h); err != nil && ctx.Err() == nil {
			cerr = err
			break
		}
	}
	group.Close()
	prod.Close()
	wg.Wait()
	return errors.Join(cerr, perr)
}

type pipeHandler struct {
	out  string
	prod sarama.AsyncProducer
}

func (pipeHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (pipeHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h pipeHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.prod.Input() <- &sarama.ProducerMessage{
			Topic: h.out, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(transform(m.Value)),
			Timestamp: m.Timestamp,
		}
		s.MarkMessage(m, "")
	}
	return nil
}

// ---------- brook ----------

type brookCounter struct {
	counts store.KeyValueStore[string, int64]
}

func (c *brookCounter) Init(ctx processor.Context[string, int64]) (err error) {
	c.counts, err = processor.KeyValueStore[string, int64](ctx, "counts")
	return err
}

func (c *brookCounter) Process(ctx processor.Context[string, int64], r processor.Record[string, []byte]) error {
	n, _, err := c.counts.Get(r.Key)
	if err != nil {
		return err
	}
	n++
	if err := c.counts.Put(r.Key, n); err != nil {
		return err
	}
	return ctx.Forward(processor.Revalue(r, n))
}

func (c *brookCounter) Close() error { return nil }

type brookEnricher struct {
	profiles store.KeyValueStore[string, []byte]
}

func (e *brookEnricher) Init(ctx processor.Context[string, []byte]) (err error) {
	e.profiles, err = processor.KeyValueStore[string, []byte](ctx, "profiles")
	return err
}

func (e *brookEnricher) Process(ctx processor.Context[string, []byte], r processor.Record[string, []byte]) error {
	p, found, err := e.profiles.Get(r.Key)
	if err != nil || !found {
		return err // inner join: no profile, no output
	}
	return ctx.Forward(processor.Revalue(r, enrich(r.Value, p)))
}

func (e *brookEnricher) Close() error { return nil }

// brookWindowCounter counts per key and tumbling window in the window
// store "window-counts", by hand (the Processor API; the DSL's windowed
// count is the brook-dsl system). Windows are aligned to the epoch; a
// window store drops windows once its stream time passes their start plus
// retention (the window size: no grace, as the Kafka Streams peer's
// TimeWindows.ofSizeWithNoGrace).
type brookWindowCounter struct {
	size   time.Duration
	counts store.WindowStore[string, int64]
}

func (c *brookWindowCounter) Init(ctx processor.Context[string, int64]) (err error) {
	c.counts, err = processor.WindowStore[string, int64](ctx, "window-counts")
	return err
}

func (c *brookWindowCounter) Process(ctx processor.Context[string, int64], r processor.Record[string, []byte]) error {
	ms := r.Timestamp.UnixMilli()
	start := time.UnixMilli(ms - ms%c.size.Milliseconds())
	if !start.Add(c.size).After(ctx.StreamTime()) {
		return nil // window closed (no grace)
	}
	n, _, err := c.counts.Fetch(r.Key, start)
	if err != nil {
		return err
	}
	n++
	if err := c.counts.Put(r.Key, start, n); err != nil {
		return err
	}
	if err := c.counts.AdvanceTime(ctx.StreamTime()); err != nil {
		return err
	}
	return ctx.Forward(processor.Record[string, int64]{Key: windowKey(r.Key, start), Value: n, Timestamp: r.Timestamp, Headers: r.Headers})
}

func (c *brookWindowCounter) Close() error { return nil }

// windowKey is B4's output key, "<key>@<window start in Unix ms>", for
// brook and brook-dsl alike.
func windowKey(key string, start time.Time) string {
	return key + "@" + strconv.FormatInt(start.UnixMilli(), 10)
}

func brookTopology(a workerArgs) (*topology.Topology, error) {
	b := topology.New()
	switch a.workload {
	case "B1":
		src := topology.Source(b, "in", a.in, serde.String(), serde.Bytes())
		m := topology.ProcessFunc(b, "map", src, processor.MapValues(func(_ string, v []byte) ([]byte, error) {
			return transform(v), nil
		}))
		topology.Sink(b, "out", a.out, m, serde.String(), serde.Bytes())
	case "B2", "B5", "B6", "B7", "F1":
		src := topology.Source(b, "in", a.in, serde.String(), serde.Bytes())
		topology.KeyValueStore(b, "counts", serde.String(), serde.Int64())
		c := topology.Process(b, "count", src, func() processor.Processor[string, []byte, string, int64] {
			return &brookCounter{}
		}, topology.WithStores("counts"))
		topology.Sink(b, "out", a.out, c, serde.String(), serde.Int64())
	case "B3":
		// The stream's source first, as brook-dsl declares them: the order
		// of declaration is the order of the consumer's topics, and the
		// two are compared on B3 (docs/BENCHMARKS.md, issue 16).
		src := topology.Source(b, "in", a.in, serde.String(), serde.Bytes())
		topology.Table(b, "profiles", a.table, serde.String(), serde.Bytes())
		j := topology.Process(b, "enrich", src, func() processor.Processor[string, []byte, string, []byte] {
			return &brookEnricher{}
		}, topology.WithStores("profiles"))
		topology.Sink(b, "out", a.out, j, serde.String(), serde.Bytes())
	case "B4":
		src := topology.Source(b, "in", a.in, serde.String(), serde.Bytes())
		size := time.Duration(a.windowMinutes) * time.Minute
		topology.WindowStore(b, "window-counts", serde.String(), serde.Int64(), store.WindowOptions{Retention: size})
		c := topology.Process(b, "window-count", src, func() processor.Processor[string, []byte, string, int64] {
			return &brookWindowCounter{size: size}
		}, topology.WithStores("window-counts"))
		topology.Sink(b, "out", a.out, c, serde.String(), serde.Int64())
	case "B8":
		// No hand-written version: a windowed stream–stream join in the
		// Processor API is what the DSL's JoinStreams is.
		return authCaptureTopology(a)
	default:
		return nil, fmt.Errorf("brook has no workload %q", a.workload)
	}
	return b.Build()
}

// authCaptureTopology is B8 for brook: authorisations (a.in) joined with
// captures (a.table) through the DSL's JoinStreams, the window and
// output as the Kafka Streams peer's.
func authCaptureTopology(a workerArgs) (*topology.Topology, error) {
	b := topology.New()
	auths := topology.Stream(b, "auths", a.in, serde.String(), serde.Bytes())
	captures := topology.Stream(b, "captures", a.table, serde.String(), serde.Bytes())
	w := topology.JoinWindow(0).After(authCaptureAfter).Grace(authCaptureGrace)
	topology.JoinStreams(auths, captures, "auth-capture", w, func(_ string, auth, capture []byte) ([]byte, error) {
		return enrich(auth, capture), nil
	}).To("out", a.out, serde.String(), serde.Bytes())
	return b.Build()
}

// brookDSLTopology is brook's Streams DSL version of B2, B3 and B4 (the
// brook-dsl system): the same outputs as brookTopology's hand-written
// processors, through the DSL's nodes (and, for B2 and B4, timestamped
// stores).
func brookDSLTopology(a workerArgs) (*topology.Topology, error) {
	b := topology.New()
	// Count never forwards deletions; one here would be a bug to report,
	// not a record to skip.
	count := func(k string, c topology.Change[int64]) (int64, error) {
		if c.Deleted {
			return 0, fmt.Errorf("count of %q: unexpected deletion", k)
		}
		return c.Value, nil
	}
	s := topology.Stream(b, "in", a.in, serde.String(), serde.Bytes())
	switch a.workload {
	case "B2":
		counts := topology.Count(s.GroupByKey(), "counts")
		topology.MapValues(counts.ToStream("changes"), "values", count).
			To("out", a.out, serde.String(), serde.Int64())
	case "B3":
		// The table's store and materialize node are those of the
		// hand-written B3's Table; Join looks each event up in it.
		profiles := topology.TableOf(b, "profiles", a.table, serde.String(), serde.Bytes())
		topology.Join(s, profiles, "enrich", func(_ string, event, profile []byte) ([]byte, error) {
			return enrich(event, profile), nil
		}).To("out", a.out, serde.String(), serde.Bytes())
	case "B4":
		size := time.Duration(a.windowMinutes) * time.Minute
		counts := topology.WindowedBy(s.GroupByKey(), topology.Tumbling(size)).Count("window-counts")
		topology.Map(counts.ToStream("changes"), "values", func(w topology.Windowed[string], c topology.Change[int64]) (string, int64, error) {
			n, err := count(w.Key, c)
			return windowKey(w.Key, w.Start), n, err
		}).To("out", a.out, serde.String(), serde.Int64())
	default:
		return nil, fmt.Errorf("brook-dsl has no workload %q", a.workload)
	}
	return b.Build()
}

func runBrook(ctx context.Context, a workerArgs) error {
	build := brookTopology
	if a.system == SysBrookDSL {
		build = brookDSLTopology
	}
	topo, err := build(a)
	if err != nil {
		return err
	}
	type change struct {
		to State
		at time.Time
	}
	changes := make(chan change, 64)
	cfg := topology.Config{
		ApplicationID: a.app, Brokers: a.brokerList(), StateDir: a.state,
		CommitInterval: time.Second,
		// MaxTaskIdle is left at its default, 0: records already on the
		// broker are merged in timestamp order however slow their fetch,
		// as Kafka Streams does (max.task.idle.ms=0). (The default used
		// to be a 500 ms bound, which let a B3 run on a loaded machine
		// take events before the table records they join had been
		// fetched: the inner join dropped 127 of 300,000 —
		// docs/BENCHMARKS.md, issue 16 — so the workers set 1 minute.)
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		StateListener: func(_, to topology.State) {
			select {
			case changes <- change{to, time.Now()}:
			default:
			}
		},
		ConfigureSarama: func(c *sarama.Config) {
			a.producer().applySarama(c)
		},
	}
	if a.guarantee == "eos" {
		cfg.Guarantee = topology.ExactlyOnce
	}
	var reg *metrics.Registry
	switch a.system {
	case SysBrookMetrics:
		reg = metrics.NewRegistry()
		cfg.Metrics = reg
	case SysBrookLineage:
		cfg.LineageHeaders = true
	case SysBrookNoCache:
		cfg.StoreCacheMaxBytes = -1
	}
	var restores *metrics.Registry
	if a.workload == "F1" {
		if err := failoverConfig(&cfg, a); err != nil {
			return err
		}
		restores = metrics.NewRegistry()
		cfg.Metrics = restores
	}
	ln, err := listenQuery(a)
	if err != nil {
		return err
	}
	if ln != nil {
		cfg.QueryEndpoint = ln.Addr().String()
	}
	app, err := topology.NewApp(topo, cfg)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by runBrook: reports the first restore, then drains
		defer wg.Done()
		var restoring time.Time
		reported := false
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-changes:
				switch {
				case c.to == topology.StateRestoring && restoring.IsZero():
					restoring = c.at
				case c.to == topology.StateRunning && !reported:
					reported = true
					var n int64
					for _, v := range app.RestoredRecords() {
						n += v
					}
					ms := 0.0
					if !restoring.IsZero() {
						ms = float64(c.at.Sub(restoring).Microseconds()) / 1000
					}
					emit(os.Stdout, event{Event: "running", RestoreMs: ms, Restored: n})
				}
			}
		}
	}()
	if restores != nil {
		wg.Add(1)
		go func() { // owned by runBrook: reports the records restored so far
			defer wg.Done()
			reportRestored(ctx, restores, a.app)
		}()
	}
	var scrapes scrapeStats
	if reg != nil {
		wg.Add(1)
		go func() { // owned by runBrook: reads the metrics as a Prometheus scrape would
			defer wg.Done()
			scrapes.run(ctx, reg, a.app)
		}()
	}
	err = runWithQuery(ctx, app, ln)
	wg.Wait()
	if reg != nil {
		// In the worker's log: proof that the scrapes saw the App.
		fmt.Fprintf(os.Stderr, "metrics: %d scrapes of %s, the last saw %d records consumed\n", scrapes.n, a.app, scrapes.consumed)
		if err == nil && scrapes.missing > 0 {
			err = fmt.Errorf("metrics: %d of %d scrapes did not list application %s", scrapes.missing, scrapes.n, a.app)
		}
	}
	return err
}

// failoverConfig sets what the failover workloads change in a brook
// instance's configuration: its client id (the harness finds the
// instance's partitions in the group's description by it), the group
// session timeout and heartbeat (as the Kafka Streams peer's), and the
// standby replicas (topology.Config.NumStandbyReplicas; warm-ups and the
// recovery lag keep their defaults, as the Kafka Streams peer's do).
func failoverConfig(cfg *topology.Config, a workerArgs) error {
	if a.instance == "" || a.session <= 0 {
		return fmt.Errorf("workload F1 needs -instance and -session")
	}
	cfg.ClientID = a.app + "-" + a.instance
	cfg.NumStandbyReplicas = a.standbys
	configure := cfg.ConfigureSarama
	cfg.ConfigureSarama = func(c *sarama.Config) {
		if configure != nil {
			configure(c)
		}
		c.Consumer.Group.Session.Timeout = a.session
		c.Consumer.Group.Heartbeat.Interval = a.session / 3
	}
	return nil
}

// reportRestored emits a "restored" event with the changelog records the
// App's stores have restored so far (every restore on this instance,
// summed from its metrics) whenever that number changes, every 100 ms at
// most, until ctx ends.
func reportRestored(ctx context.Context, reg *metrics.Registry, app string) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	last := int64(-1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var n int64
		for _, s := range reg.Snapshot().Apps {
			if s.ApplicationID != app {
				continue
			}
			for _, r := range s.Restores {
				if r.Task != metrics.GlobalTask {
					n += r.Records
				}
			}
		}
		if n != last {
			last = n
			emit(os.Stdout, event{Event: "restored", Restored: n})
		}
	}
}

// scrapeStats is what the brook-metrics worker's scrapes saw.
type scrapeStats struct {
	n, missing int
	consumed   int64 // records consumed, summed over partitions, at the last scrape
}

// run reads reg's Snapshot every ScrapeInterval until ctx ends, as a
// Prometheus scrape of the adapter would (it renders one Snapshot per
// scrape), and keeps the records consumed so the reads are not dead code.
func (s *scrapeStats) run(ctx context.Context, reg *metrics.Registry, app string) {
	t := time.NewTicker(ScrapeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap := reg.Snapshot()
		if ctx.Err() != nil {
			return // the App may be closing and leaving the registry
		}
		s.n++
		found := false
		for _, a := range snap.Apps {
			if a.ApplicationID != app {
				continue
			}
			found = true
			var c int64
			for _, p := range a.Partitions {
				c += p.RecordsConsumed
			}
			s.consumed = c
		}
		if !found {
			s.missing++
		}
	}
}

// State is brook's App state (for the listener above).
type State = topology.State

// ---------- goka ----------

// int64Codec encodes counts as 8 bytes big-endian, as brook's and Java's
// Long serdes do, so every system's changelog holds the same bytes.
type int64Codec struct{}

func (int64Codec) Encode(v any) ([]byte, error) {
	n, ok := v.(int64)
	if !ok {
		return nil, fmt.Errorf("int64Codec: %T", v)
	}
	return binary.BigEndian.AppendUint64(nil, uint64(n)), nil
}

func (int64Codec) Decode(b []byte) (any, error) {
	if len(b) != 8 {
		return nil, fmt.Errorf("int64Codec: %d bytes", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// bytesCodec passes bytes through.
type bytesCodec struct{}

func (bytesCodec) Encode(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("bytesCodec: %T", v)
	}
	return b, nil
}

func (bytesCodec) Decode(b []byte) (any, error) { return b, nil }

func runGoka(ctx context.Context, a workerArgs) error {
	cfg := goka.DefaultConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "bench-goka"
	a.producer().applySarama(cfg)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	goka.ReplaceGlobalConfig(cfg) // goka's way to configure its sarama clients
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication, tmc.Stream.Replication = 1, 1

	var edges []goka.Edge
	switch a.workload {
	case "B2", "B5", "B6":
		edges = []goka.Edge{
			goka.Input(goka.Stream(a.in), bytesCodec{}, func(ctx goka.Context, _ any) {
				var n int64
				if v := ctx.Value(); v != nil {
					n = v.(int64)
				}
				n++
				ctx.SetValue(n)
				ctx.Emit(goka.Stream(a.out), ctx.Key(), n)
			}),
			goka.Persist(int64Codec{}),
			goka.Output(goka.Stream(a.out), int64Codec{}),
		}
	case "B3":
		table := goka.Table(a.table)
		edges = []goka.Edge{
			goka.Input(goka.Stream(a.in), bytesCodec{}, func(ctx goka.Context, v any) {
				p := ctx.Join(table)
				if p == nil {
					return
				}
				ctx.Emit(goka.Stream(a.out), ctx.Key(), enrich(v.([]byte), p.([]byte)))
			}),
			goka.Join(table, bytesCodec{}),
			goka.Output(goka.Stream(a.out), bytesCodec{}),
		}
	default:
		return fmt.Errorf("goka has no workload %q", a.workload)
	}
	var mu sync.Mutex
	var assigned time.Time
	ln, err := listenQuery(a)
	if err != nil {
		return err
	}
	proc, err := goka.NewProcessor(a.brokerList(), goka.DefineGroup(goka.Group(a.app), edges...),
		goka.WithStorageBuilder(gokastorage.DefaultBuilder(a.state)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg, tmc)),
		goka.WithLogger(gokaQuiet{}),
		goka.WithRebalanceCallback(func(goka.Assignment) {
			mu.Lock()
			if assigned.IsZero() {
				assigned = time.Now()
			}
			mu.Unlock()
		}),
	)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by runGoka: reports when the processor has recovered its tables
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if proc.Recovered() {
					mu.Lock()
					ms := float64(now.Sub(assigned).Microseconds()) / 1000
					mu.Unlock()
					emit(os.Stdout, event{Event: "running", RestoreMs: ms})
					return
				}
			}
		}
	}()
	err = runGokaWithQuery(ctx, proc, ln)
	wg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// gokaQuiet drops goka's logs (they go to stderr by default and are many).
type gokaQuiet struct{}

func (gokaQuiet) Print(...any)          {}
func (gokaQuiet) Println(...any)        {}
func (gokaQuiet) Printf(string, ...any) {}

// ---------- goleveldb reference (B5) ----------

// runLevelDB writes a.keys keys of the restore data set into a fresh
// goleveldb database with brook's engine options, in batches of 10,000
// (brook's restore batch), and reports the time.
func runLevelDB(a workerArgs) error {
	db, err := leveldb.OpenFile(a.state, &opt.Options{
		BlockCacheCapacity: 8 << 20, WriteBuffer: 16 << 20, Compression: opt.SnappyCompression,
		Filter: filter.NewBloomFilter(10),
	})
	if err != nil {
		return err
	}
	start := time.Now()
	var b leveldb.Batch
	for i := 0; i < a.keys; i++ {
		b.Put([]byte(restoreKey(i)), binary.BigEndian.AppendUint64(nil, uint64(i)))
		if b.Len() == 10_000 {
			if err := db.Write(&b, nil); err != nil {
				db.Close()
				return err
			}
			b.Reset()
		}
	}
	if b.Len() > 0 {
		if err := db.Write(&b, nil); err != nil {
			db.Close()
			return err
		}
	}
	ms := float64(time.Since(start).Microseconds()) / 1000
	if err := db.Close(); err != nil {
		return err
	}
	emit(os.Stdout, event{Event: "done", Keys: a.keys, Ms: ms})
	return nil
}

func restoreKey(i int) string { return fmt.Sprintf("k%07d", i) }
