package topology_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// streamTimeProbe reports, for every record, the task's stream time (and
// the one it had in Init), relative to t0, and forwards a "punct" record
// whenever its one-minute stream-time punctuator fires.
type streamTimeProbe struct {
	t0, init time.Time
	inst     string
	ctx      processor.Context[string, string]
}

func (p *streamTimeProbe) rel(ts time.Time) string {
	if ts.IsZero() {
		return "none"
	}
	return fmt.Sprintf("%+ds", ts.Sub(p.t0)/time.Second)
}

func (p *streamTimeProbe) Init(ctx processor.Context[string, string]) error {
	p.ctx, p.init = ctx, ctx.StreamTime()
	_, err := ctx.Schedule(time.Minute, processor.StreamTime, func(ts time.Time) error {
		return ctx.Forward(processor.Record[string, string]{Key: "punct", Value: "punct " + p.rel(ts), Timestamp: ts})
	})
	return err
}

func (p *streamTimeProbe) Process(ctx processor.Context[string, string], r processor.Record[string, string]) error {
	md, _ := ctx.RecordMetadata()
	v := fmt.Sprintf("%s p%d st=%s init=%s inst=%s", r.Value, md.Partition, p.rel(ctx.StreamTime()), p.rel(p.init), p.inst)
	return ctx.Forward(processor.Revalue(r, v))
}

func (p *streamTimeProbe) Close() error { return nil }

func streamTimeTopology(t testing.TB, in, out, inst string, t0 time.Time) *topology.Topology {
	t.Helper()
	b := topology.New()
	src := topology.Source(b, "in", in, serde.String(), serde.String())
	p := topology.Process(b, "probe", src, func() processor.Processor[string, string, string, string] {
		return &streamTimeProbe{t0: t0, inst: inst}
	})
	topology.Sink(b, "out", out, p, serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// timedMsg is a record for partition p with value v at t0+at.
func timedMsg(p int32, v string, t0 time.Time, at time.Duration) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(v), Partition: p, Timestamp: t0.Add(at)}
}

// waitOutputs reads out (read_committed) until a record starting with
// each of markers is there, and returns every value.
func waitOutputs(t *testing.T, b *testutil.Broker, out string, timeout time.Duration, markers ...string) []string {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		var got []string
		for _, m := range b.ConsumeAllCommitted(t, out) {
			got = append(got, string(m.Value))
		}
		missing := false
		for _, mk := range markers {
			if !slices.ContainsFunc(got, func(v string) bool { return strings.HasPrefix(v, mk+" ") }) {
				missing = true
			}
		}
		if !missing {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("outputs %q, want records for %q", got, markers)
		}
	}
}

// committedMetadata is the metadata the group committed with its offset of
// topic/partition.
func committedMetadata(t *testing.T, b *testutil.Broker, group, topic string, partition int32) string {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {partition}})
	if err != nil {
		t.Fatal(err)
	}
	blk := resp.GetBlock(topic, partition)
	if blk == nil {
		t.Fatalf("no committed offset of %s[%d]", topic, partition)
	}
	return blk.Metadata
}

// TestAppStreamTimeSurvivesRestart: an App commits its task's stream time
// with the offsets; after a restart the task resumes from it before any
// record (Init sees it, an older record does not move it back), and its
// stream-time punctuator is next due one interval after it instead of
// firing at the first record. Under both guarantees.
func TestAppStreamTimeSurvivesRestart(t *testing.T) {
	t.Run("AtLeastOnce", func(t *testing.T) { streamTimeRestart(t, topology.AtLeastOnce) })
	t.Run("ExactlyOnce", func(t *testing.T) { streamTimeRestart(t, topology.ExactlyOnce) })
}

func streamTimeRestart(t *testing.T, g topology.Guarantee) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	appID, dir := testutil.TopicName(t, "app"), t.TempDir()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	run := func(markers ...string) []string {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, done := startApp(t, ctx, streamTimeTopology(t, in, out, "a", t0), topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, Guarantee: g,
			CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
		})
		got := waitOutputs(t, b, out, 60*time.Second, markers...)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		return got
	}
	b.Produce(t, in, timedMsg(0, "a", t0, 0), timedMsg(0, "b", t0, 30*time.Second), timedMsg(0, "end1", t0, 20*time.Second))
	got := run("end1")
	want := []string{
		"a p0 st=+0s init=none inst=a", "punct +0s", // the first record starts stream time
		"b p0 st=+30s init=none inst=a",
		"end1 p0 st=+30s init=none inst=a",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("first run: outputs\n%q\nwant\n%q", got, want)
	}
	if meta, want := committedMetadata(t, b, appID, in, 0), fmt.Sprintf("brook:v1:%d", t0.Add(30*time.Second).UnixMilli()); meta != want {
		t.Errorf("committed metadata %q, want %q", meta, want)
	}

	b.Produce(t, in, timedMsg(0, "c", t0, 10*time.Second), timedMsg(0, "d", t0, 40*time.Second),
		timedMsg(0, "e", t0, 90*time.Second), timedMsg(0, "end2", t0, 95*time.Second))
	got = run("end2")[len(want):]
	want = []string{
		"c p0 st=+30s init=+30s inst=a", // not +10s: stream time came back
		"d p0 st=+40s init=+30s inst=a", // no punctuation: next due at +90s
		"e p0 st=+90s init=+30s inst=a", "punct +90s",
		"end2 p0 st=+95s init=+30s inst=a",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after the restart: outputs\n%q\nwant\n%q", got, want)
	}
}

