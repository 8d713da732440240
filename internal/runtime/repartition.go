// repartition.go: the repartition topics of a topology — their partition
// counts, their creation at start-up, and purging the records the
// application has consumed and committed.

package runtime

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/task"
)

// repartitionCounts works out the partition count of every repartition
// topic of g, given the counts of the sub-topologies from their other
// source topics (counts[sub] = -1 for a sub-topology that reads only
// internal topics). The rules, as Kafka Streams': a count given at
// declaration wins; else the count of the external topics the reading
// sub-topology is co-partitioned with; else the largest count of the
// sub-topologies that write to the topic. All repartition topics one
// sub-topology reads get one count (they are co-partitioned). counts is
// updated with the resolved sub-topology counts.
func repartitionCounts(g *task.Graph, counts map[int]int32) (map[string]int32, error) {
	out := map[string]int32{}
	writers := map[string][]int{} // topic → sub-topologies with a sink to it
	for _, st := range g.SubTopologies {
		for _, n := range st.Nodes {
			if spec := g.Nodes[n]; spec != nil && spec.Kind == task.Sink && g.IsInternalTopic(spec.SinkTopic) {
				writers[spec.SinkTopic] = append(writers[spec.SinkTopic], st.ID)
			}
		}
	}
	topics := slices.Sorted(maps.Keys(g.Repartitions))
	for _, t := range topics {
		if n := g.Repartitions[t]; n > 0 {
			out[t] = n
		}
	}
	// Settle the readers: a sub-topology's count from its external
	// topics or from an explicit count of one of its repartition topics.
	settle := func() error {
		for _, st := range g.SubTopologies {
			n := counts[st.ID]
			for _, t := range st.SourceTopics {
				c, ok := out[t]
				if !ok {
					continue
				}
				if n > 0 && c != n {
					return fmt.Errorf("brook: repartition topic %q needs %d partitions to be co-partitioned with the other topics of sub-topology %d (%v), which have %d; declare it with that count (topology.WithPartitions)", t, c, st.ID, st.SourceTopics, n)
				}
				n = c
			}
			counts[st.ID] = n
			if n <= 0 {
				continue
			}
			for _, t := range st.SourceTopics {
				if g.IsInternalTopic(t) {
					out[t] = n
				}
			}
		}
		return nil
	}
	// Derive, reader by reader: a sub-topology that reads only
	// repartition topics without a count takes the largest count of the
	// sub-topologies writing to any of them, once all those are known.
	for range len(g.SubTopologies) + 1 {
		if err := settle(); err != nil {
			return nil, err
		}
		progress := false
		for _, st := range g.SubTopologies {
			if counts[st.ID] > 0 {
				continue
			}
			n, known := int32(-1), true
			for _, t := range st.SourceTopics {
				if !g.IsInternalTopic(t) {
					continue
				}
				for _, w := range writers[t] {
					if counts[w] <= 0 {
						known = false
					}
					n = max(n, counts[w])
				}
			}
			if known && n > 0 {
				counts[st.ID], progress = n, true
				for _, t := range st.SourceTopics {
					if g.IsInternalTopic(t) {
						out[t] = n
					}
				}
			}
		}
		if !progress {
			break
		}
	}
	if err := settle(); err != nil {
		return nil, err
	}
	for _, t := range topics {
		if out[t] <= 0 {
			return nil, fmt.Errorf("brook: cannot work out the partition count of repartition topic %q: no co-partitioned input topic, and its writers' counts are unknown (a cycle of repartition topics?); give it one with topology.WithPartitions", t)
		}
	}
	return out, nil
}

