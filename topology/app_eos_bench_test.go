package topology_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// BenchmarkAppCount runs the counting app (one LevelDB store with a
// changelog, one output record per input record) over the same input with
// both guarantees, in the same run on the same broker, and reports
// records/s from the moment the app is running until every input offset
// is committed. Compare the two: the exactly-once cost is the ratio of
// their records/s. Each iteration uses a fresh application id (fresh
// group, empty state).
//
//	go test -run '^$' -bench BenchmarkAppCount -benchtime 3x ./topology/
func BenchmarkAppCount(b *testing.B) {
	broker := eosBroker(b)
	const partitions, keys, records = 6, 1000, 60_000
	in := testutil.TopicName(b, "in")
	broker.CreateTopic(b, in, partitions, nil)
	var msgs []*sarama.ProducerMessage
	for i := 0; i < records; i++ {
		k := i % keys
		msgs = append(msgs, &sarama.ProducerMessage{
			Key: sarama.StringEncoder(fmt.Sprintf("key-%04d", k)), Value: sarama.StringEncoder("v"),
			Partition: int32(k % partitions),
		})
	}
	broker.Produce(b, in, msgs...)
	for _, mode := range []struct {
		name string
		g    topology.Guarantee
	}{{"at-least-once", topology.AtLeastOnce}, {"exactly-once", topology.ExactlyOnce}} {
		b.Run(mode.name, func(b *testing.B) {
			var busy time.Duration
			for i := 0; i < b.N; i++ {
				busy += runCountOnce(b, broker, in, partitions, records, mode.g)
			}
			b.ReportMetric(float64(records*b.N)/busy.Seconds(), "records/s")
			b.ReportMetric(0, "ns/op") // wall time includes group joins; records/s is the measure
		})
	}
}

// runCountOnce runs a fresh counting app over in until all records are
// committed, and returns the time from Running to that point.
func runCountOnce(b *testing.B, broker *testutil.Broker, in string, partitions int32, records int64, g topology.Guarantee) time.Duration {
	b.Helper()
	out := testutil.TopicName(b, "out")
	broker.CreateTopic(b, out, partitions, nil)
	appID := testutil.TopicName(b, "app")
	var once sync.Once
	running := make(chan time.Time, 1)
	app, err := topology.NewApp(countTopology(b, in, out), topology.Config{
		ApplicationID: appID, Brokers: broker.Addrs(), StateDir: b.TempDir(), Guarantee: g,
		CommitInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler), // Run's error is checked
		StateListener: func(_, to topology.State) {
			if to == topology.StateRunning {
				once.Do(func() { running <- time.Now() })
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	admin, err := sarama.NewClusterAdmin(broker.Addrs(), broker.SaramaConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Fatalf("Run: %v", err)
		}
	}()
	var start time.Time
	select {
	case start = <-running:
	case err := <-done:
		done <- err
		b.Fatalf("Run ended before running: %v", err)
	case <-time.After(60 * time.Second):
		b.Fatal("app not running after 60s")
	}
	parts := make([]int32, partitions)
	for p := range parts {
		parts[p] = int32(p)
	}
	deadline := start.Add(5 * time.Minute)
	for {
		resp, err := admin.ListConsumerGroupOffsets(appID, map[string][]int32{in: parts})
		if err != nil {
			b.Fatal(err)
		}
		var committed int64
		for _, p := range parts {
			if blk := resp.GetBlock(in, p); blk != nil && blk.Offset > 0 {
				committed += blk.Offset
			}
		}
		if committed >= records {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d records committed after 5 minutes", committed, records)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
