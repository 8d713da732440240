// status.go: what the status page (package query, Status) reads of a
// running instance that the runtime does not already publish: per input
// partition the committed offset, the position and the log end offset
// (PartitionStatus), the last restore of each store partition
// (RestoreHistory), the size of each store (StoreSizes) and the recent
// warnings of the instance's log (RecentWarnings, recentlog.go). Everything here is
// computed on demand, when the status is asked for; the per-record path
// is untouched (the committed offsets are noted once per commit).

package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/store"
)

// PartitionStatus is where one input partition of an open task stands.
type PartitionStatus struct {
	// Task is the task that reads the partition.
	Task      assign.TaskID
	Topic     string
	Partition int32
	// Committed is the group's committed offset (the next offset a new
	// owner would process): the last one this instance committed, or the
	// one the task started from; -1 when the group has none yet.
	Committed int64
	// Position is the offset of the next record the task will process
	// (the end when only markers lie before it: skipMarkerTails).
	Position int64
	// End is the log end offset: the high watermark, or under
	// exactly-once the last stable offset (records of open transactions
	// are not readable yet). EndKind says which, and where it came from.
	End     int64
	EndKind string
	// Lag is End - Position, never negative.
	Lag int64
}

// The EndKind values of PartitionStatus.
const (
	// EndHighWatermark: the high watermark, listed on demand.
	EndHighWatermark = "high_watermark"
	// EndLastStableOffset: the last stable offset (read_committed),
	// listed on demand.
	EndLastStableOffset = "last_stable_offset"
	// EndLastFetch: listing the offsets failed; the high watermark of the
	// consumer's last fetch response (it may be old while the partition
	// is held back, and under exactly-once it counts open transactions).
	EndLastFetch = "last_fetch"
)

// endCacheFor is how long listed end offsets are reused: status pages
// poll every second or two, possibly several at once, and need not make
// the brokers answer each of them.
const endCacheFor = 500 * time.Millisecond

// statusBook holds what the status keeps between calls: the listed end
// offsets (a short cache), the last restore progress of each store
// partition, and the log's recent warnings. Its zero value is ready.
type statusBook struct {
	mu     sync.Mutex
	ends   map[tpKey]int64
	endsAt time.Time
	// listing is closed when the listing under way ends (nil: none);
	// listErr is the last listing's error.
	listing chan struct{}
	listErr error
	// probes are the last look between a partition's position and its
	// end (skipMarkerTails).
	probes   map[tpKey]statusProbe
	restores map[restoreKey]store.RestoreProgress
	recent   recentLog
}

// noteRestore keeps the latest restore progress of a store partition for
// RestoreHistory (called from the restore listener).
func (r *Runtime) noteRestore(p store.RestoreProgress) {
	b := &r.status
	b.mu.Lock()
	if b.restores == nil {
		b.restores = map[restoreKey]store.RestoreProgress{}
	}
	b.restores[restoreKey{p.Store, p.Partition}] = p
	b.mu.Unlock()
}

