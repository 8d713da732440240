package changelog

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// TopicMismatchError reports an existing changelog topic whose partition
// count or cleanup policy is not what its store needs. Fix the topic (or
// delete it and its local state) before starting the application.
type TopicMismatchError struct {
	// Topic is the changelog topic.
	Topic string
	// Setting is "partitions" or "cleanup.policy".
	Setting string
	// Expected and Actual are the wanted and found values.
	Expected string
	Actual   string
}

// Error implements error.
func (e *TopicMismatchError) Error() string {
	return fmt.Sprintf("changelog topic %q has %s=%s, expected %s", e.Topic, e.Setting, e.Actual, e.Expected)
}

// TopicMissingError reports a topic that should exist but does not (for
// example a source topic declared as a store's changelog).
type TopicMissingError struct {
	Topic string
}

// Error implements error.
func (e *TopicMissingError) Error() string {
	return fmt.Sprintf("changelog topic %q does not exist", e.Topic)
}

// TopicSpec describes a changelog topic.
type TopicSpec struct {
	// Name is the topic, normally store.ChangelogTopic(appID, store).
	Name string
	// Partitions must equal the partition count of the store's task
	// sources.
	Partitions int32
	// ReplicationFactor for a new topic; 0 means the broker's default.
	ReplicationFactor int16
	// Retention, if positive, makes a new topic "compact,delete" with
	// this retention.ms: the changelog of a window store, whose expired
	// segments are dropped locally without tombstones. Give it at least
	// the store's retention.
	Retention time.Duration
	// Configs are extra topic configs for a new topic (for example
	// min.insync.replicas). cleanup.policy is set by EnsureTopic.
	Configs map[string]string
}

// EnsureTopic creates the changelog topic compacted with spec.Partitions
// partitions, or, if it exists, checks it with ValidateTopic.
func EnsureTopic(admin sarama.ClusterAdmin, spec TopicSpec) error {
	if spec.Partitions <= 0 {
		return fmt.Errorf("changelog topic %q: partition count %d must be positive", spec.Name, spec.Partitions)
	}
	entries := map[string]*string{}
	for k, v := range spec.Configs {
		entries[k] = &v
	}
	policy := "compact"
	if spec.Retention > 0 {
		policy = "compact,delete"
		ms := strconv.FormatInt(spec.Retention.Milliseconds(), 10)
		entries["retention.ms"] = &ms
	}
	entries["cleanup.policy"] = &policy
	rf := spec.ReplicationFactor
	if rf == 0 {
		rf = -1 // broker default (KIP-464)
	}
	for start := time.Now(); ; {
		err := admin.CreateTopic(spec.Name, &sarama.TopicDetail{
			NumPartitions: spec.Partitions, ReplicationFactor: rf, ConfigEntries: entries,
		}, false)
		if err == nil || errors.Is(err, sarama.ErrTopicAlreadyExists) {
			break
		}
		// A busy or just-started broker may answer with a retriable error.
		if !retriableCreate(err) || time.Since(start) > topicWait {
			return fmt.Errorf("changelog topic %q: create: %w", spec.Name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A topic just created (by us or by another instance racing us) takes
	// a moment to appear in metadata: wait for it before validating.
	deadline := time.Now().Add(topicWait)
	for {
		err := ValidateTopic(admin, spec.Name, spec.Partitions)
		var missing *TopicMissingError
		if !errors.As(err, &missing) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// retriableCreate reports whether a CreateTopics failure is worth retrying.
func retriableCreate(err error) bool {
	for _, k := range []sarama.KError{sarama.ErrNotLeaderForPartition, sarama.ErrNotController,
		sarama.ErrRequestTimedOut, sarama.ErrLeaderNotAvailable, sarama.ErrNetworkException} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// topicWait bounds how long EnsureTopic waits for a created topic to show
// up in metadata.
const topicWait = 15 * time.Second

// ValidateTopic checks that an existing topic can serve as a changelog:
// it has the given number of partitions and its cleanup.policy includes
// compact. It gives a *TopicMismatchError naming the topic, the expected
// and the actual value, or a *TopicMissingError.
func ValidateTopic(admin sarama.ClusterAdmin, topic string, partitions int32) error {
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return fmt.Errorf("changelog topic %q: describe: %w", topic, err)
	}
	if len(md) != 1 || errors.Is(md[0].Err, sarama.ErrUnknownTopicOrPartition) {
		return &TopicMissingError{Topic: topic}
	}
	if !errors.Is(md[0].Err, sarama.ErrNoError) {
		return fmt.Errorf("changelog topic %q: describe: %w", topic, md[0].Err)
	}
	if got := int32(len(md[0].Partitions)); got != partitions {
		return &TopicMismatchError{Topic: topic, Setting: "partitions", Expected: fmt.Sprint(partitions), Actual: fmt.Sprint(got)}
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{
		Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"cleanup.policy"},
	})
	if err != nil {
		return fmt.Errorf("changelog topic %q: describe configs: %w", topic, err)
	}
	policy := "delete" // Kafka's default when the broker does not say
	for _, e := range entries {
		if e.Name == "cleanup.policy" {
			policy = e.Value
		}
	}
	parts := strings.Split(strings.ReplaceAll(policy, " ", ""), ",")
	if !slices.Contains(parts, "compact") {
		return &TopicMismatchError{Topic: topic, Setting: "cleanup.policy", Expected: "compact", Actual: policy}
	}
	return nil
}
