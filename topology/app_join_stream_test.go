package topology_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// TestAppAuthCaptureJoinEOS matches authorisations with captures within
// 10 minutes after them (grace 1 minute) by a left stream–stream join on
// a broker under exactly-once, over 3 co-partitioned partitions. The
// first run sees the records before 400 s and stops; the second starts on
// an empty state directory, so the join's window stores and pending
// records come back from their changelogs, and sees the rest: captures
// of authorisations buffered in the first run, duplicates, captures
// exactly at the window's end and 1 ms past it, and authorisations never
// captured, which come out unmatched when their windows close. Every
// output is compared with a reference computed from the input: no
// missing, duplicate or wrong result.
func TestAppAuthCaptureJoinEOS(t *testing.T) {
	b := eosBroker(t)
	auths, caps, out := testutil.TopicName(t, "auths"), testutil.TopicName(t, "caps"), testutil.TopicName(t, "matched")
	for _, topic := range []string{auths, caps, out} {
		b.CreateTopic(t, topic, 3, nil)
	}
	appID := testutil.TopicName(t, "app")
	base := (time.Now().Add(-3*time.Hour).UnixMilli() / 1000) * 1000
	const window, grace = 10 * time.Minute, time.Minute

	type rec struct {
		id, value string
		ms        int64 // offset from base
	}
	var authRecs, capRecs []rec
	for i := range 30 {
		id := fmt.Sprintf("auth-%02d", i)
		ta := int64(i) * 20_000
		authRecs = append(authRecs, rec{id, "A" + id[5:], ta})
		switch i % 5 {
		case 0:
			capRecs = append(capRecs, rec{id, "C" + id[5:], ta + 30_000})
		case 1: // exactly at the window's end
			capRecs = append(capRecs, rec{id, "C" + id[5:], ta + window.Milliseconds()})
		case 2: // never captured
		case 3: // 1 ms past the window: no match, the authorisation is unmatched
			capRecs = append(capRecs, rec{id, "C" + id[5:], ta + window.Milliseconds() + 1})
		case 4: // two captures at one time
			capRecs = append(capRecs, rec{id, "C" + id[5:], ta + 10_000}, rec{id, "D" + id[5:], ta + 10_000})
		}
	}
	// The reference: each authorisation joined with every capture in
	// [t, t+10m], or unmatched at its own time.
	var want []string
	matchedBefore := map[string]int{} // results with both records before the split
	const split = 400_000
	for _, a := range authRecs {
		found := false
		for _, c := range capRecs {
			if c.id == a.id && c.ms >= a.ms && c.ms <= a.ms+window.Milliseconds() {
				found = true
				r := fmt.Sprintf("%s:%s+%s@%d", a.id, a.value, c.value, max(a.ms, c.ms))
				want = append(want, r)
				if c.ms < split {
					matchedBefore[r]++
				}
			}
		}
		if !found {
			want = append(want, fmt.Sprintf("%s:%s+-@%d", a.id, a.value, a.ms))
		}
	}
	slices.Sort(want)

	part := func(id string) int32 {
		p, err := partition.ForKey([]byte(id), 3)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	produce := func(topic string, rs []rec, from, to int64) {
		slices.SortStableFunc(rs, func(x, y rec) int { return int(x.ms - y.ms) })
		var msgs []*sarama.ProducerMessage
		for _, r := range rs {
			if r.ms >= from && r.ms < to {
				msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(r.id), Value: sarama.StringEncoder(r.value),
					Partition: part(r.id), Timestamp: time.UnixMilli(base + r.ms)})
			}
		}
		b.Produce(t, topic, msgs...)
	}
	readOut := func() []string {
		var got []string
		for _, m := range b.ConsumeAllCommitted(t, out) {
			got = append(got, fmt.Sprintf("%s:%s@%d", m.Key, m.Value, m.Timestamp.UnixMilli()-base))
		}
		slices.Sort(got)
		return got
	}
	topo := func() *topology.Topology {
		bld := topology.New()
		a := topology.Stream(bld, "auths", auths, serde.String(), serde.String())
		c := topology.Stream(bld, "caps", caps, serde.String(), serde.String())
		topology.LeftJoinStreams(a, c, "match", topology.JoinWindow(0).After(window).Grace(grace),
			func(_ string, av, cv string, captured bool) (string, error) {
				if !captured {
					cv = "-"
				}
				return av + "+" + cv, nil
			}).To("out", out, serde.String(), serde.String())
		tp, err := bld.Build()
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	run := func(done func([]string) bool) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cfg := eosConfig(t, b, appID, t.TempDir())
		// Records are merged across partitions by timestamp; give a slow
		// fetch time so that none is processed out of order (late).
		cfg.MaxTaskIdle = 2 * time.Second
		_, stopped := startApp(t, ctx, topo(), cfg)
		deadline := time.Now().Add(90 * time.Second)
		for got := readOut(); !done(got); got = readOut() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out; results so far:\n%s", strings.Join(got, "\n"))
			}
			time.Sleep(200 * time.Millisecond)
		}
		cancel()
		if err := <-stopped; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}

	produce(auths, authRecs, 0, split)
	produce(caps, capRecs, 0, split)
	var firstWant []string
	for r, n := range matchedBefore {
		for range n {
			firstWant = append(firstWant, r)
		}
	}
	slices.Sort(firstWant)
	run(func(got []string) bool { return len(got) >= len(firstWant) })
	if got := readOut(); !slices.Equal(got, firstWant) {
		t.Fatalf("first run results\n got %v\nwant %v", got, firstWant)
	}
	// The pending authorisations left the instance in the outer-join
	// store's changelog.
	if n := len(b.ConsumeAllCommitted(t, store.ChangelogTopic(appID, "match-outer-shared-join-store"))); n == 0 {
		t.Fatal("the outer-join store's changelog is empty after the first run")
	}

	produce(auths, authRecs, split, 1<<40)
	produce(caps, capRecs, split, 1<<40)
	// A late tick on every partition closes every authorisation's window
	// (the ticks themselves stay pending).
	var ticks []rec
	for p := range int32(3) {
		for i := 0; ; i++ {
			if id := fmt.Sprintf("tick-%d", i); part(id) == p {
				ticks = append(ticks, rec{id, "tick", 3_000_000})
				break
			}
		}
	}
	// The ticks go in once every match is out, so that no capture can be
	// merged after them (and be late).
	matches := 0
	for _, w := range want {
		if !strings.Contains(w, "+-@") {
			matches++
		}
	}
	ticked := false
	run(func(got []string) bool {
		n := 0
		for _, g := range got {
			if !strings.Contains(g, "+-@") {
				n++
			}
		}
		if !ticked && n >= matches {
			produce(auths, ticks, 0, 1<<40)
			ticked = true
		}
		return ticked && len(got) >= len(want)
	})
	if got := readOut(); !slices.Equal(got, want) {
		t.Fatalf("results\n got %v\nwant %v", got, want)
	}
}

