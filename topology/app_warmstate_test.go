package topology_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// twinCounter counts each key in two stores, "disk" (LevelDB) and "mem"
// (in memory), so both changelogs get the same records.
type twinCounter struct {
	disk, mem store.KeyValueStore[string, int64]
}

func (c *twinCounter) Init(ctx processor.Context[string, int64]) (err error) {
	if c.disk, err = processor.KeyValueStore[string, int64](ctx, "disk"); err != nil {
		return err
	}
	c.mem, err = processor.KeyValueStore[string, int64](ctx, "mem")
	return err
}

func (c *twinCounter) Process(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
	n, _, err := c.disk.Get(r.Key)
	if err != nil {
		return err
	}
	n++
	if err := c.disk.Put(r.Key, n); err != nil {
		return err
	}
	return c.mem.Put(r.Key, n)
}

func (c *twinCounter) Close() error { return nil }

// TestAppReportsWarmStateItHolds: when an instance rejoins the group, the
// warm state it reports for each task is what it still holds: the restored
// offset of the task's LevelDB store, not that of its in-memory store,
// whose data went with the task's close (under the eager protocol every
// task is closed before the join). Before, the in-memory store's changelog
// offset was added in, so a member looked warm for state it no longer had.
func TestAppReportsWarmStateItHolds(t *testing.T) {
	b := testutil.NewBroker(t)
	in := testutil.TopicName(t, "in")
	b.CreateTopic(t, in, 2, nil)
	var msgs []*sarama.ProducerMessage
	for i := range 40 {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: in, Partition: int32(i % 2),
			Key: sarama.StringEncoder(fmt.Sprintf("k%02d", i%10)), Value: sarama.StringEncoder("v")})
	}
	b.Produce(t, in, msgs...)

	tb := topology.New()
	src := topology.Source(tb, "in", in, serde.String(), serde.String())
	topology.KeyValueStore(tb, "disk", serde.String(), serde.Int64())
	topology.KeyValueStore(tb, "mem", serde.String(), serde.Int64(), topology.InMemory())
	topology.Process(tb, "count", src, func() processor.Processor[string, string, string, int64] { return &twinCounter{} },
		topology.WithStores("disk", "mem"))
	topo, err := tb.Build()
	if err != nil {
		t.Fatal(err)
	}
	appID := testutil.TopicName(t, "app")
	cfg := func(endpoint string) topology.Config {
		return topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 100 * time.Millisecond, Logger: testLogger(t), QueryEndpoint: endpoint}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, done1 := startApp(t, ctx, topo, cfg("first:1"))
	disk, mem := appID+"-disk-changelog", appID+"-mem-changelog"
	// Every key's last count is in both changelogs once all 40 records
	// are processed: 4 per key.
	waitCounts := func(topic string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			last := map[string]string{}
			for _, m := range b.ConsumeAll(t, topic) {
				last[string(m.Key)] = string(m.Value)
			}
			four := 0
			for _, v := range last {
				if v == "\x00\x00\x00\x00\x00\x00\x00\x04" {
					four++
				}
			}
			if four == 10 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of 10 keys at count 4", topic, four)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitCounts(disk)
	waitCounts(mem)

	// A second instance joins: the first commits, closes its tasks and
	// rejoins, reporting its warm state.
	_, done2 := startApp(t, ctx, topo, cfg("second:1"))
	client, err := sarama.NewClient(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	var first assign.MemberData
	deadline := time.Now().Add(60 * time.Second)
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatal("the group did not become stable with both instances")
		}
		time.Sleep(100 * time.Millisecond)
		ds, err := admin.DescribeConsumerGroups([]string{appID})
		if err != nil || len(ds) != 1 || ds[0].State != "Stable" || len(ds[0].Members) != 2 {
			continue
		}
		for _, m := range ds[0].Members {
			meta, err := m.GetMemberMetadata()
			if err != nil || meta == nil {
				continue
			}
			if d, err := assign.DecodeMemberData(meta.UserData); err == nil && d.Endpoint == "first:1" {
				first, found = d, true
			}
		}
	}
	for p := range int32(2) {
		end, err := client.GetOffset(disk, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		memEnd, _ := client.GetOffset(mem, p, sarama.OffsetNewest)
		task := assign.TaskID{Group: 0, Partition: p}
		if got := first.Warm[task]; got != end {
			t.Errorf("task %s: the first instance reports warmth %d; its LevelDB store's changelog ends at %d (the in-memory one's at %d)", task, got, end, memEnd)
		}
	}
	cancel()
	for _, done := range []<-chan error{done1, done2} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
