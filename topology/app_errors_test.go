package topology_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// sumTopology sums int64 values per key and writes each new sum to out.
func sumTopology(t testing.TB, in, out string, opts ...topology.Option) *topology.Topology {
	t.Helper()
	b := topology.New(opts...)
	src := topology.Source(b, "in", in, serde.String(), serde.Int64())
	topology.KeyValueStore(b, "sums", serde.String(), serde.Int64())
	sums := topology.ProcessFunc(b, "sum", src, func(ctx processor.Context[string, int64], r processor.Record[string, int64]) error {
		s, err := processor.KeyValueStore[string, int64](ctx, "sums")
		if err != nil {
			return err
		}
		v, _, err := s.Get(r.Key)
		if err != nil {
			return err
		}
		v += r.Value
		if err := s.Put(r.Key, v); err != nil {
			return err
		}
		return ctx.Forward(processor.Revalue(r, v))
	}, topology.WithStores("sums"))
	topology.Sink(b, "out", out, sums, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func int64Bytes(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// poisonInput writes 10 records to partition 0: values 1..10, except that
// the record at offset 4 has a 3-byte value no int64 serde accepts.
func poisonInput(t *testing.T, b *testutil.Broker, in string) {
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 10; i++ {
		v := sarama.ByteEncoder(int64Bytes(int64(i + 1)))
		if i == 4 {
			v = sarama.ByteEncoder("bad")
		}
		msgs = append(msgs, &sarama.ProducerMessage{
			Key: sarama.StringEncoder("acct"), Value: v,
			Headers: []sarama.RecordHeader{{Key: []byte("trace"), Value: []byte(strconv.Itoa(i))}},
		})
	}
	b.Produce(t, in, msgs...)
}

// TestAppPoisonPillFailsThenResumesAtIt: with the default handler the app
// stops with an error naming topic, partition and offset, and commits
// nothing past the bad record; restarted with a dead-letter handler it
// resumes at that record, dead-letters it with its original bytes and the
// dlq headers, and processes the rest.
func TestAppPoisonPillFailsThenResumesAtIt(t *testing.T) {
	b := testutil.NewBroker(t)
	in, out, dlq := testutil.TopicName(t, "in"), testutil.TopicName(t, "out"), testutil.TopicName(t, "dlq")
	for _, tp := range []string{in, out, dlq} {
		b.CreateTopic(t, tp, 1, nil)
	}
	poisonInput(t, b, in)
	appID := testutil.TopicName(t, "app")
	dir := t.TempDir()
	cfg := topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, CommitInterval: 50 * time.Millisecond, Logger: testLogger(t)}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	app, err := topology.NewApp(sumTopology(t, in, out), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = app.Run(ctx)
	var de *processor.DeserializationError
	if !errors.As(err, &de) {
		t.Fatalf("Run returned %v, want a DeserializationError", err)
	}
	if de.Topic != in || de.Partition != 0 || de.Offset != 4 {
		t.Fatalf("error names %s/%d@%d, want %s/0@4: %v", de.Topic, de.Partition, de.Offset, in, err)
	}
	t.Logf("app stopped with: %v", err)
	// The records before the bad one are committed, nothing after it: a
	// restart resumes exactly at it (no duplicates of offsets 0..3).
	if committed := committedOffset(t, b, appID, in, 0); committed != 4 {
		t.Fatalf("committed offset %d, want 4 (the bad record)", committed)
	}

	// Restart with a dead-letter handler.
	dl := processor.DeadLetter(dlq, testLogger(t))
	app2, err := topology.NewApp(sumTopology(t, in, out, topology.WithDeserializationHandler(dl)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app2.Run(runCtx) }()
	dead := b.WaitForRecords(t, dlq, 1, false, 30*time.Second)
	var last int64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got := lastCounts(t, b, out); got["acct"] == 55-5 {
			last = got["acct"]
			break
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("restarted Run: %v", err)
	}
	if last != 50 {
		t.Fatalf("sum after restart = %v, want 50 (1..10 without the bad 5)", lastCounts(t, b, out))
	}
	if len(dead) != 1 {
		t.Fatalf("dead-letter topic has %d records, want 1", len(dead))
	}
	d := dead[0]
	if string(d.Value) != "bad" || string(d.Key) != "acct" {
		t.Fatalf("dead letter key/value %q/%q, want the original acct/bad", d.Key, d.Value)
	}
	hdr := map[string]string{}
	for _, h := range d.Headers {
		hdr[string(h.Key)] = string(h.Value)
	}
	want := map[string]string{
		"trace": "4", processor.HeaderLineage: in + "/0/4|in|" + cfg.ApplicationID,
	}
	for k, v := range want {
		if hdr[k] != v {
			t.Errorf("dead letter header %s = %q, want %q (all: %v)", k, hdr[k], v, hdr)
		}
	}
	for _, k := range []string{processor.HeaderDLQError, processor.HeaderDLQTimestamp, processor.HeaderDLQTime} {
		if hdr[k] == "" {
			t.Errorf("dead letter lacks header %s (all: %v)", k, hdr)
		}
	}
}

func committedOffset(t *testing.T, b *testutil.Broker, group, topic string, partition int32) int64 {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {partition}})
	// A real broker answers COORDINATOR_LOAD_IN_PROGRESS for a while after
	// a coordinator moves or starts: ask again.
	for deadline := time.Now().Add(15 * time.Second); errors.Is(err, sarama.ErrOffsetsLoadInProgress) && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		resp, err = admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {partition}})
	}
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return -1 // kfake says so for a group that never committed; Kafka answers -1
	}
	if err != nil {
		t.Fatal(err)
	}
	blk := resp.GetBlock(topic, partition)
	if blk == nil {
		return -1
	}
	return blk.Offset
}
