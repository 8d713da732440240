package assign

import (
	"fmt"
	"slices"

	"github.com/IBM/sarama"
)

// Cooperative rebalancing (KIP-429). A member on sarama's cooperative
// protocol keeps its partitions while the group rebalances and reports
// them in its subscription (ConsumerGroupMemberMetadata.OwnedPartitions);
// after the assignment it gives up those its new assignment leaves out
// and, having given up any, rejoins at once. An eager member gives up
// everything before it joins and reports nothing.
//
// The leader must therefore never hand a partition to a new owner in the
// round in which another member still holds it: both would run the task
// until the old owner has revoked it. Plan withholds such a task from its
// planned owner for this round (withhold): the old owner's new assignment
// no longer lists it, so it revokes it and rejoins, and the follow-up
// round assigns the task, now held by nobody, to its target. sarama does
// this for its own cooperative-sticky strategy only
// (adjustCooperativeAssignment); a custom strategy must do it itself.
// brook withholds whole tasks, never some of a task's partitions, since a
// task's partitions must run together.

// holding is one member's hold on a task.
type holding struct {
	member string
	// topics are the indexes, into the sub-topology's sorted Topics, of
	// the source topics whose partition of the task the member holds,
	// ascending; nil when it holds all of them (the usual case).
	topics []int
}

// holds reports whether h covers topic index i.
func (h holding) holds(i int) bool {
	if h.topics == nil {
		return true
	}
	_, ok := slices.BinarySearch(h.topics, i)
	return ok
}

// heldTask is one task a member holds partitions of; topics as in holding.
type heldTask struct {
	t      TaskID
	topics []int
}

// heldPartition is one partition a member holds: its task and the index
// of its topic in the sub-topology's sorted Topics.
type heldPartition struct {
	t     TaskID
	topic int
}

// heldTasks reads the partitions a member reports owning as tasks of this
// plan (partitions maps each planned sub-topology to its task count),
// ascending. Partitions of other topics or beyond the count belong to no
// task of this plan and are left out. scratch is reused between calls.
func (s *Strategy) heldTasks(owned []*sarama.OwnedPartition, partitions map[int32]int32, scratch *[]heldPartition) []heldTask {
	ps := (*scratch)[:0]
	for _, op := range owned {
		if op == nil {
			continue
		}
		g, ok := s.groups.byTopic[op.Topic]
		if !ok {
			continue
		}
		n, planned := partitions[g]
		if !planned {
			continue
		}
		at := s.groups.topicAt[op.Topic]
		for _, p := range op.Partitions {
			if p >= 0 && p < n {
				ps = append(ps, heldPartition{TaskID{Group: g, Partition: p}, at})
			}
		}
	}
	*scratch = ps
	if len(ps) == 0 {
		return nil
	}
	slices.SortFunc(ps, func(a, b heldPartition) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return a.topic - b.topic
	})
	ps = slices.Compact(ps)
	var out []heldTask
	for i := 0; i < len(ps); {
		j := i + 1
		for j < len(ps) && ps[j].t == ps[i].t {
			j++
		}
		h := heldTask{t: ps[i].t}
		if g, _ := s.groups.group(h.t.Group); j-i < len(g.Topics) {
			// Only some of the task's topics: a task split, which brook
			// never assigns; kept exactly so that nobody else gets them.
			for _, p := range ps[i:j] {
				h.topics = append(h.topics, p.topic)
			}
		}
		out = append(out, h)
		i = j
	}
	return out
}

