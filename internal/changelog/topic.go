package changelog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// TopicMismatchError reports an existing changelog topic whose partition
// count, cleanup policy, replication factor or min.insync.replicas is not
// what its store (or the configuration) needs. Fix the topic (or delete it
// and its local state) before starting the application.
type TopicMismatchError struct {
	// Topic is the changelog topic.
	Topic string
	// Setting is "partitions", "cleanup.policy", "replication.factor"
	// (with the partition in Actual when one partition differs) or
	// "min.insync.replicas".
	Setting string
	// Expected and Actual are the wanted and found values.
	Expected string
	Actual   string
}

// Error implements error.
func (e *TopicMismatchError) Error() string {
	return fmt.Sprintf("changelog: topic %q has %s=%s, expected %s", e.Topic, e.Setting, e.Actual, e.Expected)
}

// TopicMissingError reports a topic that should exist but does not (for
// example a source topic declared as a store's changelog).
type TopicMissingError struct {
	Topic string
}

// Error implements error.
func (e *TopicMissingError) Error() string {
	return fmt.Sprintf("changelog: topic %q does not exist", e.Topic)
}

// TopicSpec describes a changelog topic.
type TopicSpec struct {
	// Name is the topic, normally store.ChangelogTopic(appID, store).
	Name string
	// Partitions must equal the partition count of the store's task
	// sources.
	Partitions int32
	// ReplicationFactor for a new topic; 0 or -1 means the broker's
	// default. When positive, an existing topic must have it too.
	ReplicationFactor int16
	// Retention, if positive, makes a new topic "compact,delete" with
	// this retention.ms: the changelog of a window store, whose expired
	// segments are dropped locally without tombstones. Give it at least
	// the store's retention.
	Retention time.Duration
	// Configs are extra topic configs for a new topic (for example
	// min.insync.replicas). cleanup.policy is set by EnsureTopic. An
	// existing topic must have the min.insync.replicas given here.
	Configs map[string]string
	// Repartition makes the topic a repartition topic instead of a
	// changelog: cleanup.policy=delete with unlimited retention
	// (retention.ms=-1; the application deletes what it has consumed).
	// An existing one must not be compacted (compaction would drop
	// records of the same key before they are read).
	Repartition bool
}

// EnsureTopic creates the changelog topic compacted with spec.Partitions
// partitions, or, if it exists, checks it with ValidateTopic and against
// spec's replication factor and min.insync.replicas. It stops waiting and
// retrying when ctx ends.
func EnsureTopic(ctx context.Context, admin sarama.ClusterAdmin, spec TopicSpec) error {
	if spec.Partitions <= 0 {
		return fmt.Errorf("changelog: topic %q: partition count %d must be positive", spec.Name, spec.Partitions)
	}
	entries := map[string]*string{}
	for k, v := range spec.Configs {
		entries[k] = &v
	}
	policy := "compact"
	if spec.Repartition {
		policy = "delete"
		unlimited := "-1"
		entries["retention.ms"] = &unlimited
	} else if spec.Retention > 0 {
		policy = "compact,delete"
		ms := strconv.FormatInt(spec.Retention.Milliseconds(), 10)
		entries["retention.ms"] = &ms
	}
	entries["cleanup.policy"] = &policy
	rf := spec.ReplicationFactor
	if rf <= 0 {
		rf = -1 // broker default (KIP-464)
	}
	for start := time.Now(); ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := admin.CreateTopic(spec.Name, &sarama.TopicDetail{
			NumPartitions: spec.Partitions, ReplicationFactor: rf, ConfigEntries: entries,
		}, false)
		if err == nil || errors.Is(err, sarama.ErrTopicAlreadyExists) {
			break
		}
		// A busy or just-started broker may answer with a retriable error.
		if !retriableCreate(err) || time.Since(start) > topicWait {
			return fmt.Errorf("changelog: topic %q: create: %w", spec.Name, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	// A topic just created (by us or by another instance racing us) takes
	// a moment to appear in metadata: wait for it before validating.
	deadline := time.Now().Add(topicWait)
	for {
		err := validateTopic(admin, spec)
		var missing *TopicMissingError
		if !errors.As(err, &missing) || time.Now().After(deadline) {
			return err
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// sleep waits d or until ctx ends (giving ctx's error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
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
	return validateTopic(admin, TopicSpec{Name: topic, Partitions: partitions})
}

// validateTopic is ValidateTopic plus spec's replication factor (when
// positive) and min.insync.replicas (when in spec.Configs).
func validateTopic(admin sarama.ClusterAdmin, spec TopicSpec) error {
	topic := spec.Name
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return fmt.Errorf("changelog: topic %q: describe: %w", topic, err)
	}
	if len(md) != 1 || errors.Is(md[0].Err, sarama.ErrUnknownTopicOrPartition) {
		return &TopicMissingError{Topic: topic}
	}
	if !errors.Is(md[0].Err, sarama.ErrNoError) {
		return fmt.Errorf("changelog: topic %q: describe: %w", topic, md[0].Err)
	}
	if got := int32(len(md[0].Partitions)); got != spec.Partitions {
		return &TopicMismatchError{Topic: topic, Setting: "partitions", Expected: fmt.Sprint(spec.Partitions), Actual: fmt.Sprint(got)}
	}
	if rf := spec.ReplicationFactor; rf > 0 {
		ps := slices.Clone(md[0].Partitions)
		slices.SortFunc(ps, func(a, b *sarama.PartitionMetadata) int { return int(a.ID) - int(b.ID) })
		for _, p := range ps {
			if len(p.Replicas) != int(rf) {
				return &TopicMismatchError{Topic: topic, Setting: "replication.factor", Expected: fmt.Sprint(rf),
					Actual: fmt.Sprintf("%d (partition %d)", len(p.Replicas), p.ID)}
			}
		}
	}
	names := []string{"cleanup.policy"}
	wantISR, checkISR := spec.Configs["min.insync.replicas"]
	if checkISR {
		names = append(names, "min.insync.replicas")
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: names})
	if err != nil {
		return fmt.Errorf("changelog: topic %q: describe configs: %w", topic, err)
	}
	policy := "delete" // Kafka's default when the broker does not say
	isr := ""
	for _, e := range entries {
		switch e.Name {
		case "cleanup.policy":
			policy = e.Value
		case "min.insync.replicas":
			isr = e.Value
		}
	}
	switch {
	case spec.Repartition && HasCompact(policy):
		return &TopicMismatchError{Topic: topic, Setting: "cleanup.policy", Expected: "delete", Actual: policy}
	case !spec.Repartition && !HasCompact(policy):
		return &TopicMismatchError{Topic: topic, Setting: "cleanup.policy", Expected: "compact", Actual: policy}
	}
	if checkISR && isr != wantISR {
		if isr == "" {
			isr = "(not reported by the broker)"
		}
		return &TopicMismatchError{Topic: topic, Setting: "min.insync.replicas", Expected: wantISR, Actual: isr}
	}
	return nil
}

// HasCompact reports whether a cleanup.policy value includes compact.
func HasCompact(policy string) bool {
	return slices.Contains(strings.Split(strings.ReplaceAll(policy, " ", ""), ","), "compact")
}
