package topology_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// dedupTopology reads "id|payload" values from in and removes duplicate
// ids within ttl; with split, duplicates go to dups.
func dedupTopology(t testing.TB, in, out, dups string, ttl time.Duration) *topology.Topology {
	t.Helper()
	b := topology.New()
	s := topology.Stream(b, "in", in, serde.String(), serde.String())
	id := func(_ string, v string) string { return strings.SplitN(v, "|", 2)[0] }
	if dups == "" {
		s.DropDuplicates("dedup", id, ttl).To("out", out, serde.String(), serde.String())
	} else {
		u, d := s.Deduplicate("dedup", id, ttl)
		u.To("out", out, serde.String(), serde.String())
		d.To("dups", dups, serde.String(), serde.String())
	}
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func values(t *testing.T, o *testutil.OutputTopic[string, string]) []string {
	t.Helper()
	recs, err := o.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, r := range recs {
		vs = append(vs, r.Value)
	}
	return vs
}

// TestDropDuplicatesTTLBoundary: with ttl 1s, a duplicate 1ms before
// first+ttl is dropped, one at exactly first+ttl passes and becomes the new
// first occurrence.
func TestDropDuplicatesTTLBoundary(t *testing.T) {
	d, err := testutil.NewTestDriver(dedupTopology(t, "in", "out", "", time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "in", serde.String(), serde.String())
	out := testutil.NewOutputTopic(d, "out", serde.String(), serde.String())
	t0 := time.UnixMilli(10_000)
	pipe := func(v string, at time.Time) {
		t.Helper()
		if err := in.Pipe("k", v, at); err != nil {
			t.Fatal(err)
		}
	}
	pipe("a|1", t0)
	pipe("a|2", t0.Add(time.Second-time.Millisecond)) // dropped
	pipe("a|3", t0.Add(time.Second))                  // expired: passes
	pipe("a|4", t0.Add(2*time.Second-time.Millisecond))
	pipe("a|5", t0.Add(2*time.Second))
	if got := fmt.Sprint(values(t, out)); got != "[a|1 a|3 a|5]" {
		t.Fatalf("passed %s, want [a|1 a|3 a|5]", got)
	}
}

// TestDropDuplicatesOutOfOrder: ids are judged against stream time; a late
// record of a remembered id is dropped, a record too late to be remembered
// passes (and so does its copy).
func TestDropDuplicatesOutOfOrder(t *testing.T) {
	d, err := testutil.NewTestDriver(dedupTopology(t, "in", "out", "", time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "in", serde.String(), serde.String())
	out := testutil.NewOutputTopic(d, "out", serde.String(), serde.String())
	t0 := time.UnixMilli(10_000)
	for _, p := range []struct {
		v  string
		at time.Time
	}{
		{"a|1", t0},
		{"b|1", t0.Add(-500 * time.Millisecond)}, // late, remembered until t0+500ms
		{"a|2", t0.Add(-900 * time.Millisecond)}, // earlier than a's first: duplicate
		{"b|2", t0.Add(100 * time.Millisecond)},  // duplicate
		{"b|3", t0.Add(500 * time.Millisecond)},  // b expired at t0+500ms: passes
		{"c|1", t0.Add(-600 * time.Millisecond)}, // ttl behind stream time: passes, not remembered
		{"c|2", t0.Add(-600 * time.Millisecond)}, // so its copy passes too
		{"a|3", t0.Add(999 * time.Millisecond)},  // duplicate
	} {
		if err := in.Pipe("k", p.v, p.at); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(values(t, out)); got != "[a|1 b|1 b|3 c|1 c|2]" {
		t.Fatalf("passed %s, want [a|1 b|1 b|3 c|1 c|2]", got)
	}
	// Expired ids are gone from the store, not just hidden.
	s, err := testutil.KeyValueStore[string, int64](d, "dedup-store")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.ApproximateCount(); err != nil || n != 2 {
		t.Fatalf("store holds %d ids (%v), want 2 (a, b; c never stored)", n, err)
	}
}

// TestDeduplicateSideStream: duplicates go to their own stream with headers
// saying why; the store is "<name>-store".
func TestDeduplicateSideStream(t *testing.T) {
	topo := dedupTopology(t, "in", "out", "dups", time.Minute)
	if desc := topo.Describe(); !containsAll(desc, "dedup-store: ttl[string, int64]", "dedup-unique", "dedup-duplicates") {
		t.Fatalf("Describe:\n%s", desc)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "in", serde.String(), serde.String())
	out := testutil.NewOutputTopic(d, "out", serde.String(), serde.String())
	dups := testutil.NewOutputTopic(d, "dups", serde.String(), serde.String())
	t0 := time.UnixMilli(5_000)
	if err := in.Pipe("k", "x|1", t0, processor.Header{Key: "trace", Value: []byte("t1")}); err != nil {
		t.Fatal(err)
	}
	if err := in.Pipe("k", "x|2", t0.Add(time.Second), processor.Header{Key: "trace", Value: []byte("t2")}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(values(t, out)); got != "[x|1]" {
		t.Fatalf("unique %s", got)
	}
	recs, err := dups.ReadRecords()
	if err != nil || len(recs) != 1 {
		t.Fatalf("duplicates %v, %v; want one", recs, err)
	}
	h := recs[0].Headers
	for k, want := range map[string]string{"trace": "t2", topology.DedupReasonHeader: "duplicate", topology.DedupIDHeader: "x", topology.DedupFirstSeenHeader: "5000"} {
		if v, ok := h.Get(k); !ok || string(v) != want {
			t.Errorf("header %s = %q (%v), want %q", k, v, ok, want)
		}
	}
	if recs[0].Value != "x|2" || !recs[0].Timestamp.Equal(t0.Add(time.Second)) {
		t.Errorf("duplicate record %+v", recs[0])
	}
}

func TestDropDuplicatesEmptyIDIsAnError(t *testing.T) {
	d, err := testutil.NewTestDriver(dedupTopology(t, "in", "out", "", time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = testutil.NewInputTopic(d, "in", serde.String(), serde.String()).Pipe("k", "|no id", time.UnixMilli(1))
	if err == nil || !containsAll(err.Error(), "dedup", "empty id", "in[0]@") {
		t.Fatalf("Pipe = %v, want an empty-id error naming the record", err)
	}
}

func TestDropDuplicatesBuildProblems(t *testing.T) {
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.String(), serde.String())
	s.DropDuplicates("d1", nil, time.Minute)
	s.DropDuplicates("d2", func(string, string) string { return "x" }, 0)
	_, err := b.Build()
	if err == nil || !containsAll(err.Error(), "d1", "nil", "d2-store", "TTL") {
		t.Fatalf("Build = %v", err)
	}
}

// TestAppDropDuplicatesAfterRestartEOS: under exactly-once, a duplicate
// produced after a restart (on an empty state directory, so the ids come
// back from the changelog) is still dropped.
func TestAppDropDuplicatesAfterRestartEOS(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	appID := testutil.TopicName(t, "app")
	t0 := time.Now().Truncate(time.Millisecond)
	produce := func(key, v string, at time.Time) {
		b.Produce(t, in, &sarama.ProducerMessage{Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(v), Timestamp: at})
	}
	readOut := func() []string {
		var got []string
		for _, m := range b.ConsumeAllCommitted(t, out) {
			got = append(got, string(m.Value))
		}
		return got
	}
	run := func(wantOutputs int, marker string) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, done := startApp(t, ctx, dedupTopology(t, in, out, "", time.Hour), topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			Guarantee: topology.ExactlyOnce, CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
		})
		deadline := time.Now().Add(60 * time.Second)
		for {
			got := readOut()
			if len(got) >= wantOutputs && strings.Contains(fmt.Sprint(got), marker) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("outputs %v, want %d with %s", got, wantOutputs, marker)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	produce("k1", "a|1", t0)
	produce("k1", "a|2", t0.Add(time.Second))
	produce("k1", "end1|x", t0.Add(2*time.Second))
	run(2, "end1")
	produce("k1", "a|3", t0.Add(3*time.Second))
	produce("k1", "end1|y", t0.Add(4*time.Second))
	produce("k1", "end2|x", t0.Add(5*time.Second))
	run(3, "end2")
	if got := fmt.Sprint(readOut()); got != "[a|1 end1|x end2|x]" {
		t.Fatalf("outputs %s, want [a|1 end1|x end2|x]", got)
	}
}
