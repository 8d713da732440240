package topology_test

import (
	"context"
	"errors"
	"github.com/brookstream/brook/serde/avro"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// waitRunning waits until app is Running, failing the test if run ends
// first or timeout passes.
func waitRunning(t *testing.T, app *topology.App, done <-chan error, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); app.State() != topology.StateRunning; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("Run ended before the app was running: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("app not running after %v (state %v)", timeout, app.State())
		}
	}
}

// runWithin runs app until it returns or limit passes (a test failure).
func runWithin(t *testing.T, app *topology.App, ctx context.Context, limit time.Duration) (error, time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- app.Run(ctx) }()
	select {
	case err := <-done:
		return err, time.Since(start)
	case <-time.After(limit):
		t.Fatalf("Run did not return within %v", limit)
		return nil, 0
	}
}

// TestAppStateDirLockedInProcess: a second App of the same application
// with the same StateDir, in the same process, is refused at once with an
// error naming the directory; once the first stops, it can start.
func TestAppStateDirLockedInProcess(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	cfg := topology.Config{ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t)}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, doneFirst := startApp(t, ctx, countTopology(t, in, out), cfg)
	waitRunning(t, first, doneFirst, 60*time.Second)

	second, err := topology.NewApp(countTopology(t, in, out), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err, took := runWithin(t, second, ctx, 10*time.Second)
	var locked *topology.StateDirLockedError
	if !errors.As(err, &locked) {
		t.Fatalf("second Run returned %v after %v, want a StateDirLockedError", err, took)
	}
	wantDir := filepath.Join(cfg.StateDir, cfg.ApplicationID)
	if locked.Dir != wantDir || locked.PID != os.Getpid() || !strings.Contains(err.Error(), wantDir) {
		t.Fatalf("error names dir %q pid %d (%v), want %q and pid %d", locked.Dir, locked.PID, err, wantDir, os.Getpid())
	}
	if took > 2*time.Second {
		t.Fatalf("refusal took %v, want it immediate", took)
	}
	t.Logf("refused after %v: %v", took, err)
	if first.State() != topology.StateRunning {
		t.Fatalf("the first instance is %v after the refusal, want running", first.State())
	}

	cancel()
	if err := <-doneFirst; err != nil {
		t.Fatalf("first Run: %v", err)
	}
	// The lock went with the first Run: the directory can be used again.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	third, doneThird := startApp(t, ctx2, countTopology(t, in, out), cfg)
	waitRunning(t, third, doneThird, 60*time.Second)
	cancel2()
	if err := <-doneThird; err != nil {
		t.Fatalf("Run after the first stopped: %v", err)
	}
}

