package topology_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// TestAppWindowFinalsAfterRestartEOS runs the windowed count with emit
// final on a broker under exactly-once, stops it before any window has
// closed, and restarts it on an empty state directory: the window store
// and the suppression buffer come back from their changelogs, so the
// finals count the records of both runs, a window that got no record
// after the restart still gets its final, and every final appears once.
func TestAppWindowFinalsAfterRestartEOS(t *testing.T) {
	b := eosBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "finals")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	appID := testutil.TopicName(t, "app")
	// Windows of 5 minutes aligned to the epoch, an hour ago (inside the
	// changelog retention of 6 minutes + 1 day).
	five := (5 * time.Minute).Milliseconds()
	w0 := (time.Now().Add(-time.Hour).UnixMilli() / five) * five
	at := func(d time.Duration) time.Time { return time.UnixMilli(w0 + d.Milliseconds()) }
	produce := func(key string, ts time.Time) {
		b.Produce(t, in, &sarama.ProducerMessage{Key: sarama.StringEncoder(key), Value: sarama.StringEncoder("x"), Timestamp: ts})
	}
	readOut := func() []string {
		var got []string
		ws := topology.WindowedSerde(serde.String())
		for _, m := range b.ConsumeAllCommitted(t, out) {
			k, err := ws.Deserialize(out, m.Key)
			if err != nil {
				t.Fatal(err)
			}
			n, err := serde.Int64().Deserialize(out, m.Value)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s@%d-%d=%d@%d", k.Key, (k.Start.UnixMilli()-w0)/1000, (k.End.UnixMilli()-w0)/1000, n,
				(m.Timestamp.UnixMilli()-w0)/1000))
		}
		return got
	}
	// The changelogs are the proof that state left the instance: the
	// latest count of each window in the window store's changelog, and
	// the number of windows the suppression buffer's changelog holds.
	counts := func() string {
		latest := map[string]int64{}
		vs := topology.ValueAndTimestampSerde(serde.Int64())
		for _, m := range b.ConsumeAllCommitted(t, store.ChangelogTopic(appID, "counts")) {
			k, start, err := store.DecodeWindowKey(m.Key)
			if err != nil {
				t.Fatal(err)
			}
			v, err := vs.Deserialize("", m.Value)
			if err != nil {
				t.Fatal(err)
			}
			latest[fmt.Sprintf("%s@%d", k, (start-w0)/1000)] = v.Value
		}
		return fmt.Sprint(latest)
	}
	buffered := func() int {
		keys := map[string]bool{}
		for _, m := range b.ConsumeAllCommitted(t, store.ChangelogTopic(appID, "finals")) {
			keys[string(m.Key)] = m.Value != nil
		}
		n := 0
		for _, live := range keys {
			if live {
				n++
			}
		}
		return n
	}
	run := func(done func() bool) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, stopped := startApp(t, ctx, finalCountTopology(t, in, out), eosConfig(t, b, appID, t.TempDir()))
		deadline := time.Now().Add(60 * time.Second)
		for !done() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out; finals %v; window store changelog %s, %d windows in the buffer changelog", readOut(), counts(), buffered())
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		if err := <-stopped; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}

	produce("a", at(10*time.Second))
	produce("b", at(20*time.Second))
	produce("a", at(30*time.Second))
	produce("a", at(4*time.Minute))
	produce("b", at(4*time.Minute+time.Second))
	produce("a", at(5*time.Minute+30*time.Second)) // window [5m,10m); [0,5m) closes at 6m
	run(func() bool { return counts() == "map[a@0:3 a@300:1 b@0:2]" && buffered() == 3 })
	if got := readOut(); len(got) != 0 {
		t.Fatalf("finals %v before any window closed", got)
	}

	produce("a", at(3*time.Minute))                 // within grace of [0,5m): a=4
	produce("c", at(6*time.Minute))                 // stream time end+grace: [0,5m) closes
	produce("a", at(time.Minute))                   // late: dropped
	produce("z", at(20*time.Minute))                // closes [5m,10m)
	produce("y", at(20*time.Minute+time.Second))    // marker after the finals
	run(func() bool { return len(readOut()) >= 4 }) // a@0, b@0, a@5m, c@5m
	got := readOut()
	slices.Sort(got)
	want := []string{"a@0-300=4@240", "a@300-600=1@330", "b@0-300=2@241", "c@300-600=1@360"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("finals %v, want %v", got, want)
	}
	if n := buffered(); n != 2 {
		t.Fatalf("the buffer changelog holds %d pending windows, want 2 (z and y; the emitted ones tombstoned)", n)
	}

	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for name, want := range map[string]map[string]string{
		"counts": {"cleanup.policy": "compact,delete", "retention.ms": strconv.FormatInt((6*time.Minute + topology.WindowChangelogExtraRetention).Milliseconds(), 10)},
		"finals": {"cleanup.policy": "compact"},
	} {
		topic := store.ChangelogTopic(appID, name)
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"cleanup.policy", "retention.ms"}})
		if err != nil {
			t.Fatal(err)
		}
		cfg := map[string]string{}
		for _, e := range entries {
			cfg[e.Name] = e.Value
		}
		for k, v := range want {
			if cfg[k] != v {
				t.Errorf("changelog %s: %s=%q, want %q", topic, k, cfg[k], v)
			}
		}
	}
}
