// lag.go: where the input partitions of the open tasks stand against
// their end offsets: the end offsets themselves (ListOffsets: the high
// watermark, or the last stable offset under read_committed), what lies
// between a task's position and the end (tailEmpty), the lag the metrics
// and the query API report, and the caught-up check (App.CaughtUp).

package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/store"
)

// endCache remembers the end offsets last listed (by the monitor, or by a
// task's gap probe), and the last tail probe of each partition.
type endCache struct {
	mu    sync.Mutex
	ends  map[tpKey]int64
	tails map[tpKey]tailProbe
}

// tailProbe is what a probe found about the offsets [from, to) of a
// partition: empty means none of them holds a record a consumer receives
// (only transaction markers, or aborted records under read_committed).
type tailProbe struct {
	from, to int64
	empty    bool
}

func (c *endCache) end(k tpKey) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.ends[k]
	return e, ok
}

func (c *endCache) setEnds(ends map[tpKey]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ends == nil {
		c.ends = map[tpKey]int64{}
	}
	for k, e := range ends {
		c.ends[k] = e
	}
}

// knownEmpty reports whether a probe found [from, to) empty.
func (c *endCache) knownEmpty(k tpKey, from, to int64) (empty, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.tails[k]
	if !ok || p.from != from || p.to != to {
		return false, false
	}
	return p.empty, true
}

func (c *endCache) setTail(k tpKey, p tailProbe) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tails == nil {
		c.tails = map[tpKey]tailProbe{}
	}
	c.tails[k] = p
}

// liveClient returns the client of a running Run, or nil.
func (r *Runtime) liveClient() sarama.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shared
}

// listEnds lists the end offsets of tps (the high watermark, or the last
// stable offset under read_committed): one ListOffsets request per leader,
// again for the partitions whose leader moved. It returns what it could
// list and an error naming a partition it could not.
func (r *Runtime) listEnds(ctx context.Context, client sarama.Client, tps []tpKey) (map[tpKey]int64, error) {
	out := make(map[tpKey]int64, len(tps))
	left := slices.Clone(tps)
	var last error
	for attempt := 0; attempt < 3 && len(left) > 0; attempt++ {
		if attempt > 0 {
			topics := map[string]bool{}
			for _, k := range left {
				topics[k.topic] = true
			}
			for t := range topics {
				_ = client.RefreshMetadata(t) // a failure shows below
			}
			if !sleepCtx(ctx, time.Duration(attempt)*100*time.Millisecond) {
				return out, ctx.Err()
			}
		}
		byLeader := map[*sarama.Broker][]tpKey{}
		var retry []tpKey
		for _, k := range left {
			b, err := client.Leader(k.topic, k.partition)
			if err != nil {
				last = fmt.Errorf("%s[%d]: leader: %w", k.topic, k.partition, err)
				retry = append(retry, k)
				continue
			}
			byLeader[b] = append(byLeader[b], k)
		}
		for b, ks := range byLeader {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			req := sarama.NewOffsetRequest(r.cfg.Sarama.Version)
			if req.Version >= 2 {
				req.IsolationLevel = r.cfg.Sarama.Consumer.IsolationLevel
			}
			for _, k := range ks {
				req.AddBlock(k.topic, k.partition, sarama.OffsetNewest, 1)
			}
			resp, err := b.GetAvailableOffsets(req)
			if err != nil {
				last = fmt.Errorf("list offsets at broker %d: %w", b.ID(), err)
				retry = append(retry, ks...)
				continue
			}
			for _, k := range ks {
				blk := resp.GetBlock(k.topic, k.partition)
				switch {
				case blk == nil || blk.Err == sarama.ErrNoError && len(blk.Offsets) == 0:
					last = fmt.Errorf("%s[%d]: %w", k.topic, k.partition, sarama.ErrIncompleteResponse)
					retry = append(retry, k)
				case blk.Err != sarama.ErrNoError:
					last = fmt.Errorf("%s[%d]: %w", k.topic, k.partition, blk.Err)
					retry = append(retry, k)
				default:
					out[k] = blk.Offsets[0]
				}
			}
		}
		left = retry
	}
	if len(left) > 0 {
		return out, fmt.Errorf("brook: end offsets: %w", last)
	}
	return out, nil
}

