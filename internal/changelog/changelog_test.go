package changelog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
)

func newAdmin(t *testing.T, b *testutil.Broker) sarama.ClusterAdmin {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin
}

func newClient(t *testing.T, b *testutil.Broker) sarama.Client {
	t.Helper()
	c, err := sarama.NewClient(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readAll(t *testing.T, r *changelog.Reader, from int64) ([]store.ChangelogRecord, int64) {
	t.Helper()
	ctx := context.Background()
	end, err := r.EndOffset(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []store.ChangelogRecord
	err = r.Read(ctx, from, end, func(recs []store.ChangelogRecord) error {
		for _, rec := range recs {
			got = append(got, store.ChangelogRecord{Offset: rec.Offset, Key: bytes.Clone(rec.Key), Value: clonePreservingNil(rec.Value)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, end
}

func clonePreservingNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

type sent struct {
	key   string
	value []byte
}

// TestProducerAndReader writes changelog records through a Producer
// (values, tombstones, empty values) and reads them back with a Reader.
func TestProducerAndReader(t *testing.T) {
	b := testutil.NewBroker(t)
	// Not compacted: the embedded broker compacts within milliseconds, and
	// this test compares every record.
	topic := store.ChangelogTopic(testutil.TopicName(t, "app"), "counts")
	b.CreateTopic(t, topic, 3, nil)
	ap, err := sarama.NewAsyncProducer(b.Addrs(), changelog.ProducerConfig(b.SaramaConfig(), sarama.NewManualPartitioner, ""))
	if err != nil {
		t.Fatal(err)
	}
	p := changelog.NewProducer(ap)
	defer func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	}()
	var want []sent
	for i := 0; i < 500; i++ {
		k := fmt.Sprintf("k%03d", i%70)
		var v []byte
		switch i % 7 {
		case 3: // tombstone
		case 5:
			v = []byte{} // an empty value is not a tombstone
		default:
			v = []byte(fmt.Sprintf("v%d", i))
		}
		m := &sarama.ProducerMessage{Topic: topic, Partition: 1, Key: sarama.ByteEncoder(k), Metadata: &changelog.Meta{Partition: 1, Changelog: true}}
		if v != nil {
			m.Value = sarama.ByteEncoder(v)
		}
		if err := p.Send(m); err != nil {
			t.Fatal(err)
		}
		want = append(want, sent{k, v})
	}
	if failed := p.Flush(); len(failed) > 0 {
		t.Fatalf("%d records failed, first: %v", len(failed), failed[0].Err)
	}
	if got, _ := p.Acked(store.TopicPartition{Topic: topic, Partition: 1}); got != 500 {
		t.Fatalf("Acked(%s 1) = %d, want 500", topic, got)
	}
	r := changelog.NewReader(newClient(t, b), topic, 1, sarama.ReadUncommitted)
	got, end := readAll(t, r, 0)
	if end != 500 || len(got) != 500 {
		t.Fatalf("read %d records to end %d, want 500", len(got), end)
	}
	for i, rec := range got {
		if rec.Offset != int64(i) || string(rec.Key) != want[i].key || !bytes.Equal(rec.Value, want[i].value) || (rec.Value == nil) != (want[i].value == nil) {
			t.Fatalf("record %d = %d %q %q (nil %v), want %q %q (nil %v)", i, rec.Offset, rec.Key, rec.Value, rec.Value == nil, want[i].key, want[i].value, want[i].value == nil)
		}
	}
	tail, _ := readAll(t, r, 450)
	if len(tail) != 50 || tail[0].Offset != 450 {
		t.Fatalf("read from 450: %d records starting at %d", len(tail), tail[0].Offset)
	}
	// Other partitions are untouched.
	if other, end := readAll(t, changelog.NewReader(newClient(t, b), topic, 0, sarama.ReadUncommitted), 0); len(other) != 0 || end != 0 {
		t.Fatalf("partition 0 has %d records (end %d)", len(other), end)
	}
}

func TestEnsureTopic(t *testing.T) {
	b := testutil.NewBroker(t)
	admin := newAdmin(t, b)

	fresh := testutil.TopicName(t, "fresh")
	if err := changelog.EnsureTopic(context.Background(), admin, changelog.TopicSpec{Name: fresh, Partitions: 4, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	md, err := admin.DescribeTopics([]string{fresh})
	if err != nil || len(md) != 1 || len(md[0].Partitions) != 4 {
		t.Fatalf("created topic: %v %v", md, err)
	}
	// Created compacted, and ensuring it again is fine.
	if err := changelog.ValidateTopic(admin, fresh, 4); err != nil {
		t.Fatalf("ValidateTopic of a topic EnsureTopic created: %v", err)
	}
	if err := changelog.EnsureTopic(context.Background(), admin, changelog.TopicSpec{Name: fresh, Partitions: 4, ReplicationFactor: 1}); err != nil {
		t.Fatalf("EnsureTopic of an existing good topic: %v", err)
	}

	wrongCount := testutil.TopicName(t, "count")
	b.CreateTopic(t, wrongCount, 2, map[string]string{"cleanup.policy": "compact"})
	err = changelog.EnsureTopic(context.Background(), admin, changelog.TopicSpec{Name: wrongCount, Partitions: 3, ReplicationFactor: 1})
	var me *changelog.TopicMismatchError
	if !errors.As(err, &me) || me.Topic != wrongCount || me.Setting != "partitions" || me.Expected != "3" || me.Actual != "2" {
		t.Fatalf("EnsureTopic with a wrong partition count = %v", err)
	}
	for _, part := range []string{wrongCount, "partitions=2", "expected 3"} {
		if !bytes.Contains([]byte(err.Error()), []byte(part)) {
			t.Fatalf("error %q does not name %q", err, part)
		}
	}

	wrongPolicy := testutil.TopicName(t, "policy")
	b.CreateTopic(t, wrongPolicy, 3, map[string]string{"cleanup.policy": "delete"})
	err = changelog.EnsureTopic(context.Background(), admin, changelog.TopicSpec{Name: wrongPolicy, Partitions: 3, ReplicationFactor: 1})
	if !errors.As(err, &me) || me.Topic != wrongPolicy || me.Setting != "cleanup.policy" || me.Expected != "compact" || me.Actual != "delete" {
		t.Fatalf("EnsureTopic with cleanup.policy=delete = %v", err)
	}

	both := testutil.TopicName(t, "both")
	b.CreateTopic(t, both, 1, map[string]string{"cleanup.policy": "compact,delete"})
	if err := changelog.ValidateTopic(admin, both, 1); err != nil {
		t.Fatalf("compact,delete must be accepted: %v", err)
	}

	windowed := testutil.TopicName(t, "windowed")
	if err := changelog.EnsureTopic(context.Background(), admin, changelog.TopicSpec{Name: windowed, Partitions: 2, ReplicationFactor: 1, Retention: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	cfgs, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: windowed})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, e := range cfgs {
		found[e.Name] = e.Value
	}
	if found["cleanup.policy"] != "compact,delete" || found["retention.ms"] != "7200000" {
		t.Fatalf("windowed changelog configs: cleanup.policy=%q retention.ms=%q", found["cleanup.policy"], found["retention.ms"])
	}
	if err := changelog.ValidateTopic(admin, windowed, 2); err != nil {
		t.Fatal(err)
	}

	var missing *changelog.TopicMissingError
	if err := changelog.ValidateTopic(admin, testutil.TopicName(t, "nope"), 1); !errors.As(err, &missing) {
		t.Fatalf("ValidateTopic of a missing topic = %v", err)
	}
}

// TestReaderReadCommitted writes committed, aborted and committed
// transactions: read_committed must leave out the aborted records and
// still stop at the end offset, whose tail is a transaction marker.
func TestReaderReadCommitted(t *testing.T) {
	b := testutil.NewBroker(t)
	topic := testutil.TopicName(t, "txn")
	b.CreateTopic(t, topic, 1, map[string]string{"cleanup.policy": "compact"})
	cfg := changelog.ProducerConfig(b.SaramaConfig(), sarama.NewManualPartitioner, topic+"-tx")
	p, err := sarama.NewSyncProducer(b.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	txn := func(commit bool, keys ...string) {
		t.Helper()
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.StringEncoder(k), Value: sarama.StringEncoder("v" + k)}); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	txn(true, "a", "b")
	txn(false, "x", "y", "z")
	txn(true, "c")
	txn(false, "w")

	client := newClient(t, b)
	committed, end := readAll(t, changelog.NewReader(client, topic, 0, sarama.ReadCommitted), 0)
	var keys []string
	for _, r := range committed {
		keys = append(keys, string(r.Key))
	}
	if fmt.Sprint(keys) != "[a b c]" {
		t.Fatalf("read_committed keys = %v, want [a b c]", keys)
	}
	// 7 data records and 4 markers.
	if end != 11 {
		t.Fatalf("read_committed end offset = %d, want 11", end)
	}
	all, _ := readAll(t, changelog.NewReader(client, topic, 0, sarama.ReadUncommitted), 0)
	if len(all) != 7 {
		t.Fatalf("read_uncommitted read %d records, want 7", len(all))
	}
}

func TestReaderBelowLogStart(t *testing.T) {
	b := testutil.NewBroker(t)
	topic := testutil.TopicName(t, "trunc")
	b.CreateTopic(t, topic, 1, nil)
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 10; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Partition: 0, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder("v")})
	}
	b.Produce(t, topic, msgs...)
	if err := newAdmin(t, b).DeleteRecords(topic, map[int32]int64{0: 6}); err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	r := changelog.NewReader(newClient(t, b), topic, 0, sarama.ReadUncommitted)
	begin, err := r.BeginOffset(context.Background())
	if err != nil || begin != 6 {
		t.Fatalf("BeginOffset = %d %v, want 6", begin, err)
	}
	err = r.Read(context.Background(), 2, 10, func([]store.ChangelogRecord) error { return nil })
	if !errors.Is(err, store.ErrChangelogTruncated) {
		t.Fatalf("Read below the log start = %v, want ErrChangelogTruncated", err)
	}
}

// TestReaderOverCompactionGaps reads a compacted partition: offsets have
// gaps, and the last value of every key must come through. On the
// embedded broker compaction runs every 200ms; on real Kafka it may not
// run during the test, which the test tolerates.
func TestReaderOverCompactionGaps(t *testing.T) {
	b := testutil.NewBroker(t)
	topic := testutil.TopicName(t, "compact")
	if err := changelog.EnsureTopic(context.Background(), newAdmin(t, b), changelog.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for round := 0; round < 4; round++ {
		var msgs []*sarama.ProducerMessage
		for i := 0; i < 50; i++ {
			k, v := fmt.Sprint("k", i%10), fmt.Sprint("v", round, "-", i)
			m := &sarama.ProducerMessage{Partition: 0, Key: sarama.StringEncoder(k), Value: sarama.StringEncoder(v)}
			if i%10 == 3 && round == 3 {
				m.Value = nil
				delete(want, k)
			} else {
				want[k] = v
			}
			msgs = append(msgs, m)
		}
		b.Produce(t, topic, msgs...)
	}
	r := changelog.NewReader(newClient(t, b), topic, 0, sarama.ReadUncommitted)
	ctx := context.Background()
	if b.Embedded() != nil {
		// Wait for a compaction to drop records (offsets get gaps).
		deadline := time.Now().Add(10 * time.Second)
		for {
			begin, err := r.BeginOffset(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := readAll(t, r, begin); len(got) < 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the embedded broker did not compact within 10s")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	begin, err := r.BeginOffset(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, end := readAll(t, r, begin)
	if end != 200 {
		t.Fatalf("end offset %d, want 200", end)
	}
	got := map[string]string{}
	for _, rec := range recs {
		if rec.Value == nil {
			delete(got, string(rec.Key))
		} else {
			got[string(rec.Key)] = string(rec.Value)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("state from the compacted log = %v, want %v", got, want)
	}
}
