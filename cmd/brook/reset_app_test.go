package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// event is one input record: a card payment at a merchant. The input is
// keyed by merchant.
type event struct {
	merchant, card string
	partition      int32
	ts             time.Time
}

// resetTopology counts payments per merchant and hour (a tumbling window
// store, no grace: a record of a window that stream time has passed is
// dropped as late) and per card (re-keyed through the repartition topic
// "<app>-by-card-repartition" into the key-value store "card-counts").
// Every count update goes to the output topics: "<merchant>@<window start
// ms>" → count, and card → count.
func resetTopology(t *testing.T, in, hoursOut, cardsOut string) *topology.Topology {
	t.Helper()
	b := topology.New()
	src := topology.Stream(b, "payments", in, serde.String(), serde.String())
	hours := topology.WindowedBy(src.GroupByKey(), topology.Tumbling(time.Hour)).Count("merchant-hours")
	topology.Map(hours.ToStream("hour-changes"), "hour-key",
		func(w topology.Windowed[string], c topology.Change[int64]) (string, int64, error) {
			return fmt.Sprintf("%s@%d", w.Key, w.Start.UnixMilli()), c.Value, nil
		}).To("hours-out", hoursOut, serde.String(), serde.Int64())
	byCard := topology.Map(src, "key-by-card", func(merchant, card string) (string, string, error) { return card, merchant, nil })
	topology.Count(byCard.GroupByKey(topology.WithRepartitionName("by-card")), "card-counts").
		ToStream("card-changes").To("cards-out", cardsOut, serde.String(), topology.ChangeSerde(serde.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// expected returns the count updates resetTopology writes for events
// processed from scratch, per output key in order: 1, 2, ..., n.
func expected(events []event) (hours, cards map[string][]int64) {
	hours, cards = map[string][]int64{}, map[string][]int64{}
	for _, e := range events {
		h := fmt.Sprintf("%s@%d", e.merchant, e.ts.Truncate(time.Hour).UnixMilli())
		hours[h] = append(hours[h], int64(len(hours[h])+1))
		cards[e.card] = append(cards[e.card], int64(len(cards[e.card])+1))
	}
	return hours, cards
}

// waitOutputs reads topic's committed count updates from offsets from
// on (the oldest when from has no partition) until they are want, per key
// in order, failing as soon as one key's updates are not a prefix of its
// wanted ones (a count that did not start from empty state, or a record
// dropped as late).
func waitOutputs(t *testing.T, b *testutil.Broker, topic string, from map[int32]int64, want map[string][]int64) {
	t.Helper()
	cfg := b.SaramaConfig()
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	client, err := sarama.NewClient(b.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *sarama.ConsumerMessage)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	defer func() {
		close(done)
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
		consumer.Close()
	}()
	for _, p := range parts {
		start, ok := from[p]
		if !ok {
			start = sarama.OffsetOldest
		}
		pc, err := consumer.ConsumePartition(topic, p, start)
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
		wg.Go(func() {
			// Until AsyncClose closes it, the channel must be drained.
			for m := range pc.Messages() {
				select {
				case msgs <- m:
				case <-done:
				}
			}
		})
	}
	got := map[string][]int64{}
	complete := 0
	timeout := time.After(90 * time.Second)
	for complete < len(want) {
		select {
		case m := <-msgs:
			if len(m.Value) != 8 {
				t.Fatalf("%s partition %d offset %d: value %x is not an int64", topic, m.Partition, m.Offset, m.Value)
			}
			k := string(m.Key)
			got[k] = append(got[k], int64(binary.BigEndian.Uint64(m.Value)))
			g, w := got[k], want[k]
			if len(g) > len(w) || !slices.Equal(g, w[:len(g)]) {
				t.Fatalf("%s: key %s has the count updates %v, want %v", topic, k, g, w)
			}
			if len(g) == len(w) {
				complete++
			}
		case <-timeout:
			t.Fatalf("%s: count updates %v, want %v", topic, got, want)
		}
	}
}

// endOffsets returns the end offset of every partition of topic.
func endOffsets(t *testing.T, b *testutil.Broker, topic string) map[int32]int64 {
	t.Helper()
	client, err := sarama.NewClient(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		if out[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// stateEntries lists the application's state folder (nil when missing).
func stateEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestResetReprocesses is the reset tool's acceptance test. It runs an
// application with a window store, a key-value store and a repartition
// topic over an input topic to completion, stops it, and resets it: the
// dry run lists the internal topics with their partition counts, every
// input partition's committed offset (with the stream time brook keeps
// in its metadata) and target offset, and the state folder, and changes
// nothing; --execute deletes the internal topics and the group's offsets
// on them, commits the target offsets with empty metadata and wipes the
// state. The application started again processes the input from the
// target with empty state: from the earliest offset it writes exactly
// the updates of the first run (1, 2, ..., n per key: the counts were not
// restored, and no record was dropped as late, so the stream time was not
// resumed either); from a time, exactly the updates of the records from
// that time on. The second case gives no --state-dir: the restarted
// instance finds its old local stores' checkpoints past the end of the
// re-created changelogs and discards them.
func TestResetReprocesses(t *testing.T) {
	// Recent times: brokers delete records older than retention.ms (7
	// days by default).
	base := time.Now().Add(-10 * time.Hour).Truncate(time.Hour)
	const records = 60
	var events []event
	for j := range records {
		m := j % 4
		events = append(events, event{
			merchant: fmt.Sprintf("m%d", m), card: fmt.Sprintf("c%d", j%5), partition: int32(m % 2),
			ts: base.Add(time.Duration(j) * 7 * time.Minute),
		})
	}
	from := events[30].ts
	for _, tc := range []struct {
		name      string
		guarantee topology.Guarantee
		target    []string // reset flags
		stateDir  bool     // give --state-dir
		keep      func(event) bool
		first     map[int32]int64 // wanted target per partition, from the events
	}{
		{name: "earliest", guarantee: topology.ExactlyOnce, stateDir: true, keep: func(event) bool { return true }},
		{name: "datetime", guarantee: topology.AtLeastOnce, target: []string{"--to-datetime", from.Format(time.RFC3339)},
			keep: func(e event) bool { return !e.ts.Before(from) }},
		{name: "timestamp", guarantee: topology.AtLeastOnce, stateDir: true, target: []string{"--to-timestamp", strconv.FormatInt(from.UnixMilli(), 10)},
			keep: func(e event) bool { return !e.ts.Before(from) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testutil.NewBroker(t)
			a := admin(t, b)
			if tc.guarantee == topology.ExactlyOnce && b.Embedded() != nil {
				// As the topology package's exactly-once tests: kfake's
				// cleaner does not compact transactional changelogs.
				hour := "3600000"
				if err := a.AlterConfig(sarama.BrokerResource, "0", map[string]*string{"log.cleaner.backoff.ms": &hour}, false); err != nil {
					t.Fatal(err)
				}
			}
			in, hoursOut, cardsOut := testutil.TopicName(t, "payments"), testutil.TopicName(t, "hours"), testutil.TopicName(t, "cards")
			b.CreateTopic(t, in, 2, nil)
			b.CreateTopic(t, hoursOut, 2, nil)
			b.CreateTopic(t, cardsOut, 2, nil)
			var msgs []*sarama.ProducerMessage
			lastTS := map[int32]time.Time{}
			perPartition := map[int32]int64{}
			for _, e := range events {
				msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(e.merchant), Value: sarama.StringEncoder(e.card),
					Partition: e.partition, Timestamp: e.ts})
				lastTS[e.partition] = e.ts
				perPartition[e.partition]++
			}
			b.Produce(t, in, msgs...)
			appID := testutil.TopicName(t, "app")
			stateDir := t.TempDir()
			topo := resetTopology(t, in, hoursOut, cardsOut)
			runApp := func(hoursFrom, cardsFrom map[int32]int64, wantHours, wantCards map[string][]int64) {
				t.Helper()
				app, err := topology.NewApp(topo, topology.Config{
					ApplicationID: appID, Brokers: b.Addrs(), StateDir: stateDir, Guarantee: tc.guarantee,
					CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
				})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				errc := make(chan error, 1)
				go func() { errc <- app.Run(ctx) }()
				defer func() {
					cancel()
					if err := <-errc; err != nil {
						t.Fatalf("Run: %v", err)
					}
				}()
				waitOutputs(t, b, hoursOut, hoursFrom, wantHours)
				waitOutputs(t, b, cardsOut, cardsFrom, wantCards)
			}
			wantHours, wantCards := expected(events)
			runApp(nil, nil, wantHours, wantCards)
			waitGroup(t, a, appID, func(state string, members int) bool { return members == 0 })

			hoursEnd, cardsEnd := endOffsets(t, b, hoursOut), endOffsets(t, b, cardsOut)
			internal := []string{appID + "-by-card-repartition", appID + "-card-counts-changelog", appID + "-merchant-hours-changelog"}
			if got := topicsWithPrefix(t, a, appID); !slices.Equal(got, internal) {
				t.Fatalf("topics of the application %v, want %v", got, internal)
			}
			before := committedOffsets(t, a, appID)
			appDir := filepath.Join(stateDir, appID)
			stateBefore := stateEntries(t, appDir)
			if !slices.Contains(stateBefore, "0_0") || !slices.Contains(stateBefore, "1_1") {
				t.Fatalf("state folder %s holds %v, want the task folders", appDir, stateBefore)
			}

			args := append([]string{"reset", "--application-id", appID, "--bootstrap-server", strings.Join(b.Addrs(), ",")}, tc.target...)
			if tc.stateDir {
				args = append(args, "--state-dir", stateDir)
			}
			// The targets the dry run must list: the first kept event of
			// each partition, counted from the partition's start.
			target := map[int32]int64{}
			for p := range int32(2) {
				target[p] = perPartition[p]
			}
			seen := map[int32]int64{}
			for _, e := range events {
				if tc.keep(e) && target[e.partition] == perPartition[e.partition] {
					target[e.partition] = seen[e.partition]
				}
				seen[e.partition]++
			}

			code, out, _ := cli(t, nil, args...)
			if code != exitOK {
				t.Fatalf("dry run: exit %d", code)
			}
			var lines []string
			for p := range int32(2) {
				c := before[in][p]
				if c.Offset != perPartition[p] || c.Metadata != "brook:v1:"+strconv.FormatInt(lastTS[p].UnixMilli(), 10) {
					t.Errorf("%s partition %d committed %d %q, want %d with the stream time of its last record (%d)",
						in, p, c.Offset, c.Metadata, perPartition[p], lastTS[p].UnixMilli())
				}
				lines = append(lines, fmt.Sprintf("%s %d %d %d %s", in, p, c.Offset, target[p], c.Metadata))
			}
			lines = append(lines, "Internal topics to delete (3):")
			for _, topic := range internal {
				lines = append(lines, topic+" 2 partitions")
			}
			for p := range int32(2) {
				lines = append(lines, fmt.Sprintf("%s %d %d internal topic, deleted", internal[0], p, before[internal[0]][p].Offset))
			}
			if tc.stateDir {
				var tasks []string
				for _, e := range stateBefore {
					if e != ".lock" {
						tasks = append(tasks, e)
					}
				}
				lines = append(lines, fmt.Sprintf("%s to wipe: %s (", appDir, strings.Join(tasks, ", ")))
			}
			wantLines(t, out, lines...)
			if !strings.Contains(out, "Dry run: nothing was changed") {
				t.Error("the dry run does not say that it changed nothing")
			}
			if got := committedOffsets(t, a, appID); !equalOffsets(got, before) {
				t.Errorf("the dry run changed the committed offsets: %v, were %v", got, before)
			}
			if got := topicsWithPrefix(t, a, appID); !slices.Equal(got, internal) {
				t.Errorf("after the dry run the application's topics are %v, want %v", got, internal)
			}
			if got := stateEntries(t, appDir); !slices.Equal(got, stateBefore) {
				t.Errorf("the dry run changed the state folder: %v, was %v", got, stateBefore)
			}

			code, out, _ = cli(t, nil, append(args, "--execute")...)
			if code != exitOK {
				t.Fatalf("reset --execute: exit %d", code)
			}
			if got := topicsWithPrefix(t, a, appID); len(got) != 0 {
				t.Errorf("after the reset the application's topics %v remain", got)
			}
			after := committedOffsets(t, a, appID)
			for topic := range after {
				if topic != in {
					t.Errorf("after the reset the group has committed offsets on %s: %v", topic, after[topic])
				}
			}
			for p := range int32(2) {
				if c := after[in][p]; c.Offset != target[p] || c.Metadata != "" {
					t.Errorf("%s partition %d: committed %d %q after the reset, want %d with empty metadata", in, p, c.Offset, c.Metadata, target[p])
				}
			}
			gotState := stateEntries(t, appDir)
			if tc.stateDir && !slices.Equal(gotState, []string{".lock"}) {
				t.Errorf("state folder after the reset holds %v, want only the lock file", gotState)
			}
			if !tc.stateDir && !slices.Equal(gotState, stateBefore) {
				t.Errorf("without --state-dir the reset changed the state folder: %v, was %v", gotState, stateBefore)
			}

			var kept []event
			for _, e := range events {
				if tc.keep(e) {
					kept = append(kept, e)
				}
			}
			wantHours, wantCards = expected(kept)
			runApp(hoursEnd, cardsEnd, wantHours, wantCards)
			if tc.guarantee == topology.AtLeastOnce {
				// Without transaction markers, offsets count records: the
				// second run wrote the wanted updates and nothing more.
				for _, o := range []struct {
					topic string
					from  map[int32]int64
					want  map[string][]int64
				}{{hoursOut, hoursEnd, wantHours}, {cardsOut, cardsEnd, wantCards}} {
					var n, wrote int64
					for _, u := range o.want {
						n += int64(len(u))
					}
					for p, end := range endOffsets(t, b, o.topic) {
						wrote += end - o.from[p]
					}
					if wrote != n {
						t.Errorf("%s: the restarted application wrote %d records, want %d", o.topic, wrote, n)
					}
				}
			}
		})
	}
}

func equalOffsets(a, b map[string]map[int32]committedOffset) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || len(v) != len(w) {
			return false
		}
		for p, o := range v {
			if w[p] != o {
				return false
			}
		}
	}
	return true
}