// errVisible stops a tail probe at the first record a consumer receives.
var errVisible = errors.New("a record to process")

// tailEmpty reports whether the offsets [from, to) of a partition hold no
// record a consumer of the application receives: only transaction markers
// (and, under read_committed, aborted records). A consumer skips those
// without saying so, so a task's position can stay below an end offset
// that it has in fact reached; this reads the partition itself to tell.
// An offset below the log start (deleted by retention) counts from the
// log start.
func (r *Runtime) tailEmpty(ctx context.Context, client sarama.Client, k tpKey, from, to int64) (bool, error) {
	if from >= to {
		return true, nil
	}
	if empty, known := r.ends.knownEmpty(k, from, to); known {
		return empty, nil
	}
	rd := changelog.NewReader(client, k.topic, k.partition, r.cfg.Sarama.Consumer.IsolationLevel)
	rd.MaxBytes = 1 << 20
	rd.Retries = 3
	read := func(from int64) error {
		return rd.Read(ctx, from, to, func(recs []store.ChangelogRecord) error {
			if len(recs) > 0 {
				return errVisible
			}
			return nil
		})
	}
	err := read(from)
	if errors.Is(err, store.ErrChangelogTruncated) {
		begin, berr := rd.BeginOffset(ctx)
		if berr != nil {
			return false, berr
		}
		err = read(max(begin, from))
	}
	switch {
	case errors.Is(err, errVisible):
		r.ends.setTail(k, tailProbe{from: from, to: to, empty: false})
		return false, nil
	case err != nil:
		return false, err
	}
	r.ends.setTail(k, tailProbe{from: from, to: to, empty: true})
	return true, nil
}

// gapProber returns the probe of task id's queue q (recordQueue.probe):
// each call reads, in a goroutine of its own that ends with ctx (the
// session's), whether the partition's offsets from from on hold a record
// (gapEmpty), and tells q.
func (r *Runtime) gapProber(ctx context.Context, id assign.TaskID, q *recordQueue) gapProbe {
	return func(topic string, partition int32, from int64) {
		r.probes.Add(1)
		go func() {
			defer r.probes.Done()
			k := tpKey{topic, partition}
			empty, err := r.gapEmpty(ctx, k, from)
			if ctx.Err() != nil {
				return // the session is over, and the queue with it
			}
			if q.probed(topic, partition, from, empty, err, time.Now()) {
				r.log.Warn("brook: cannot read a partition's unfetched offsets; its task holds its other partitions' records back until they are read or fetched",
					"action", "check that the brokers are reachable and the partition has a leader: the task waits (it skips nothing) and retries every second",
					"task", id.String(), "topic", topic, "partition", partition, "offset", from, "err", err)
			}
		}()
	}
}

// gapEmpty reports whether the offsets of partition k from from on, up to
// its end offset now (the high watermark, or the last stable offset under
// read_committed: the end a consumer of the application can reach), hold
// no record such a consumer receives (tailEmpty).
func (r *Runtime) gapEmpty(ctx context.Context, k tpKey, from int64) (bool, error) {
	ends, err := r.listEnds(ctx, r.client, []tpKey{k})
	r.ends.setEnds(ends)
	if err != nil {
		return false, err
	}
	return r.tailEmpty(ctx, r.client, k, from, ends[k])
}

// inputState is where one input partition of an open task stands.
type inputState struct {
	task     assign.TaskID
	key      tpKey
	position int64 // next offset to process; -1 unknown
	head     int64 // offset of the first buffered record; -1 none
	// committed is the last committed offset; -1 unknown.
	committed int64
	// hwm is the high watermark the partition's claim last reported
	// (-1 unknown).
	hwm int64
}

