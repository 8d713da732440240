package topology_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// helperEnv selects the application a re-executed test binary runs; the
// other BROOK_HELPER_* variables configure it.
const helperEnv = "BROOK_HELPER_APP"

// helperMain runs one application instance until SIGTERM (clean stop, exit
// 0) or SIGKILL, logging to stderr.
func helperMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	env := func(k string) string { return os.Getenv("BROOK_HELPER_" + k) }
	var topo *topology.Topology
	var err error
	switch os.Getenv(helperEnv) {
	case "count":
		topo, err = buildCountTopology(env("IN"), env("OUT"))
	case "payments": // app_eos_kill_test.go
		topo, err = buildPaymentsTopology(env("IN"), env("OUT"), 0)
	case "wincount": // app_window_kill_test.go
		topo, err = buildWindowKillTopology(env("IN"), env("OUT"))
	case "authcapture": // app_join_stream_kill_test.go
		topo, err = buildAuthCaptureTopology(env("IN"), env("TABLE"), env("OUT"))
	case "globaljoin": // app_global_kill_test.go
		topo, err = buildGlobalKillTopology(env("IN"), env("TABLE"), env("OUT"))
	default:
		err = fmt.Errorf("unknown helper app %q", os.Getenv(helperEnv))
	}
	if err != nil {
		log.Error("helper: build", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	guarantee := topology.AtLeastOnce
	if env("GUARANTEE") == "exactly-once" {
		guarantee = topology.ExactlyOnce
	}
	commitInterval := 200 * time.Millisecond
	if ms, err := strconv.Atoi(env("COMMIT_MS")); err == nil {
		commitInterval = time.Duration(ms) * time.Millisecond
	}
	standbys, _ := strconv.Atoi(env("STANDBYS"))
	app, err := topology.NewApp(topo, topology.Config{
		ApplicationID: env("APP_ID"), Brokers: strings.Split(env("BROKERS"), ","),
		StateDir: env("STATE_DIR"), CommitInterval: commitInterval, Logger: log, Guarantee: guarantee,
		QueryEndpoint: env("ENDPOINT"), ClientID: env("CLIENT_ID"), NumStandbyReplicas: standbys,
		GroupInstanceID: env("INSTANCE_ID"), EagerRebalancing: env("EAGER") == "1",
		RestoreListener: func(p store.RestoreProgress) {
			if p.Restored == p.Total {
				// app_failover_kill_test.go reads these.
				log.Info("helper: restore done", "store", p.Store, "partition", p.Partition, "records", p.Records)
			}
		},
		ConfigureSarama: func(c *sarama.Config) {
			// Notice a killed member quickly.
			c.Consumer.Group.Session.Timeout = 6 * time.Second
			c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
			c.Consumer.Group.Rebalance.Timeout = 10 * time.Second
		},
	})
	if err != nil {
		log.Error("helper: new app", "err", err)
		return 2
	}
	if err := app.Run(ctx); err != nil {
		log.Error("helper: run", "err", err)
		return 1
	}
	log.Info("helper: stopped cleanly", "restored", fmt.Sprint(app.RestoredRecords()))
	return 0
}

func buildCountTopology(in, out string) (*topology.Topology, error) {
	b := topology.New()
	src := topology.Source(b, "in", in, serde.String(), serde.String())
	topology.KeyValueStore(b, "counts", serde.String(), serde.Int64())
	counts := topology.Process(b, "count", src, newCounter, topology.WithStores("counts"))
	topology.Sink(b, "out", out, counts, serde.String(), serde.Int64())
	return b.Build()
}

// instance is an application instance in its own OS process.
type instance struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

func startInstance(t *testing.T, name, app string, vars map[string]string) *instance {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+app)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, "BROOK_HELPER_"+k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = f, f
	// The child dies with the test process, so a failed test leaves no
	// instance behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &instance{name: name, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { in.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-in.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- log of %s ---\n%s", name, tail(string(b), 40))
		}
	})
	return in
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop ends the instance with SIGTERM and waits for a clean exit.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.done:
		in.done <- err
		if err != nil {
			b, _ := os.ReadFile(in.log)
			t.Fatalf("%s exited with %v\n%s", in.name, err, tail(string(b), 30))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not stop within 60s of SIGTERM", in.name)
	}
}

func (in *instance) kill(t *testing.T) {
	t.Helper()
	if err := in.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-in.done
	in.done <- err
}

// TestAppKillInstanceMovesTasksWithState runs three instances of a
// counting application in separate OS processes over a 6-partition topic,
// kills one with SIGKILL while input flows, and checks that its tasks move
// with their state: every key's final count is at least the number of
// its input records (at-least-once), and the duplicates are reported.
func TestAppKillInstanceMovesTasksWithState(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 6, nil)
	b.CreateTopic(t, out, 6, nil)
	appID := testutil.TopicName(t, "app")
	var insts []*instance
	for i := 0; i < 3; i++ {
		insts = append(insts, startInstance(t, fmt.Sprintf("instance-%d", i), "count", map[string]string{
			"IN": in, "OUT": out, "APP_ID": appID, "BROKERS": strings.Join(b.Addrs(), ","),
			"STATE_DIR": t.TempDir(), "ENDPOINT": fmt.Sprintf("127.0.0.1:%d", 18100+i),
		}))
	}
	const keys, rounds = 30, 60
	round := func(r int) {
		var msgs []*sarama.ProducerMessage
		for k := 0; k < keys; k++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Key: sarama.StringEncoder(fmt.Sprintf("key-%02d", k)), Value: sarama.StringEncoder(fmt.Sprint(r)),
				Partition: int32(k % 6),
			})
		}
		b.Produce(t, in, msgs...)
	}
	for r := 0; r < 20; r++ {
		round(r)
	}
	waitCounts(t, b, out, keys, 20, 90*time.Second)
	for r := 20; r < 30; r++ {
		round(r)
		time.Sleep(20 * time.Millisecond)
	}
	insts[1].kill(t)
	t.Logf("killed %s with SIGKILL after %d rounds", insts[1].name, 30)
	for r := 30; r < rounds; r++ {
		round(r)
		time.Sleep(20 * time.Millisecond)
	}
	got := waitCounts(t, b, out, keys, rounds, 120*time.Second)
	insts[0].stop(t)
	insts[2].stop(t)
	dups := 0
	for k, v := range got {
		if v < rounds {
			t.Errorf("key %s counted %d, want >= %d", k, v, rounds)
		}
		dups += int(v - rounds)
	}
	t.Logf("every key counted at least %d times; at-least-once duplicates after the kill: %d of %d records", rounds, dups, keys*rounds)
}