// TestAppStateDirLockedAcrossProcesses: an instance in another OS process
// holds the state directory; an App here is refused naming that process's
// pid; after the other process is killed (no clean shutdown) the lock is
// gone and the App starts.
func TestAppStateDirLockedAcrossProcesses(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	appID, dir := testutil.TopicName(t, "app"), t.TempDir()
	child := startInstance(t, "holder", "count", map[string]string{
		"IN": in, "OUT": out, "APP_ID": appID, "BROKERS": strings.Join(b.Addrs(), ","), "STATE_DIR": dir,
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if data, err := os.ReadFile(child.log); err == nil && strings.Contains(string(data), "to=running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child process is not running after 60s")
		}
	}
	lockPath := filepath.Join(dir, appID, ".lock")
	if data, err := os.ReadFile(lockPath); err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(child.cmd.Process.Pid) {
		t.Errorf("lock file %s holds %q (%v), want the child's pid %d", lockPath, data, err, child.cmd.Process.Pid)
	}
	cfg := topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, Logger: testLogger(t)}
	app, err := topology.NewApp(countTopology(t, in, out), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err, took := runWithin(t, app, context.Background(), 10*time.Second)
	var locked *topology.StateDirLockedError
	if !errors.As(err, &locked) || locked.PID != child.cmd.Process.Pid {
		t.Fatalf("Run returned %v after %v, want a StateDirLockedError naming pid %d", err, took, child.cmd.Process.Pid)
	}
	t.Logf("refused after %v: %v", took, err)

	child.kill(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app2, done := startApp(t, ctx, countTopology(t, in, out), cfg)
	waitRunning(t, app2, done, 60*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after the holder was killed: %v", err)
	}
}

// TestAppRefusesMissingDeadLetterAndSinkTopics: a dead-letter topic and a
// sink topic that do not exist stop Run before it joins the group, with a
// MissingTopicsError that names them by use; nothing is consumed or
// committed.
func TestAppRefusesMissingDeadLetterAndSinkTopics(t *testing.T) {
	b := testutil.NewBroker(t)
	in, dlq := testutil.TopicName(t, "in"), testutil.TopicName(t, "dlq")
	b.CreateTopic(t, in, 1, nil)
	poisonInput(t, b, in)
	for _, tc := range []struct {
		name      string
		createOut bool
		opt       topology.Option
	}{
		{"deserialization handler", true, topology.WithDeserializationHandler(processor.DeadLetter(dlq, testLogger(t)))},
		{"processing handler and missing sink", false, topology.WithProcessingHandler(processor.DeadLetter(dlq, testLogger(t)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := testutil.TopicName(t, "out")
			if tc.createOut {
				b.CreateTopic(t, out, 1, nil)
			}
			appID := testutil.TopicName(t, "app")
			app, err := topology.NewApp(sumTopology(t, in, out, tc.opt), topology.Config{
				ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), CommitInterval: 50 * time.Millisecond, Logger: testLogger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err, _ = runWithin(t, app, ctx, 40*time.Second)
			var missing *topology.MissingTopicsError
			if !errors.As(err, &missing) {
				t.Fatalf("Run returned %v, want a MissingTopicsError", err)
			}
			t.Logf("refused: %v", err)
			if !slices.Equal(missing.DeadLetters, []string{dlq}) || !strings.Contains(err.Error(), "dead-letter topics ["+dlq+"]") {
				t.Fatalf("error names dead-letter topics %v: %v", missing.DeadLetters, err)
			}
			if wantSinks := !tc.createOut; wantSinks != slices.Equal(missing.Sinks, []string{out}) || len(missing.Sources) != 0 {
				t.Fatalf("error names sources %v sinks %v, want sinks [%s] only when out is missing (%v)", missing.Sources, missing.Sinks, out, !tc.createOut)
			}
			if c := committedOffset(t, b, appID, in, 0); c >= 0 {
				t.Fatalf("the app committed offset %d: it joined the group despite the missing topic", c)
			}
		})
	}
}

type rateV1 struct {
	Cents int64 `avro:"cents"`
}

type rateV2 struct {
	Cents    int64  `avro:"cents"`
	Currency string `avro:"currency"`
}

const (
	rateV1Schema = `{"type":"record","name":"Rate","fields":[{"name":"cents","type":"long"}]}`
	rateV2Schema = `{"type":"record","name":"Rate","fields":[{"name":"cents","type":"long"},{"name":"currency","type":"string"}]}`
)

// TestAppPreflightsTableAndStoreSerdes registers v1 of a schema, then
// starts apps whose table value serde, or whose logged store value serde,
// carries a BACKWARD-incompatible v2: Run must refuse to start before
// joining the group, naming the table's source node or the store, as it
// does for a source or sink serde.
func TestAppPreflightsTableAndStoreSerdes(t *testing.T) {
	url := testutil.RegistryURL(t)
	b := testutil.NewBroker(t)
	reg, err := avro.NewRegistry(url)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	v1, err := avro.NewAvro[rateV1](reg, rateV1Schema)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := avro.NewAvro[rateV2](reg, rateV2Schema)
	if err != nil {
		t.Fatal(err)
	}
	in, out, rates := testutil.TopicName(t, "in"), testutil.TopicName(t, "out"), testutil.TopicName(t, "rates")
	for _, tp := range []string{in, out} {
		b.CreateTopic(t, tp, 1, nil)
	}
	b.CreateTopic(t, rates, 1, map[string]string{"cleanup.policy": "compact"})

	run := func(t *testing.T, appID string, topo *topology.Topology) error {
		t.Helper()
		app, err := topology.NewApp(topo, topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err, _ = runWithin(t, app, ctx, 40*time.Second)
		return err
	}
	check := func(t *testing.T, err error, subject, names string, appID string) {
		t.Helper()
		var inc *avro.IncompatibleSchemaError
		if !errors.As(err, &inc) {
			t.Fatalf("Run returned %v, want an IncompatibleSchemaError", err)
		}
		t.Logf("refused: %v", err)
		if inc.Subject != subject || !strings.Contains(err.Error(), names) {
			t.Fatalf("error names subject %q, want %q and %s: %v", inc.Subject, subject, names, err)
		}
		if c := committedOffset(t, b, appID, in, 0); c >= 0 {
			t.Fatalf("the app committed offset %d: it joined the group despite the refused schema", c)
		}
	}

	t.Run("table", func(t *testing.T) {
		if _, err := v1.Serialize(rates, rateV1{Cents: 1}); err != nil { // registers v1 under <rates>-value
			t.Fatal(err)
		}
		tb := topology.New()
		table := topology.Table(tb, "rates", rates, serde.String(), serde.Serde[rateV2](v2))
		src := topology.Source(tb, "in", in, serde.String(), serde.String())
		priced := topology.ProcessFunc(tb, "price", src, func(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
			s, err := table.From(ctx)
			if err != nil {
				return err
			}
			rate, _, err := s.Get(r.Key)
			if err != nil {
				return err
			}
			return ctx.Forward(processor.Revalue(r, rate.Cents))
		}, topology.WithStores("rates"))
		topology.Sink(tb, "out", out, priced, serde.String(), serde.Int64())
		topo, err := tb.Build()
		if err != nil {
			t.Fatal(err)
		}
		appID := testutil.TopicName(t, "app")
		check(t, run(t, appID, topo), rates+"-value", `node "rates-source"`, appID)
	})

	t.Run("store", func(t *testing.T) {
		appID := testutil.TopicName(t, "app")
		changelog := store.ChangelogTopic(appID, "last")
		if _, err := v1.Serialize(changelog, rateV1{Cents: 1}); err != nil { // registers v1 under the changelog's subject
			t.Fatal(err)
		}
		tb := topology.New()
		last := topology.KeyValueStore(tb, "last", serde.String(), serde.Serde[rateV2](v2))
		src := topology.Source(tb, "in", in, serde.String(), serde.String())
		kept := topology.ProcessFunc(tb, "keep", src, func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
			s, err := last.From(ctx)
			if err != nil {
				return err
			}
			if err := s.Put(r.Key, rateV2{Currency: r.Value}); err != nil {
				return err
			}
			return ctx.Forward(r)
		}, topology.WithStores("last"))
		topology.Sink(tb, "out", out, kept, serde.String(), serde.String())
		topo, err := tb.Build()
		if err != nil {
			t.Fatal(err)
		}
		check(t, run(t, appID, topo), changelog+"-value", `store "last"`, appID)
	})
}

// TestAppChangelogReplicationSettings: the configured replication factor
// and min.insync.replicas are applied to a new changelog topic and checked
// on an existing one, whose mismatch stops Run with an error naming the
// topic and the expected and actual values.
func TestAppChangelogReplicationSettings(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	// topicConfig returns a config set on the topic itself ("" when the
	// topic follows the broker's default).
	topicConfig := func(topic, name string) string {
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name == name && e.Source == sarama.SourceTopic {
				return e.Value
			}
		}
		return ""
	}
	cfg := func(appID string, rf, isr int) topology.Config {
		return topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t),
			ReplicationFactor: rf, MinInsyncReplicas: isr}
	}

	t.Run("applied to a new changelog", func(t *testing.T) {
		appID := testutil.TopicName(t, "app")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		app, done := startApp(t, ctx, countTopology(t, in, out), cfg(appID, 1, 1))
		waitRunning(t, app, done, 60*time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		topic := store.ChangelogTopic(appID, "counts")
		if got := topicConfig(topic, "min.insync.replicas"); got != "1" {
			t.Fatalf("%s has min.insync.replicas=%q set on the topic, want 1", topic, got)
		}
		md, err := admin.DescribeTopics([]string{topic})
		if err != nil || len(md) != 1 || len(md[0].Partitions) != 2 || len(md[0].Partitions[0].Replicas) != 1 {
			t.Fatalf("describe %s: %v %+v", topic, err, md)
		}
	})

	for _, tc := range []struct {
		name             string
		rf, isr          int
		setting, expect  string
		topicMinInsync   string
		actualStartsWith string
	}{
		{"replication factor of an existing changelog", 2, 0, "replication.factor", "2", "1", "1 (partition 0)"},
		{"min.insync.replicas of an existing changelog", 0, 2, "min.insync.replicas", "2", "1", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			appID := testutil.TopicName(t, "app")
			topic := store.ChangelogTopic(appID, "counts")
			b.CreateTopic(t, topic, 2, map[string]string{"cleanup.policy": "compact", "min.insync.replicas": tc.topicMinInsync})
			app, err := topology.NewApp(countTopology(t, in, out), cfg(appID, tc.rf, tc.isr))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err, _ = runWithin(t, app, ctx, 40*time.Second)
			var mm *topology.TopicMismatchError
			if !errors.As(err, &mm) {
				t.Fatalf("Run returned %v, want a TopicMismatchError", err)
			}
			t.Logf("refused: %v", err)
			if mm.Topic != topic || mm.Setting != tc.setting || mm.Expected != tc.expect || mm.Actual != tc.actualStartsWith {
				t.Fatalf("mismatch %+v, want topic %s %s expected %s actual %s", *mm, topic, tc.setting, tc.expect, tc.actualStartsWith)
			}
		})
	}
}

