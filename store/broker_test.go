package store_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/brookstream/brook/store/leveldb"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
)

type bytesSerde struct{}

func (bytesSerde) Serialize(_ string, v []byte) ([]byte, error)   { return v, nil }
func (bytesSerde) Deserialize(_ string, b []byte) ([]byte, error) { return b, nil }

// changelogWriter is the store.ChangelogWriter of the test's logged store:
// it sends each record through a changelog.Producer to the partition it
// names, as the runtime's collector does.
type changelogWriter struct{ p *changelog.Producer }

func (w *changelogWriter) SendChangelog(topic string, partition int32, key, value []byte) error {
	m := &sarama.ProducerMessage{Topic: topic, Partition: partition, Key: sarama.ByteEncoder(bytes.Clone(key)),
		Metadata: &changelog.Meta{Partition: partition, Changelog: true}}
	if value != nil {
		m.Value = sarama.ByteEncoder(bytes.Clone(value))
	}
	return w.p.Send(m)
}

// Flush waits for every record sent so far and returns the first failure.
func (w *changelogWriter) Flush() error {
	if failed := w.p.Flush(); len(failed) > 0 {
		return fmt.Errorf("%d changelog records failed, first to %s[%d]: %w", len(failed), failed[0].Msg.Topic, failed[0].Msg.Partition, failed[0].Err)
	}
	return nil
}

// TestRestore100kFromBroker logs 100,000 keys (plus updates and
// tombstones) through a logged store to a changelog on the test broker
// (embedded kfake, or real Kafka when KAFKA_BROKERS is set), restores a
// LevelDB engine from it and compares every key. Then it writes a tail and
// restores from the checkpoint.
func TestRestore100kFromBroker(t *testing.T) {
	const keys = 100_000
	b := testutil.NewBroker(t)
	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topic := store.ChangelogTopic(testutil.TopicName(t, "app"), "profiles")
	const partition = 1
	if testutil.RealKafka() {
		if err := changelog.EnsureTopic(context.Background(), admin, changelog.TopicSpec{Name: topic, Partitions: 2, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
	} else {
		// The embedded broker re-compacts the whole partition every
		// 200ms, stalling its request loop; restore over compaction gaps
		// is covered by internal/changelog's TestReaderOverCompactionGaps.
		b.CreateTopic(t, topic, 2, nil)
	}

	pcfg := changelog.ProducerConfig(b.SaramaConfig(), sarama.NewManualPartitioner, "")
	// Large batches: an idempotent producer has one request in flight.
	pcfg.Producer.Flush.Bytes = 800 << 10
	pcfg.Producer.Flush.Frequency = 20 * time.Millisecond
	pcfg.ChannelBufferSize = 10_000
	p, err := sarama.NewAsyncProducer(b.Addrs(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &changelogWriter{p: changelog.NewProducer(p)}
	defer w.p.Close()

	// The source of truth: a logged store over a memory engine.
	truth := store.NewMemoryEngine()
	defer truth.Close()
	src := store.NewKeyValueStore[[]byte, []byte]("profiles", truth, bytesSerde{}, bytesSerde{}, store.WithChangelog(topic, partition, w))
	rng := rand.New(rand.NewPCG(42, 100))
	key := func(i int) []byte { return fmt.Appendf(nil, "customer-%07d", i) }
	for i := 0; i < keys; i++ {
		if err := src.Put(key(i), fmt.Appendf(nil, "profile-%d-v0-%s", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 15_000; i++ {
		k := rng.IntN(keys)
		if err := src.Put(key(k), fmt.Appendf(nil, "profile-%d-v%d", k, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5_000; i++ {
		if err := src.Delete(key(rng.IntN(keys))); err != nil {
			t.Fatal(err)
		}
	}
	// An empty value is a value, not a tombstone.
	if err := src.Put(key(7), []byte{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	tp := store.TopicPartition{Topic: topic, Partition: partition}
	logged, _ := w.p.Acked(tp)
	if logged != keys+20_001 {
		t.Fatalf("acknowledged offset %d, want %d", logged, keys+20_001)
	}

	client, err := sarama.NewClient(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	reader := changelog.NewReader(client, topic, partition, sarama.ReadUncommitted)
	taskDir := t.TempDir()
	var last store.RestoreProgress
	cfg := store.RestoreConfig{
		Store: "profiles", Changelog: tp, Reader: reader,
		Opener:   leveldb.Opener(taskDir+"/profiles", leveldb.Options{}),
		Progress: func(p store.RestoreProgress) { last = p },
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	res, err := store.Restore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Offset != logged || last.Restored != last.Total || last.Partition != partition {
		t.Fatalf("restore result %+v, last progress %+v, want offset %d", res, last, logged)
	}
	compareEngines(t, truth, res.Engine)

	// Checkpoint, write a tail, restore only the tail.
	if err := store.FlushAndCheckpoint(taskDir, []store.Engine{res.Engine}, map[store.TopicPartition]int64{tp: res.Offset}); err != nil {
		t.Fatal(err)
	}
	if err := res.Engine.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		if i%5 == 0 {
			err = src.Delete(key(i))
		} else {
			err = src.Put(key(i), []byte("tail"))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	cp, err := store.ReadCheckpoint(taskDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Checkpoint, cfg.HasCheckpoint = cp[tp]
	res, err = store.Restore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Engine.Close()
	if res.Wiped && !testutil.RealKafka() {
		// The embedded broker moves the log start offset when it
		// compacts (real Kafka does not), which forces a full restore.
		t.Logf("restore from checkpoint wiped: %s", res.WipeReason)
	} else if res.Wiped || res.Records != 500 {
		t.Fatalf("restore from checkpoint: %+v, want exactly the 500-record tail", res)
	}
	compareEngines(t, truth, res.Engine)
}

func compareEngines(t *testing.T, want, got store.Engine) {
	t.Helper()
	a, err := want.Iterate(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := got.Iterate(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n := 0
	for a.Next() {
		if !b.Next() {
			t.Fatalf("restored store ends after %d keys; missing %q", n, a.Key())
		}
		if string(a.Key()) != string(b.Key()) || string(a.Value()) != string(b.Value()) {
			t.Fatalf("key %d: restored %q=%q, want %q=%q", n, b.Key(), b.Value(), a.Key(), a.Value())
		}
		n++
	}
	if b.Next() {
		t.Fatalf("restored store has extra key %q", b.Key())
	}
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 80_000 {
		t.Fatalf("compared only %d keys", n)
	}
}