// TestAppStreamJoinCoPartitionCheck: the inputs of a stream–stream join
// share its stores, so they are one co-partition group; Run refuses topics
// of different partition counts, naming both topics and counts.
func TestAppStreamJoinCoPartitionCheck(t *testing.T) {
	b := testutil.NewBroker(t)
	auths, caps, out := testutil.TopicName(t, "auths"), testutil.TopicName(t, "caps"), testutil.TopicName(t, "out")
	b.CreateTopic(t, auths, 3, nil)
	b.CreateTopic(t, caps, 2, nil)
	b.CreateTopic(t, out, 1, nil)
	bld := topology.New()
	a := topology.Stream(bld, "auths", auths, serde.String(), serde.String())
	c := topology.Stream(bld, "caps", caps, serde.String(), serde.String())
	topology.JoinStreams(a, c, "match", topology.JoinWindow(time.Minute), func(_ string, av, cv string) (string, error) { return av + cv, nil }).
		To("out", out, serde.String(), serde.String())
	topo, err := bld.Build()
	if err != nil {
		t.Fatal(err)
	}
	app, err := topology.NewApp(topo, topology.Config{
		ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = app.Run(context.Background())
	var cp *topology.CoPartitionError
	if !errors.As(err, &cp) || !containsAll(err.Error(), auths, caps, "3", "2") {
		t.Fatalf("Run returned %v, want a CoPartitionError naming %s (3) and %s (2)", err, auths, caps)
	}
}