// withhold removes from active (member -> tasks, ascending) every task
// that another member still holds: a task planned on member B is withheld
// when some member A other than B holds a partition of it that B does
// not hold itself (B holding the same partitions, which only a stale
// member can cause, does not stop B from keeping what it runs). held
// lists, per member, the tasks it reports holding (ascending), and
// topicsOf a sub-topology's number of source topics. It returns, per
// member, the tasks withheld from it (ascending), and their number.
//
// Only tasks that a holder is giving up (held, but not in its plan) can
// be withheld, so those are collected first: a handful in most plans,
// which keeps the check per planned task to a look-up in a small map.
func withhold(active map[string][]TaskID, held map[string][]heldTask, topicsOf func(int32) int) (map[string][]TaskID, int) {
	var leaving map[TaskID][]holding
	for id, own := range held {
		planned := active[id]
		j := 0
		for _, h := range own {
			for j < len(planned) && planned[j].Compare(h.t) < 0 {
				j++
			}
			if j < len(planned) && planned[j] == h.t {
				continue
			}
			if leaving == nil {
				leaving = make(map[TaskID][]holding)
			}
			leaving[h.t] = append(leaving[h.t], holding{member: id, topics: h.topics})
		}
	}
	if len(leaving) == 0 {
		return nil, 0
	}
	var withheld map[string][]TaskID
	n := 0
	for id, tasks := range active {
		var kept []TaskID
		cut := false
		for i, t := range tasks {
			if hs := leaving[t]; len(hs) > 0 && heldElsewhere(hs, held[id], t, topicsOf(t.Group)) {
				if !cut {
					// A new slice: active's may be shared with balance's result.
					kept, cut = slices.Clone(tasks[:i]), true
				}
				if withheld == nil {
					withheld = make(map[string][]TaskID)
				}
				withheld[id] = append(withheld[id], t)
				n++
			} else if cut {
				kept = append(kept, t)
			}
		}
		if cut {
			active[id] = kept
		}
	}
	return withheld, n
}

// heldElsewhere reports whether one of others (members giving task t up)
// holds a partition of t, whose sub-topology has topics source topics,
// that the member holding own (its held tasks, ascending) does not.
func heldElsewhere(others []holding, own []heldTask, t TaskID, topics int) bool {
	mine := holding{topics: []int{}} // nothing held
	if i, ok := slices.BinarySearchFunc(own, t, func(h heldTask, t TaskID) int { return h.t.Compare(t) }); ok {
		mine.topics = own[i].topics
	}
	for _, h := range others {
		for i := range topics {
			if h.holds(i) && !mine.holds(i) {
				return true
			}
		}
	}
	return false
}

// reconcileOwned checks a member's tasks by its brook data (d.Owned, the
// tasks of the last assignment it received) against those it reports
// owning by the protocol (own, from OwnedPartitions, not empty). On
// sarama's cooperative protocol they are the same: the member holds
// exactly the partitions of its last assignment. They differ when the
// member could not read its last assignment, or after a failed SyncGroup
// that sarama retries (then only the generations differ). The protocol is
// the truth for what the member runs now, so tasks it holds are added to
// its claims (balance then keeps them there when it can, which avoids a
// revocation) at the generation it reports holding them in when that is
// newer; tasks only its brook data lists stay claims too, as for an eager
// member (its state is warm). Both differences are logged.
func (s *Strategy) reconcileOwned(id string, d *MemberData, own []heldTask, generation int32, partitions map[int32]int32) {
	var extra []TaskID
	missing := 0
	i := 0
	for _, h := range own {
		for i < len(d.Owned) && d.Owned[i].Compare(h.t) < 0 {
			if d.Owned[i].Partition < partitions[d.Owned[i].Group] {
				missing++
			}
			i++
		}
		if i < len(d.Owned) && d.Owned[i] == h.t {
			i++
			continue
		}
		extra = append(extra, h.t)
	}
	for ; i < len(d.Owned); i++ {
		if d.Owned[i].Partition < partitions[d.Owned[i].Group] {
			missing++
		}
	}
	if len(extra) > 0 {
		d.Owned = slices.Concat(d.Owned, extra)
		slices.SortFunc(d.Owned, TaskID.Compare)
		d.Generation = max(d.Generation, generation)
	}
	if len(extra) > 0 || missing > 0 {
		s.log.Warn("brook assignor: a member's brook data and the partitions it reports owning name different tasks; planning with both",
			"action", "none needed if it follows an error reading an assignment on that member",
			"member", id, "held_not_listed", len(extra), "first_held_not_listed", fmt.Sprint(extra[:min(len(extra), 8)]),
			"listed_not_held", missing)
	}
}