// recordingHandler keeps the log records at warning level and above.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
	next    slog.Handler
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return h.next.Handle(ctx, r)
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// warnings returns the messages of warnings whose "topic" attribute is topic.
func (h *recordingHandler) warnings(topic string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "topic" && a.Value.String() == topic {
				out = append(out, r.Message)
				return false
			}
			return true
		})
	}
	return out
}

// TestAppWarnsOnNonCompactedTableSource: a table whose source topic is not
// compacted starts (its content is the user's choice) but logs a warning
// naming the topic and what a restore would do; a compacted one does not.
func TestAppWarnsOnNonCompactedTableSource(t *testing.T) {
	b := testutil.NewBroker(t)
	for _, tc := range []struct {
		name    string
		configs map[string]string
		warn    string
	}{
		{"compacted", map[string]string{"cleanup.policy": "compact"}, ""},
		{"delete with retention", map[string]string{"cleanup.policy": "delete", "retention.ms": "86400000"}, "lacks the keys whose latest record has expired"},
		{"delete without retention", map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}, "restores read every record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, out, rates := testutil.TopicName(t, "in"), testutil.TopicName(t, "out"), testutil.TopicName(t, "rates")
			b.CreateTopic(t, in, 1, nil)
			b.CreateTopic(t, out, 1, nil)
			b.CreateTopic(t, rates, 1, tc.configs)
			tb := topology.New()
			table := topology.Table(tb, "rates", rates, serde.String(), serde.Int64())
			src := topology.Source(tb, "in", in, serde.String(), serde.String())
			priced := topology.ProcessFunc(tb, "price", src, func(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
				s, err := table.From(ctx)
				if err != nil {
					return err
				}
				v, _, err := s.Get(r.Key)
				if err != nil {
					return err
				}
				return ctx.Forward(processor.Revalue(r, v))
			}, topology.WithStores("rates"))
			topology.Sink(tb, "out", out, priced, serde.String(), serde.Int64())
			topo, err := tb.Build()
			if err != nil {
				t.Fatal(err)
			}
			rec := &recordingHandler{next: testLogger(t).Handler()}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			app, done := startApp(t, ctx, topo, topology.Config{
				ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: slog.New(rec),
			})
			waitRunning(t, app, done, 60*time.Second)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			got := rec.warnings(rates)
			if tc.warn == "" {
				if len(got) != 0 {
					t.Fatalf("warnings about the compacted source: %v", got)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0], "not compacted") || !strings.Contains(got[0], tc.warn) {
				t.Fatalf("warnings %q, want one saying the topic is not compacted and %q", got, tc.warn)
			}
		})
	}
}