// ensureRepartitionTopics creates the repartition topics (or checks the
// existing ones) and fills counts for the sub-topologies that read only
// internal topics.
func (r *Runtime) ensureRepartitionTopics(ctx context.Context, admin sarama.ClusterAdmin, counts map[int]int32, configs map[string]string) error {
	if len(r.cfg.Graph.Repartitions) == 0 {
		return nil
	}
	want, err := repartitionCounts(r.cfg.Graph, counts)
	if err != nil {
		return err
	}
	for _, t := range slices.Sorted(maps.Keys(want)) {
		if err := changelog.EnsureTopic(ctx, admin, changelog.TopicSpec{
			Name: t, Partitions: want[t], ReplicationFactor: r.cfg.ReplicationFactor,
			Configs: configs, Repartition: true,
		}); err != nil {
			return fmt.Errorf("brook: repartition topic: %w", err)
		}
	}
	return nil
}

// DefaultRepartitionPurgeInterval is how often, at most, the runtime
// deletes the consumed and committed records of repartition topics (Kafka
// Streams' repartition.purge.interval.ms default).
const DefaultRepartitionPurgeInterval = 30 * time.Second

// purger remembers the committed offsets of repartition topic partitions
// and deletes the records before them (DeleteRecords) at most every
// RepartitionPurgeInterval. The commit paths of all workers feed it; the
// worker that finds a purge due does it.
type purger struct {
	r       *Runtime
	mu      sync.Mutex
	pending map[string]map[int32]int64
	last    time.Time
	busy    atomic.Bool
}

// note records committed offsets; those of repartition topics become due
// for purging.
func (p *purger) note(offs []task.Offset) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range offs {
		if !p.r.cfg.Graph.IsInternalTopic(o.Topic) {
			continue
		}
		if p.pending == nil {
			p.pending = map[string]map[int32]int64{}
		}
		if p.pending[o.Topic] == nil {
			p.pending[o.Topic] = map[int32]int64{}
		}
		p.pending[o.Topic][o.Partition] = o.Offset
	}
}

// maybePurge deletes the records before the noted offsets when the purge
// interval has passed since the last purge. A failure is logged and
// retried at the next interval: purging only keeps the topic small, and
// the records are committed past either way.
func (p *purger) maybePurge(now time.Time) {
	if !p.busy.CompareAndSwap(false, true) {
		return // another worker is purging
	}
	defer p.busy.Store(false)
	p.mu.Lock()
	if p.last.IsZero() {
		// The first purge is one interval after the first commit, not at
		// it (Kafka Streams counts from the thread's start too): records
		// just consumed stay readable for a while, e.g. for an audit
		// following lineage headers.
		p.last = now
	}
	if len(p.pending) == 0 || now.Sub(p.last) < p.r.cfg.RepartitionPurgeInterval {
		p.mu.Unlock()
		return
	}
	p.last = now
	due := p.pending
	p.pending = nil
	p.mu.Unlock()
	admin, err := sarama.NewClusterAdminFromClient(p.r.client)
	if err != nil {
		p.r.log.Warn("brook: purge repartition topics: admin", "action", "purging is retried at the next interval; if this persists, allow DeleteRecords on the repartition topics", "err", err)
		p.renote(due)
		return
	}
	// Not closed: closing the admin would close the shared client.
	for _, t := range slices.Sorted(maps.Keys(due)) {
		if err := admin.DeleteRecords(t, due[t]); err != nil {
			p.r.log.Warn("brook: purge repartition topic", "action", "purging is retried at the next interval; if this persists, allow DeleteRecords on the repartition topics", "topic", t, "err", err)
			p.renote(map[string]map[int32]int64{t: due[t]})
			continue
		}
		p.r.log.Debug("brook: purged repartition topic", "topic", t, "offsets", due[t])
	}
}

// renote puts offsets whose purge failed back, unless newer ones came.
func (p *purger) renote(due map[string]map[int32]int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == nil {
		p.pending = map[string]map[int32]int64{}
	}
	for t, offs := range due {
		if p.pending[t] == nil {
			p.pending[t] = map[int32]int64{}
		}
		for part, off := range offs {
			if cur, ok := p.pending[t][part]; !ok || cur < off {
				p.pending[t][part] = off
			}
		}
	}
}