// TestAppStreamTimeMovesWithPartition: when a second instance joins and a
// task moves to it, the task resumes there from the stream time its first
// owner committed. The task that stays is not reopened under the
// cooperative protocol (its processors keep the state of their first
// Init: no stream time then); under the eager one it is reopened by the
// rebalance and resumes from its committed stream time too. Neither
// fires its stream-time punctuator at its first record.
func TestAppStreamTimeMovesWithPartition(t *testing.T) {
	t.Run("AtLeastOnce", func(t *testing.T) { streamTimeMove(t, topology.AtLeastOnce, false) })
	t.Run("ExactlyOnce", func(t *testing.T) { streamTimeMove(t, topology.ExactlyOnce, false) })
	t.Run("Eager", func(t *testing.T) { streamTimeMove(t, topology.ExactlyOnce, true) })
}

func streamTimeMove(t *testing.T, g topology.Guarantee, eager bool) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 1, nil)
	appID := testutil.TopicName(t, "app")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	cfg := func(running chan<- struct{}) topology.Config {
		return topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), Guarantee: g,
			CommitInterval: 100 * time.Millisecond, Logger: testLogger(t), EagerRebalancing: eager,
			StateListener: func(_, to topology.State) {
				if to == topology.StateRunning && running != nil {
					select {
					case running <- struct{}{}:
					default:
					}
				}
			},
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, doneA := startApp(t, ctx, streamTimeTopology(t, in, out, "A", t0), cfg(nil))
	b.Produce(t, in, timedMsg(0, "x0", t0, 30*time.Second), timedMsg(1, "x1", t0, 50*time.Second))
	waitOutputs(t, b, out, 60*time.Second, "x0", "x1")
	waitCommitted(t, b, appID, in, 0, 1, 30*time.Second)
	waitCommitted(t, b, appID, in, 1, 1, 30*time.Second)

	running := make(chan struct{}, 1)
	appB, doneB := startApp(t, ctx, streamTimeTopology(t, in, out, "B", t0), cfg(running))
	select {
	case <-running:
	case err := <-doneB:
		t.Fatalf("B stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("B did not reach Running")
	}
	// Under the cooperative protocol B may be running with no task yet:
	// the task moves in the follow-up rebalance.
	for deadline := time.Now().Add(60 * time.Second); len(appB.RestoredRecords()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no task opened on B within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Produce(t, in, timedMsg(0, "y0", t0, 0), timedMsg(1, "y1", t0, 0))
	got := waitOutputs(t, b, out, 60*time.Second, "y0", "y1")
	cancel()
	for _, d := range []<-chan error{doneA, doneB} {
		if err := <-d; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	var after []string
	insts := map[string]bool{}
	for _, v := range got {
		if strings.HasPrefix(v, "y") {
			inst := v[strings.LastIndex(v, "=")+1:]
			v = v[:strings.LastIndex(v, " inst=")]
			if inst == "A" && !eager {
				// The task that stayed was never reopened.
				v = strings.Replace(v, "init=none", "init=kept", 1)
			}
			after = append(after, v)
			insts[inst] = true
		}
	}
	slices.Sort(after)
	want := []string{"y0 p0 st=+30s init=+30s", "y1 p1 st=+50s init=+50s"}
	if !eager {
		// Which task moves is the assignor's choice.
		want0 := []string{"y0 p0 st=+30s init=+30s", "y1 p1 st=+50s init=kept"}
		want1 := []string{"y0 p0 st=+30s init=kept", "y1 p1 st=+50s init=+50s"}
		if slices.Equal(after, want1) {
			want = want1
		} else {
			want = want0
		}
	}
	if !slices.Equal(after, want) {
		t.Fatalf("after the rebalance: outputs %q (all: %q), want %q", after, got, want)
	}
	if slices.Contains(got, "punct +0s") {
		t.Fatalf("a stream-time punctuator fired at the first record after the rebalance: %q", got)
	}
	if len(insts) != 2 {
		t.Fatalf("after the rebalance one instance processed both partitions (%v): no task moved; outputs %q", insts, got)
	}
}

// TestAppStreamTimeForeignMetadata: offsets another client committed with
// metadata of its own are resumed from as usual, with the stream time
// unknown until the first record.
func TestAppStreamTimeForeignMetadata(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	appID := testutil.TopicName(t, "app")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	b.Produce(t, in, timedMsg(0, "skipped", t0, time.Minute))

	client, err := sarama.NewClient(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// A simple (group-less) consumer's commit, as a tool resetting offsets
	// would make.
	coord, err := client.Coordinator(appID)
	if err != nil {
		t.Fatal(err)
	}
	req := &sarama.OffsetCommitRequest{Version: 2, ConsumerGroup: appID, ConsumerGroupGeneration: -1, RetentionTime: -1}
	req.AddBlock(in, 0, 1, 0, "AQAAAZOMRIRA")
	resp, err := coord.CommitOffset(req)
	if err != nil {
		t.Fatal(err)
	}
	if kerr := resp.Errors[in][0]; kerr != sarama.ErrNoError {
		t.Fatalf("set-up commit: %v", kerr)
	}
	if meta := committedMetadata(t, b, appID, in, 0); meta != "AQAAAZOMRIRA" {
		t.Fatalf("set-up: committed metadata %q", meta)
	}

	b.Produce(t, in, timedMsg(0, "a", t0, 10*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, done := startApp(t, ctx, streamTimeTopology(t, in, out, "a", t0), topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
		CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
	})
	got := waitOutputs(t, b, out, 60*time.Second, "a")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if want := []string{"a p0 st=+10s init=none inst=a", "punct +10s"}; !slices.Equal(got, want) {
		t.Fatalf("outputs %q, want %q", got, want)
	}
	if meta, want := committedMetadata(t, b, appID, in, 0), fmt.Sprintf("brook:v1:%d", t0.Add(10*time.Second).UnixMilli()); meta != want {
		t.Fatalf("committed metadata %q, want %q", meta, want)
	}
}