// openInputs returns the input partitions of the published tasks, where
// their claims have started.
func (r *Runtime) openInputs() []inputState {
	q := &r.queries
	q.mu.RLock()
	tasks := make([]*queryTask, 0, len(q.tasks))
	for _, qt := range q.tasks {
		tasks = append(tasks, qt)
	}
	q.mu.RUnlock()
	var out []inputState
	for _, qt := range tasks {
		qt.mu.Lock()
		claims := slices.Clone(qt.claims)
		qt.mu.Unlock()
		for _, c := range claims {
			k := tpKey{c.Topic(), c.Partition()}
			st, ok := qt.tr.queue.inspect(k)
			if !ok {
				continue
			}
			st.task, st.key, st.hwm = qt.tr.id, k, c.HighWaterMarkOffset()
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b inputState) int {
		if c := strings.Compare(a.key.topic, b.key.topic); c != 0 {
			return c
		}
		return int(a.key.partition - b.key.partition)
	})
	return out
}

// inspect returns where partition k of the queue stands.
func (q *recordQueue) inspect(k tpKey) (inputState, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.parts[k]
	if f == nil || !f.tracked {
		return inputState{}, false
	}
	st := inputState{position: f.done.Load(), head: -1, committed: f.committed.Load()}
	if st.position == 0 {
		st.position = max(f.start, 0)
	}
	if f.len() > 0 {
		st.head = f.msgs[f.head].Offset
	}
	return st, true
}

// remaining is how many offsets of the partition in st are left before
// end, as far as is known without reading the partition: 0 when the
// position has reached end or the first buffered record lies at or past
// it (a consumer receives every record it can in order, so the offsets
// between hold none); otherwise end − position, and probe says that the
// gap may hold only markers (the queue is empty), which tailEmpty can
// tell.
func (st inputState) remaining(end int64) (n int64, probe bool) {
	switch {
	case st.position < 0 || end < 0:
		return -1, false
	case st.position >= end:
		return 0, false
	case st.head >= 0 && st.head >= end:
		return 0, false
	case st.head >= 0:
		return end - st.position, false
	}
	return end - st.position, true
}

// endOf is the end offset to measure the lag of st against: the one the
// monitor listed last, or the claim's high watermark when it is newer and
// the application reads uncommitted (under read_committed the high
// watermark may lie past records of open transactions, which are not
// readable yet). Before the monitor listed any (or without metrics) it
// is the claim's high watermark.
func (r *Runtime) endOf(st inputState) int64 {
	end, ok := r.ends.end(st.key)
	if !ok || r.cfg.Sarama.Consumer.IsolationLevel != sarama.ReadCommitted && st.hwm > end {
		end = st.hwm
	}
	return end
}

// lagOf returns the lag and the committed lag of st (-1: unknown), using
// only what is cached: the monitor probes tails (probeTails).
func (r *Runtime) lagOf(st inputState) (end, lag, committedLag int64) {
	end = r.endOf(st)
	if end < 0 {
		return -1, -1, -1
	}
	lag, probe := st.remaining(end)
	if probe {
		if empty, known := r.ends.knownEmpty(st.key, st.position, end); known && empty {
			lag = 0
		}
	}
	committedLag = -1
	if st.committed >= 0 {
		committedLag = max(end-st.committed, 0)
		if st.committed == st.position && lag == 0 {
			committedLag = 0
		}
	}
	return end, lag, committedLag
}

// refreshLag lists the end offsets of the open tasks' input partitions
// and probes the tails that need it, for the metrics' lag gauges.
func (r *Runtime) refreshLag(ctx context.Context, client sarama.Client) {
	inputs := r.openInputs()
	if len(inputs) == 0 {
		return
	}
	keys := make([]tpKey, len(inputs))
	for i, st := range inputs {
		keys[i] = st.key
	}
	ends, err := r.listEnds(ctx, client, keys)
	r.ends.setEnds(ends)
	if err != nil && ctx.Err() == nil {
		r.log.Debug("brook: metrics: end offsets not listed; lag gauges keep their last values", "err", err)
	}
	for _, st := range inputs {
		end := r.endOf(st)
		if _, probe := st.remaining(end); !probe || ctx.Err() != nil {
			continue
		}
		if _, err := r.tailEmpty(ctx, client, st.key, st.position, end); err != nil && ctx.Err() == nil {
			r.log.Debug("brook: metrics: tail of a partition not read", "topic", st.key.topic, "partition", st.key.partition, "err", err)
		}
	}
}
