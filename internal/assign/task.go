package assign

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// TaskID names a task: one partition number of one sub-topology. The task
// covers that partition of every co-partitioned source topic of the
// sub-topology.
type TaskID struct {
	// Group is the sub-topology id.
	Group int32
	// Partition is the partition number, the same in every source topic
	// of the sub-topology.
	Partition int32
}

// String formats the task as Kafka Streams does: "<group>_<partition>".
func (t TaskID) String() string {
	return strconv.FormatInt(int64(t.Group), 10) + "_" + strconv.FormatInt(int64(t.Partition), 10)
}

// Compare orders tasks by group, then partition. It returns -1, 0 or +1.
func (t TaskID) Compare(o TaskID) int {
	if c := cmp.Compare(t.Group, o.Group); c != 0 {
		return c
	}
	return cmp.Compare(t.Partition, o.Partition)
}

// TaskGroup is the shape of one sub-topology as the assignor sees it: its
// id and its co-partitioned source topics. Every source topic of a
// sub-topology must have the same number of partitions; partition p of all
// of them forms task (ID, p).
type TaskGroup struct {
	// ID identifies the sub-topology; unique within a topology, >= 0.
	ID int32
	// Topics are the sub-topology's source topics; at least one, and a
	// topic belongs to one group only.
	Topics []string
	// Stateless says the sub-topology has no state to restore (no store
	// with a changelog): its tasks get no standbys and no warm-ups, and
	// every member is caught up for them.
	Stateless bool
}

// ErrInvalidGroups is wrapped by the errors NewStrategy returns for a
// topology shape the assignor cannot work with.
var ErrInvalidGroups = errors.New("assign: invalid task groups")

// groupSet is the validated, sorted topology shape.
type groupSet struct {
	groups    []TaskGroup      // sorted by ID, topics sorted
	byTopic   map[string]int32 // topic -> group id
	topicAt   map[string]int   // topic -> its index in its group's sorted Topics
	stateless map[int32]bool   // the Stateless groups
}

func newGroupSet(groups []TaskGroup) (groupSet, error) {
	gs := groupSet{byTopic: make(map[string]int32), topicAt: make(map[string]int), stateless: make(map[int32]bool)}
	if len(groups) == 0 {
		return gs, fmt.Errorf("%w: no task groups", ErrInvalidGroups)
	}
	seen := make(map[int32]bool, len(groups))
	for _, g := range groups {
		if g.ID < 0 {
			return gs, fmt.Errorf("%w: sub-topology id %d is negative", ErrInvalidGroups, g.ID)
		}
		if seen[g.ID] {
			return gs, fmt.Errorf("%w: sub-topology id %d appears twice", ErrInvalidGroups, g.ID)
		}
		seen[g.ID] = true
		if len(g.Topics) == 0 {
			return gs, fmt.Errorf("%w: sub-topology %d has no source topics", ErrInvalidGroups, g.ID)
		}
		topics := slices.Clone(g.Topics)
		slices.Sort(topics)
		for i, t := range topics {
			if strings.TrimSpace(t) == "" {
				return gs, fmt.Errorf("%w: sub-topology %d has an empty topic name", ErrInvalidGroups, g.ID)
			}
			if i > 0 && topics[i-1] == t {
				return gs, fmt.Errorf("%w: sub-topology %d lists topic %q twice", ErrInvalidGroups, g.ID, t)
			}
			if other, ok := gs.byTopic[t]; ok {
				return gs, fmt.Errorf("%w: topic %q is a source of sub-topologies %d and %d", ErrInvalidGroups, t, other, g.ID)
			}
			gs.byTopic[t] = g.ID
		}
		for i, t := range topics {
			gs.topicAt[t] = i
		}
		gs.groups = append(gs.groups, TaskGroup{ID: g.ID, Topics: topics, Stateless: g.Stateless})
		if g.Stateless {
			gs.stateless[g.ID] = true
		}
	}
	slices.SortFunc(gs.groups, func(a, b TaskGroup) int { return cmp.Compare(a.ID, b.ID) })
	return gs, nil
}

func (gs groupSet) group(id int32) (TaskGroup, bool) {
	i, ok := slices.BinarySearchFunc(gs.groups, id, func(g TaskGroup, id int32) int { return cmp.Compare(g.ID, id) })
	if !ok {
		return TaskGroup{}, false
	}
	return gs.groups[i], true
}

// PartitionCountError reports co-partitioned source topics of one
// sub-topology whose partition counts differ. Fix it by giving the topics
// the same number of partitions (or by repartitioning one of them).
type PartitionCountError struct {
	// Group is the sub-topology id.
	Group int32
	// Partitions maps each source topic of the sub-topology to its
	// partition count.
	Partitions map[string]int
}

func (e *PartitionCountError) Error() string {
	topics := make([]string, 0, len(e.Partitions))
	for t := range e.Partitions {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	var b strings.Builder
	fmt.Fprintf(&b, "assign: co-partitioned source topics of sub-topology %d have different partition counts:", e.Group)
	for i, t := range topics {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s has %d", t, e.Partitions[t])
	}
	return b.String()
}

// MissingTopicsError reports source topics of a sub-topology that no group
// member subscribed to while others of the same sub-topology were: the
// co-partitioned task cannot be formed. It means the members run
// topologies of different shapes, or a member subscribed to only part of
// its sources.
type MissingTopicsError struct {
	// Group is the sub-topology id.
	Group int32
	// Missing are the source topics nobody subscribed to.
	Missing []string
}

func (e *MissingTopicsError) Error() string {
	return fmt.Sprintf("assign: no group member subscribes to %s, co-partitioned sources of sub-topology %d",
		strings.Join(e.Missing, ", "), e.Group)
}

// IncompleteTaskError reports claims that hold some but not all partitions
// of a task.
type IncompleteTaskError struct {
	// Task is the task whose partitions are split.
	Task TaskID
	// Missing are the source topics whose partition Task.Partition is not
	// in the claims.
	Missing []string
}

func (e *IncompleteTaskError) Error() string {
	return fmt.Sprintf("assign: claims hold task %s without partition %d of %s",
		e.Task, e.Task.Partition, strings.Join(e.Missing, ", "))
}
