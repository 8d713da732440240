package testutil_test

import (
	"fmt"
	"testing"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/testutil"
)

// TestBrokerProduceConsume proves the harness on whichever broker is
// configured: a record produced through testutil is consumed back with its
// key, value, headers and partition.
func TestBrokerProduceConsume(t *testing.T) {
	b := testutil.NewBroker(t)
	t.Logf("broker %v (real Kafka: %v)", b.Addrs(), testutil.RealKafka())
	topic := testutil.TopicName(t, "smoke")
	b.CreateTopic(t, topic, 3, nil)

	var msgs []*sarama.ProducerMessage
	for i := 0; i < 30; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{
			Key:       sarama.StringEncoder(fmt.Sprintf("k%d", i)),
			Value:     sarama.StringEncoder(fmt.Sprintf("v%d", i)),
			Partition: int32(i % 3),
			Headers:   []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("x")}},
		})
	}
	b.Produce(t, topic, msgs...)

	got := b.ConsumeAll(t, topic)
	if len(got) != 30 {
		t.Fatalf("consumed %d records, want 30", len(got))
	}
	seen := map[string]bool{}
	for _, m := range got {
		var i int
		if _, err := fmt.Sscanf(string(m.Key), "k%d", &i); err != nil {
			t.Fatalf("bad key %q", m.Key)
		}
		if string(m.Value) != fmt.Sprintf("v%d", i) || m.Partition != int32(i%3) {
			t.Errorf("record %q: value %q partition %d", m.Key, m.Value, m.Partition)
		}
		if len(m.Headers) != 1 || string(m.Headers[0].Value) != "x" {
			t.Errorf("record %q: headers %v", m.Key, m.Headers)
		}
		seen[string(m.Key)] = true
	}
	if len(seen) != 30 {
		t.Fatalf("distinct keys %d, want 30", len(seen))
	}
}

// TestBrokerCompactedTopicConfig creates a compacted topic and reads its
// cleanup.policy back through the admin API.
func TestBrokerCompactedTopicConfig(t *testing.T) {
	b := testutil.NewBroker(t)
	topic := testutil.TopicName(t, "compacted")
	b.CreateTopic(t, topic, 2, map[string]string{"cleanup.policy": "compact"})

	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	entries, err := admin.DescribeConfig(sarama.ConfigResource{
		Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"cleanup.policy"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var policy string
	for _, e := range entries {
		if e.Name == "cleanup.policy" {
			policy = e.Value
		}
	}
	if policy != "compact" {
		t.Fatalf("cleanup.policy = %q, want compact", policy)
	}
	meta, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		t.Fatal(err)
	}
	if len(meta) != 1 || len(meta[0].Partitions) != 2 {
		t.Fatalf("topic metadata %+v, want 2 partitions", meta)
	}
}

// TestCIUsesRealServices fails a CI run whose broker tests would silently
// fall back to the embedded cluster or skip the registry tests.
func TestCIUsesRealServices(t *testing.T) {
	if !testutil.InCI() {
		t.Skip("only meaningful under CI=true")
	}
	if !testutil.RealKafka() {
		t.Fatal("CI=true but KAFKA_BROKERS is not set: broker tests would run on the embedded cluster")
	}
	testutil.RegistryURL(t)
}