// PartitionStatus returns, for each input partition of the tasks open
// here, its committed offset, position, log end offset and lag, sorted
// by task, topic and partition. The end offsets are listed from the
// partitions' leaders (at most once per endCacheFor); when that fails,
// they are the last fetch's high watermarks (EndLastFetch) and the error
// says why. A partition whose position is not known yet (no record
// processed and no committed offset) is placed at the log start offset.
func (r *Runtime) PartitionStatus(ctx context.Context) ([]PartitionStatus, error) {
	// Where each partition stands is what the metrics' lag reads too
	// (openInputs): the committed offset and the offset after the last
	// record the task processed.
	var out []PartitionStatus
	for _, st := range r.openInputs() {
		ps := PartitionStatus{Task: st.task, Topic: st.key.topic, Partition: st.key.partition,
			Committed: st.committed, Position: st.position, End: st.hwm, EndKind: EndLastFetch}
		if ps.Position <= 0 && ps.Committed < 0 {
			ps.Position = -1 // nothing processed or committed: the log start (fillEnds)
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b PartitionStatus) int {
		if c := a.Task.Compare(b.Task); c != 0 {
			return c
		}
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	err := r.fillEnds(ctx, out)
	for i := range out {
		out[i].Lag = max(out[i].End-out[i].Position, 0)
	}
	return out, err
}

// fillEnds sets the End of each partition from listed offsets, and the
// Position of those not known yet to the log start offset. On failure
// the ends stay the last fetch's, the positions not known become 0 (the
// lowest offset there is, so the lag is not understated) and the error is
// returned.
func (r *Runtime) fillEnds(ctx context.Context, ps []PartitionStatus) error {
	if len(ps) == 0 {
		return nil
	}
	kind, iso := EndHighWatermark, sarama.ReadUncommitted
	if r.cfg.ExactlyOnce {
		kind, iso = EndLastStableOffset, sarama.ReadCommitted
	}
	tps := make([]tpKey, len(ps))
	var unknown []tpKey
	for i, p := range ps {
		tps[i] = tpKey{p.Topic, p.Partition}
		if p.Position < 0 {
			unknown = append(unknown, tps[i])
		}
	}
	ends, err := r.cachedEnds(ctx, tps, iso)
	var starts map[tpKey]int64
	if err == nil && len(unknown) > 0 {
		starts, err = r.listOffsetsWithin(ctx, unknown, sarama.OffsetOldest, iso)
	}
	for i := range ps {
		if err == nil {
			ps[i].End, ps[i].EndKind = ends[tps[i]], kind
			if ps[i].Position < 0 {
				ps[i].Position = starts[tps[i]]
			}
		} else if ps[i].Position < 0 {
			ps[i].Position = 0
		}
	}
	if err != nil {
		return fmt.Errorf("brook: status: end offsets are the last fetch's high watermarks: %w", err)
	}
	if err := r.skipMarkerTails(ctx, ps, iso); err != nil {
		return fmt.Errorf("brook: status: %w", err)
	}
	return nil
}

// markerProbeMax is the largest gap between a partition's position and
// its end that skipMarkerTails looks into.
const markerProbeMax = 32

// errHasRecord stops a probe at the first record it finds.
var errHasRecord = errors.New("a record")

// statusProbe is what a probe of [pos, end) of a partition found.
type statusProbe struct {
	pos, end int64
	records  bool
}

// skipMarkerTails moves to the end the position of each partition whose
// offsets from its position to its end hold no record a consumer sees:
// transaction markers take offsets but are no records (and under
// read_committed neither are aborted records), so a partition written by
// transactions would otherwise show a lag of 1 or more with every record
// processed. It reads the gap (of at most markerProbeMax offsets) with a
// fetch that skips what the consumer skips; the answer is kept while the
// position and end stay where they are, so an idle partition is read
// once. A partition whose gap cannot be read keeps its lag, and the error
// says why.
func (r *Runtime) skipMarkerTails(ctx context.Context, ps []PartitionStatus, iso sarama.IsolationLevel) error {
	var todo []int
	b := &r.status
	b.mu.Lock()
	for i, p := range ps {
		gap := p.End - p.Position
		if gap <= 0 || gap > markerProbeMax {
			continue
		}
		if pr, ok := b.probes[tpKey{p.Topic, p.Partition}]; ok && pr.pos == p.Position && pr.end == p.End {
			if !pr.records {
				ps[i].Position = p.End
			}
			continue
		}
		todo = append(todo, i)
	}
	b.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	type result struct {
		found map[int]bool
		err   error
	}
	ch := make(chan result, 1)
	go func() { // ends with its fetches, bounded by the client's time-outs
		pctx, cancel := context.WithTimeout(context.Background(), listEndsTimeout)
		defer cancel()
		found := map[int]bool{}
		var errs []error
		for _, i := range todo {
			p := ps[i]
			rd := changelog.NewReader(r.client, p.Topic, p.Partition, iso)
			rd.MaxBytes, rd.Retries = 64<<10, 1
			err := rd.Read(pctx, p.Position, p.End, func([]store.ChangelogRecord) error { return errHasRecord })
			switch {
			case errors.Is(err, errHasRecord):
				found[i] = true
			case err != nil:
				errs = append(errs, fmt.Errorf("read %s[%d] from its position %d to its end %d: %w", p.Topic, p.Partition, p.Position, p.End, err))
			default:
				found[i] = false
			}
		}
		ch <- result{found, errors.Join(errs...)}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return fmt.Errorf("looking for records between the positions and the ends did not finish in time (lags may count transaction markers): %w", ctx.Err())
	}
	b.mu.Lock()
	if b.probes == nil {
		b.probes = map[tpKey]statusProbe{}
	}
	for i, records := range res.found {
		p := ps[i]
		b.probes[tpKey{p.Topic, p.Partition}] = statusProbe{pos: p.Position, end: p.End, records: records}
		if !records {
			ps[i].Position = p.End
		}
	}
	b.mu.Unlock()
	if res.err != nil {
		return fmt.Errorf("lags may count transaction markers: %w", res.err)
	}
	return nil
}

// cachedEnds returns the end offsets of tps, listed at most endCacheFor
// ago. One listing runs at a time, on a goroutine of its own, and the
// callers wait for it at most until their ctx ends: sarama's requests
// take no context, and an unreachable broker holds one for as long as
// the client's dial and read time-outs (30 s each by default), which a
// status page must not wait for, nor stack up one listing per refresh.
func (r *Runtime) cachedEnds(ctx context.Context, tps []tpKey, iso sarama.IsolationLevel) (map[tpKey]int64, error) {
	b := &r.status
	for {
		b.mu.Lock()
		if time.Since(b.endsAt) < endCacheFor {
			if out, ok := b.cachedFor(tps); ok {
				b.mu.Unlock()
				return out, nil
			}
		}
		wait, started := b.listing, false
		if wait == nil {
			wait, started = make(chan struct{}), true
			b.listing = wait
			go r.listStatusEnds(wait, slices.Clone(tps), iso) // owned by the status book: ends with the request
		}
		b.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("listing the end offsets did not finish in time: %w", ctx.Err())
		}
		b.mu.Lock()
		err := b.listErr
		out, ok := b.cachedFor(tps)
		b.mu.Unlock()
		switch {
		case err != nil && started:
			return nil, err
		case ok && err == nil:
			return out, nil
		case !started:
			continue // another caller's listing (other partitions, or it failed): list ours
		}
		return nil, errors.New("the partitions changed while their end offsets were listed")
	}
}

// cachedFor returns the cached end offsets of tps, if it has them all.
// The caller holds b.mu.
func (b *statusBook) cachedFor(tps []tpKey) (map[tpKey]int64, bool) {
	out := make(map[tpKey]int64, len(tps))
	for _, k := range tps {
		v, ok := b.ends[k]
		if !ok {
			return nil, false
		}
		out[k] = v
	}
	return out, true
}

// listStatusEnds lists the end offsets of tps into the status book and closes
// done. It is bounded by listEndsTimeout between requests, and each
// request by the client's own time-outs.
func (r *Runtime) listStatusEnds(done chan struct{}, tps []tpKey, iso sarama.IsolationLevel) {
	ctx, cancel := context.WithTimeout(context.Background(), listEndsTimeout)
	defer cancel()
	ends, err := r.listOffsets(ctx, tps, sarama.OffsetNewest, iso)
	b := &r.status
	b.mu.Lock()
	b.listErr = err
	if err == nil {
		b.ends, b.endsAt = ends, time.Now()
	}
	b.listing = nil
	b.mu.Unlock()
	close(done)
}

// listOffsetsWithin is listOffsets on a goroutine of its own that the
// caller waits for until ctx ends (sarama's requests take no context).
func (r *Runtime) listOffsetsWithin(ctx context.Context, tps []tpKey, which int64, iso sarama.IsolationLevel) (map[tpKey]int64, error) {
	type result struct {
		offs map[tpKey]int64
		err  error
	}
	ch := make(chan result, 1)
	go func() { // ends with its requests, bounded by the client's time-outs
		lctx, cancel := context.WithTimeout(context.Background(), listEndsTimeout)
		defer cancel()
		offs, err := r.listOffsets(lctx, tps, which, iso)
		ch <- result{offs, err}
	}()
	select {
	case res := <-ch:
		return res.offs, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("listing the log start offsets did not finish in time: %w", ctx.Err())
	}
}

// listEndsTimeout bounds a listing of end offsets between its requests.
const listEndsTimeout = 30 * time.Second

// listOffsets lists the offset at which (sarama.OffsetNewest: the end
// under iso; sarama.OffsetOldest: the log start) of every partition of
// tps, with one ListOffsets request per leader.
func (r *Runtime) listOffsets(ctx context.Context, tps []tpKey, which int64, iso sarama.IsolationLevel) (map[tpKey]int64, error) {
	client := r.client
	if client == nil {
		return nil, errors.New("not connected")
	}
	byLeader := map[*sarama.Broker][]tpKey{}
	for _, k := range tps {
		b, err := client.Leader(k.topic, k.partition)
		if err != nil {
			return nil, fmt.Errorf("leader of %s[%d]: %w", k.topic, k.partition, err)
		}
		byLeader[b] = append(byLeader[b], k)
	}
	out := make(map[tpKey]int64, len(tps))
	for b, ks := range byLeader {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		req := sarama.NewOffsetRequest(client.Config().Version)
		if req.Version >= 2 {
			req.IsolationLevel = iso
		}
		for _, k := range ks {
			req.AddBlock(k.topic, k.partition, which, 1)
		}
		resp, err := b.GetAvailableOffsets(req)
		if err != nil {
			return nil, fmt.Errorf("list offsets at broker %d: %w", b.ID(), err)
		}
		for _, k := range ks {
			blk := resp.GetBlock(k.topic, k.partition)
			switch {
			case blk == nil || len(blk.Offsets) == 0 && errors.Is(blk.Err, sarama.ErrNoError):
				return nil, fmt.Errorf("list offsets of %s[%d]: %w", k.topic, k.partition, sarama.ErrIncompleteResponse)
			case !errors.Is(blk.Err, sarama.ErrNoError):
				return nil, fmt.Errorf("list offsets of %s[%d]: %w", k.topic, k.partition, blk.Err)
			}
			out[k] = blk.Offsets[0]
		}
	}
	return out, nil
}

// RestoreRecord is the last restore progress of one store partition of a
// task assigned here.
type RestoreRecord struct {
	Task assign.TaskID
	store.RestoreProgress
	// Done reports that the restore finished (the task opened, or the
	// store reached its end offset).
	Done bool
}

// RestoreHistory returns the last restore progress of each store
// partition of the tasks this instance is assigned (restoring or done),
// sorted by task and store.
func (r *Runtime) RestoreHistory() []RestoreRecord {
	asg, ok := r.strategy.Local()
	if !ok {
		return nil
	}
	open := r.OpenTasks()
	b := &r.status
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []RestoreRecord
	for _, id := range asg.Tasks {
		if int(id.Group) >= len(r.cfg.Graph.SubTopologies) {
			continue
		}
		_, isOpen := slices.BinarySearchFunc(open, id, assign.TaskID.Compare)
		for _, name := range r.cfg.Graph.SubTopologies[id.Group].Stores {
			p, ok := b.restores[restoreKey{name, id.Partition}]
			if !ok {
				continue
			}
			out = append(out, RestoreRecord{Task: id, RestoreProgress: p, Done: isOpen || p.Restored >= p.Total})
		}
	}
	return out
}

// StoreSize is the size of one store of a task open here (or of a global
// table, Task GlobalTask).
type StoreSize struct {
	Task  assign.TaskID
	Store string
	// Keys is the number of keys, for in-memory stores only (-1 for
	// persistent ones: LevelDB keeps no count, and counting reads every
	// key).
	Keys int64
	// Bytes is the size of the store's folder on disk, for persistent
	// stores only (-1 for in-memory ones).
	Bytes int64
}

// StoreSizes returns the size of each store of the tasks open here and of
// the global tables, sorted by task and store. Bytes on disk are summed
// over the store's folder now; errors reading it are returned with what
// could be measured.
func (r *Runtime) StoreSizes() ([]StoreSize, error) {
	var out []StoreSize
	var errs []error
	measure := func(id assign.TaskID, dir, name string) {
		spec := r.cfg.Graph.Stores[name]
		if spec == nil {
			return
		}
		s := StoreSize{Task: id, Store: name, Keys: -1, Bytes: -1}
		if spec.InMemory {
			err := r.ReadStore(id, name, func(st any) error {
				c, ok := st.(interface{ ApproximateCount() (int64, error) })
				if !ok {
					return nil
				}
				n, err := c.ApproximateCount()
				s.Keys = n
				return err
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("store %q of task %s: count keys: %w", name, id, err))
			}
		} else {
			n, err := dirSize(filepath.Join(dir, name))
			s.Bytes = n
			if err != nil {
				errs = append(errs, fmt.Errorf("store %q of task %s: %w", name, id, err))
			}
		}
		out = append(out, s)
	}
	for _, id := range r.OpenTasks() {
		if int(id.Group) >= len(r.cfg.Graph.SubTopologies) {
			continue
		}
		for _, name := range r.cfg.Graph.SubTopologies[id.Group].Stores {
			measure(id, r.taskDir(id), name)
		}
	}
	if r.GlobalsReady() {
		for _, spec := range r.globalSpecs() {
			measure(GlobalTask, filepath.Join(r.cfg.StateDir, r.cfg.ApplicationID, "global"), spec.Name)
		}
	}
	return out, errors.Join(errs...)
}

// dirSize sums the sizes of the regular files under dir. Files that
// vanish while it walks (LevelDB compacts away old tables) are skipped; a
// missing dir is 0.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("size on disk of %s: %w", dir, err)
	}
	return n, nil
}

// ExactlyOnce reports whether the runtime runs under exactly-once.
func (r *Runtime) ExactlyOnce() bool { return r.cfg.ExactlyOnce }

// HasGlobals reports whether the topology declares global tables.
func (r *Runtime) HasGlobals() bool { return r.hasGlobals() }
