package testutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/store"
	"github.com/twmb/franz-go/pkg/kfake"
)

// SaramaVersion is the Kafka protocol version brook's tests (and the
// runtime) configure sarama with. Kafka 4.x and kfake both accept it.
var SaramaVersion = sarama.V3_6_0_0

// Broker is a Kafka cluster for one test: an in-process kfake cluster, or
// the real cluster named by KAFKA_BROKERS.
type Broker struct {
	addrs   []string
	cluster *kfake.Cluster
	// secure, when set, applies TLS and SASL settings (SecureKafka.Broker).
	secure func(*sarama.Config)
}

// RealKafka reports whether KAFKA_BROKERS names a real cluster.
func RealKafka() bool { return os.Getenv("KAFKA_BROKERS") != "" }

// NewBroker returns the broker for this test: the real cluster when
// KAFKA_BROKERS is set (comma-separated host:port list), otherwise a fresh
// in-process kfake cluster that is shut down when the test ends.
func NewBroker(t testing.TB) *Broker {
	t.Helper()
	if env := os.Getenv("KAFKA_BROKERS"); env != "" {
		var addrs []string
		for _, a := range strings.Split(env, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		return &Broker{addrs: addrs}
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": "200"}),
	)
	if err != nil {
		t.Fatalf("testutil: start embedded kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return &Broker{addrs: c.ListenAddrs(), cluster: c}
}

// RequireRealKafka skips (fails under CI=true) a test that needs a real
// Kafka cluster, for behaviour the embedded cluster cannot show.
func RequireRealKafka(t testing.TB) {
	t.Helper()
	if !RealKafka() {
		needService(t, "real Kafka (KAFKA_BROKERS)",
			"run `eval $(scripts/kafka start)` or use scripts/test, which starts Kafka and exports KAFKA_BROKERS")
	}
}

// Addrs returns the bootstrap addresses.
func (b *Broker) Addrs() []string { return append([]string(nil), b.addrs...) }

// Embedded returns the in-process kfake cluster, or nil on a real cluster.
// Use it only for things a real cluster does through configuration (for
// example forcing compaction with Compact); prefer behaviour that works on
// both.
func (b *Broker) Embedded() *kfake.Cluster { return b.cluster }

// SaramaConfig returns a fresh sarama configuration suitable for this
// broker: protocol version, a test client id, synchronous producer results,
// and TLS and SASL for a SecureKafka's broker.
func (b *Broker) SaramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = SaramaVersion
	cfg.ClientID = "brook-test"
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	if b.secure != nil {
		b.secure(cfg)
	}
	return cfg
}

var topicSeq atomic.Int64

var unsafeTopicChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// TopicName returns a topic name unique to this test run: base, the test's
// name and a counter, safe to use against a shared real cluster.
func TopicName(t testing.TB, base string) string {
	t.Helper()
	name := unsafeTopicChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return fmt.Sprintf("%s.%s.%d.%d", base, name, time.Now().UnixNano()%1_000_000_000, topicSeq.Add(1))
}

// CreateTopic creates a topic with the given partition count and configs
// (replication factor 1) and waits until every partition has a leader.
func (b *Broker) CreateTopic(t testing.TB, name string, partitions int32, configs map[string]string) {
	t.Helper()
	if err := b.CreateTopicErr(name, partitions, configs); err != nil {
		t.Fatalf("testutil: %v", err)
	}
}

// CreateTopicErr is CreateTopic returning an error instead of failing a
// test, for use outside tests (examples).
func (b *Broker) CreateTopicErr(name string, partitions int32, configs map[string]string) error {
	admin, err := sarama.NewClusterAdmin(b.addrs, b.SaramaConfig())
	if err != nil {
		return fmt.Errorf("connect admin to %v: %w", b.addrs, err)
	}
	defer admin.Close()
	entries := map[string]*string{}
	for k, v := range configs {
		entries[k] = &v
	}
	// A busy or just-started KRaft broker may answer CreateTopics with a
	// retriable error (seen: NOT_LEADER_OR_FOLLOWER while its metadata
	// catches up); retry those for a while.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = admin.CreateTopic(name, &sarama.TopicDetail{
			NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: entries,
		}, false)
		if err == nil || errors.Is(err, sarama.ErrTopicAlreadyExists) {
			break
		}
		if !retriable(err) || time.Now().After(deadline) {
			return fmt.Errorf("create topic %q: %w", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return b.waitForLeaders(name, partitions)
}

// retriable reports whether a Kafka error is worth retrying.
func retriable(err error) bool {
	var kerr sarama.KError
	if errors.As(err, &kerr) {
		switch kerr {
		case sarama.ErrNotLeaderForPartition, sarama.ErrNotController, sarama.ErrRequestTimedOut,
			sarama.ErrLeaderNotAvailable, sarama.ErrNetworkException, sarama.ErrNotEnoughReplicas:
			return true
		}
	}
	var terr *sarama.TopicError
	if errors.As(err, &terr) && terr.Err != sarama.ErrTopicAlreadyExists {
		return retriable(terr.Err)
	}
	return false
}

func (b *Broker) waitForLeaders(topic string, partitions int32) error {
	client, err := sarama.NewClient(b.addrs, b.SaramaConfig())
	if err != nil {
		return fmt.Errorf("connect to %v: %w", b.addrs, err)
	}
	defer client.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := client.RefreshMetadata(topic)
		if err == nil {
			ps, perr := client.Partitions(topic)
			ready := perr == nil && int32(len(ps)) == partitions
			for _, p := range ps {
				if l, lerr := client.Leader(topic, p); lerr != nil || l == nil {
					ready = false
				}
			}
			if ready {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %q: partitions have no leader after 30s (last error: %v)", topic, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Produce writes messages synchronously. Each message goes to the partition
// its Partition field names (a manual partitioner), so tests control
// placement exactly.
func (b *Broker) Produce(t testing.TB, topic string, msgs ...*sarama.ProducerMessage) {
	t.Helper()
	cfg := b.SaramaConfig()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(b.addrs, cfg)
	if err != nil {
		t.Fatalf("testutil: producer: %v", err)
	}
	defer p.Close()
	for _, m := range msgs {
		m.Topic = topic
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("testutil: produce %d messages to %q: %v", len(msgs), topic, err)
	}
}

// ConsumeAll reads every partition of topic from its oldest offset to the
// end offset it has when ConsumeAll starts, and returns the messages in
// partition, then offset order. It reads uncommitted data; use
// ConsumeAllCommitted for read_committed.
func (b *Broker) ConsumeAll(t testing.TB, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	return b.consumeAll(t, topic, sarama.ReadUncommitted)
}

// ConsumeAllCommitted is ConsumeAll with read_committed isolation: records
// of aborted or open transactions are not returned.
func (b *Broker) ConsumeAllCommitted(t testing.TB, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	return b.consumeAll(t, topic, sarama.ReadCommitted)
}

func (b *Broker) consumeAll(t testing.TB, topic string, iso sarama.IsolationLevel) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := b.SaramaConfig()
	cfg.Consumer.IsolationLevel = iso
	client, err := sarama.NewClient(b.addrs, cfg)
	if err != nil {
		t.Fatalf("testutil: client: %v", err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("testutil: partitions of %q: %v", topic, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		msgs, err := readPartition(ctx, client, topic, p, iso)
		if err != nil {
			t.Fatalf("testutil: %v", err)
		}
		out = append(out, msgs...)
	}
	return out
}

// readPartition reads one partition from its start offset to its end
// offset now: the high watermark, or under read_committed the last stable
// offset (records of a transaction still open are not returned, as a
// read_committed consumer would not return them yet). It reads with
// brook's changelog reader, which sees the transaction markers and
// aborted records that a consumer skips without a word, so it knows at
// once when it has reached the end however the log ends (no idle
// time-out).
func readPartition(ctx context.Context, client sarama.Client, topic string, p int32, iso sarama.IsolationLevel) ([]*sarama.ConsumerMessage, error) {
	rd := changelog.NewReader(client, topic, p, iso)
	end, err := rd.EndOffset(ctx)
	if err != nil {
		return nil, fmt.Errorf("end offset of %s/%d: %w", topic, p, err)
	}
	// The log start can move while the partition is read (compaction of
	// a compacted topic, deleted records): start again from the new one.
	for attempt := 0; ; attempt++ {
		start, err := rd.BeginOffset(ctx)
		if err != nil {
			return nil, fmt.Errorf("start offset of %s/%d: %w", topic, p, err)
		}
		var out []*sarama.ConsumerMessage
		if start >= end {
			return out, nil
		}
		err = rd.Read(ctx, start, end, func(recs []store.ChangelogRecord) error {
			for _, r := range recs {
				m := &sarama.ConsumerMessage{Topic: topic, Partition: p, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
				for _, h := range r.Headers {
					m.Headers = append(m.Headers, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
				}
				out = append(out, m)
			}
			return nil
		})
		if errors.Is(err, store.ErrChangelogTruncated) && attempt < 10 {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("read %s/%d [%d, %d): %w", topic, p, start, end, err)
		}
		return out, nil
	}
}

// WaitForRecords consumes topic from the beginning until at least n
// messages (read_committed when committed is true) are there or the
// timeout passes, and returns what it saw.
func (b *Broker) WaitForRecords(t testing.TB, topic string, n int, committed bool, timeout time.Duration) []*sarama.ConsumerMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		var got []*sarama.ConsumerMessage
		if committed {
			got = b.ConsumeAllCommitted(t, topic)
		} else {
			got = b.ConsumeAll(t, topic)
		}
		if len(got) >= n {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testutil: %s: %d of %d records after %v", topic, len(got), n, timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