// TestConfigValidateDoesNotChangeConfig: Validate reports problems only;
// the defaults go to NewApp's own copy.
func TestConfigValidateDoesNotChangeConfig(t *testing.T) {
	cfg := topology.Config{ApplicationID: "app", Brokers: []string{"127.0.0.1:9"}}
	before := cfg
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := topology.NewApp(countTopology(t, "in", "out"), cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir != before.StateDir || cfg.ClientID != before.ClientID || cfg.Logger != nil ||
		cfg.CommitInterval != 0 || cfg.Workers != 0 || cfg.MaxBufferedRecords != 0 || cfg.ReplicationFactor != 0 || cfg.StartupTimeout != 0 {
		t.Fatalf("Validate or NewApp changed the Config: %+v", cfg)
	}
}

// TestConfigValidateRefusesBadApplicationIDsAndOptions: application ids
// that cannot prefix a topic name, changelog topics that would be too
// long, and LevelDB or replication options that cannot work are refused
// before anything connects.
func TestConfigValidateRefusesBadApplicationIDsAndOptions(t *testing.T) {
	base := topology.Config{ApplicationID: "app", Brokers: []string{"127.0.0.1:9"}}
	for _, tc := range []struct {
		name   string
		change func(*topology.Config)
		want   string
	}{
		{"space", func(c *topology.Config) { c.ApplicationID = "my app" }, `' '`},
		{"slash", func(c *topology.Config) { c.ApplicationID = "team/app" }, `'/'`},
		{"non-ascii", func(c *topology.Config) { c.ApplicationID = "zahlungsüberweisung" }, "ASCII"},
		{"blank", func(c *topology.Config) { c.ApplicationID = "  " }, "ApplicationID"},
		{"too long", func(c *topology.Config) { c.ApplicationID = strings.Repeat("a", 240) }, "too long"},
		{"negative block cache", func(c *topology.Config) { c.LevelDB.BlockCacheSize = -1 }, "BlockCacheSize"},
		{"unknown compression", func(c *topology.Config) { c.LevelDB.Compression = 7 }, "Compression"},
		{"replication factor", func(c *topology.Config) { c.ReplicationFactor = -2 }, "ReplicationFactor"},
		{"min insync above replication", func(c *topology.Config) { c.ReplicationFactor, c.MinInsyncReplicas = 2, 3 }, "MinInsyncReplicas 3 exceeds"},
		{"negative startup timeout", func(c *topology.Config) { c.StartupTimeout = -time.Second }, "StartupTimeout"},
		{"negative standbys", func(c *topology.Config) { c.NumStandbyReplicas = -1 }, "NumStandbyReplicas -1 is negative"},
		{"negative recovery lag", func(c *topology.Config) { c.AcceptableRecoveryLag = -1 }, "AcceptableRecoveryLag -1 is negative"},
		{"negative warm-ups", func(c *topology.Config) { c.MaxWarmupReplicas = -2 }, "MaxWarmupReplicas -2 is negative"},
		{"negative probing interval", func(c *topology.Config) { c.ProbingRebalanceInterval = -time.Second }, "ProbingRebalanceInterval -1s is negative"},
		{"instance id with a space", func(c *topology.Config) { c.GroupInstanceID = "host 1" }, "GroupInstanceID"},
		{"instance id too long", func(c *topology.Config) { c.GroupInstanceID = strings.Repeat("h", 250) }, "GroupInstanceID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.change(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error mentioning %q", err, tc.want)
			}
			if _, nerr := topology.NewApp(countTopology(t, "in", "out"), cfg); nerr == nil {
				t.Fatalf("NewApp accepted what Validate refused: %v", err)
			}
		})
	}
	// The changelog of store "counts" would pass 249 characters, though
	// the application id alone is short enough.
	cfg := base
	cfg.ApplicationID = strings.Repeat("a", 235)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate of a 235-character id: %v", err)
	}
	_, err := topology.NewApp(countTopology(t, "in", "out"), cfg)
	if err == nil || !strings.Contains(err.Error(), `store "counts"`) || !strings.Contains(err.Error(), "249") {
		t.Fatalf("NewApp = %v, want an error naming store \"counts\" and the 249-character limit", err)
	}
	// A store name that cannot be part of a topic name.
	tb := topology.New()
	src := topology.Source(tb, "in", "in", serde.String(), serde.String())
	topology.KeyValueStore(tb, "my counts", serde.String(), serde.Int64())
	topology.ProcessFunc(tb, "p", src, func(processor.Context[string, string], processor.Record[string, string]) error { return nil }, topology.WithStores("my counts"))
	topo, err := tb.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topology.NewApp(topo, base); err == nil || !strings.Contains(err.Error(), `store "my counts"`) {
		t.Fatalf("NewApp = %v, want an error naming store \"my counts\"", err)
	}
}

// blackhole listens on a local port, accepts connections and never
// answers: a broker that hangs.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestAppRunCancelledWhileBrokerHangs: cancelling ctx while Run waits on a
// broker that accepts connections and never answers makes Run return
// promptly, with nil (the caller stopped it).
func TestAppRunCancelledWhileBrokerHangs(t *testing.T) {
	app, err := topology.NewApp(countTopology(t, "in", "out"), topology.Config{
		ApplicationID: "hang", Brokers: []string{blackhole(t)}, StateDir: t.TempDir(), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	err, took := runWithin(t, app, ctx, 10*time.Second)
	if err != nil {
		t.Fatalf("Run returned %v after cancellation, want nil", err)
	}
	if took > 2300*time.Millisecond {
		t.Fatalf("Run took %v to return after ctx was cancelled at 300ms", took)
	}
	t.Logf("Run returned %v after start", took)
}

// TestAppStartupTimeoutWhenBrokerHangs: with nobody cancelling, a broker
// that accepts connections and never answers fails Run after
// Config.StartupTimeout with an error naming the step.
func TestAppStartupTimeoutWhenBrokerHangs(t *testing.T) {
	addr := blackhole(t)
	app, err := topology.NewApp(countTopology(t, "in", "out"), topology.Config{
		ApplicationID: "hang", Brokers: []string{addr}, StateDir: t.TempDir(), Logger: testLogger(t),
		StartupTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	err, took := runWithin(t, app, context.Background(), 15*time.Second)
	var te *topology.StartupTimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("Run returned %v after %v, want a StartupTimeoutError", err, took)
	}
	if took > 3*time.Second || !strings.Contains(err.Error(), "connecting to the brokers") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("after %v: %v; want the error within ~1s naming the connect step and %s", took, err, addr)
	}
	t.Logf("after %v: %v", took, err)
}

// TestAppRunCancelledWhileCreatingChangelog: cancelling ctx while the
// broker holds a CreateTopics request makes Run return promptly. The
// embedded broker is the one that can hold a request.
func TestAppRunCancelledWhileCreatingChangelog(t *testing.T) {
	b := testutil.NewBroker(t)
	c := b.Embedded()
	if c == nil {
		t.Skip("needs the embedded broker to hold a CreateTopics request; the connect and registry cases cover real Kafka")
	}
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.CreateTopics), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		once.Do(func() { close(held) })
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	defer close(release)
	app, err := topology.NewApp(countTopology(t, in, out), topology.Config{
		ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	select {
	case <-held:
	case err := <-done:
		t.Fatalf("Run ended before creating the changelog: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the changelog was not created within 30s")
	}
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancellation, want nil", err)
		}
		t.Logf("Run returned %v after cancellation", time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of cancellation while CreateTopics hung")
	}
}

// TestAppStartupRegistryHangs: a schema registry that accepts requests and
// never answers neither outlasts a cancelled ctx nor StartupTimeout.
func TestAppStartupRegistryHangs(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	asked := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- struct{}{}
		<-r.Context().Done()
	}))
	defer srv.Close()
	reg, err := avro.NewRegistry(srv.URL, avro.WithHTTPClient(&http.Client{}))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := avro.NewAvro[rateV1](reg, rateV1Schema)
	if err != nil {
		t.Fatal(err)
	}
	topo := func() *topology.Topology {
		tb := topology.New()
		src := topology.Source(tb, "in", in, serde.String(), serde.Int64())
		rated := topology.ProcessFunc(tb, "rate", src, processor.MapValues(func(_ string, v int64) (rateV1, error) { return rateV1{Cents: v}, nil }))
		topology.Sink(tb, "out", out, rated, serde.String(), serde.Serde[rateV1](v1))
		topo, err := tb.Build()
		if err != nil {
			t.Fatal(err)
		}
		return topo
	}
	cfg := topology.Config{ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t)}

	t.Run("cancelled", func(t *testing.T) {
		app, err := topology.NewApp(topo(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- app.Run(ctx) }()
		select {
		case <-asked:
		case err := <-done:
			t.Fatalf("Run ended before asking the registry: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not ask the registry within 30s")
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run returned %v after cancellation, want nil", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run did not return within 2s of cancellation while the registry hung")
		}
	})

	t.Run("timeout", func(t *testing.T) {
		c := cfg
		c.StartupTimeout = 3 * time.Second
		app, err := topology.NewApp(topo(), c)
		if err != nil {
			t.Fatal(err)
		}
		err, took := runWithin(t, app, context.Background(), 20*time.Second)
		var te *topology.StartupTimeoutError
		if !errors.As(err, &te) || !strings.Contains(te.Step, "schema registry") {
			t.Fatalf("Run returned %v after %v, want a StartupTimeoutError in the registry step", err, took)
		}
		t.Logf("after %v: %v", took, err)
	})
}
