// metrics.go: what the runtime adds to its meter's counters when a
// metrics.Registry asks (CollectMetrics): the state, the lag of every
// input partition, the stores' sizes; and the monitor goroutine that
// keeps the end offsets and the store sizes fresh for it.

package runtime

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/meter"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/store"
)

// MetricsRefresh is how often the monitor lists the end offsets of the
// open tasks' input partitions and measures their stores, while the App
// has metrics.
const MetricsRefresh = 5 * time.Second

// keyCountMin is the shortest interval between two key counts of one
// persistent store; keyCountShare the largest share of one core counting
// may take (the next count of a store waits its last count's duration
// divided by it).
const (
	keyCountMin   = time.Minute
	keyCountShare = 0.01
)

// CollectMetrics fills s with the App's measurements: the meter's
// counters, the state, the lag of the open tasks' input partitions and
// their stores' sizes. It reads only what is at hand (end offsets and
// sizes the monitor measured last) and never waits for the brokers.
func (r *Runtime) CollectMetrics(s *metrics.AppSnapshot) {
	s.State = r.State().String()
	r.meter.Fill(s)
	type key struct {
		task, topic string
		partition   int32
	}
	idx := map[key]int{}
	for i, p := range s.Partitions {
		idx[key{p.Task, p.Topic, p.Partition}] = i
	}
	for _, st := range r.openInputs() {
		i, ok := idx[key{st.task.String(), st.key.topic, st.key.partition}]
		if !ok {
			s.Partitions = append(s.Partitions, metrics.PartitionSnapshot{Task: st.task.String(), Topic: st.key.topic, Partition: st.key.partition})
			i = len(s.Partitions) - 1
		}
		p := &s.Partitions[i]
		p.Assigned = true
		p.Position, p.Committed = st.position, st.committed
		p.End, p.Lag, p.CommittedLag = r.lagOf(st)
	}
	slices.SortFunc(s.Partitions, func(a, b metrics.PartitionSnapshot) int {
		return cmp.Or(strings.Compare(a.Task, b.Task), strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	s.Stores = r.sizes.snapshot(r.OpenTasks())
}

// Meter returns the runtime's measurements (nil: it measures nothing).
func (r *Runtime) Meter() *meter.App { return r.meter }

// runMonitor refreshes, every MetricsRefresh until ctx ends, the end
// offsets of the open tasks' input partitions (and the tails that need
// reading, lag.go) and the sizes of their stores. Run starts it only
// when the App has metrics.
func (r *Runtime) runMonitor(ctx context.Context, client sarama.Client) {
	t := time.NewTicker(MetricsRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.refreshLag(ctx, client)
		r.refreshSizes(ctx)
	}
}

// sizeCache holds the stores' sizes as the monitor last measured them.
type sizeCache struct {
	mu    sync.Mutex
	sizes map[storeKey]*storeSize
}

type storeKey struct {
	task  assign.TaskID
	store string
}

type storeSize struct {
	persistent bool
	disk       int64
	keys       int64 // -1: not counted yet
	keysAt     time.Time
	nextCount  time.Time
}

func (c *sizeCache) get(k storeKey, persistent bool) storeSize {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.sizes[k]; s != nil {
		return *s
	}
	return storeSize{persistent: persistent, keys: -1}
}

func (c *sizeCache) put(k storeKey, s storeSize) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sizes == nil {
		c.sizes = map[storeKey]*storeSize{}
	}
	c.sizes[k] = &s
}

// snapshot lists the sizes of the stores of tasks.
func (c *sizeCache) snapshot(tasks []assign.TaskID) []metrics.StoreSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	open := map[assign.TaskID]bool{}
	for _, id := range tasks {
		open[id] = true
	}
	var out []metrics.StoreSnapshot
	for k, s := range c.sizes {
		if !open[k.task] {
			continue
		}
		out = append(out, metrics.StoreSnapshot{
			Task: k.task.String(), Store: k.store, Keys: s.keys, KeysAt: s.keysAt, DiskBytes: s.disk, Persistent: s.persistent,
		})
	}
	slices.SortFunc(out, func(a, b metrics.StoreSnapshot) int {
		if c := strings.Compare(a.Task, b.Task); c != 0 {
			return c
		}
		return strings.Compare(a.Store, b.Store)
	})
	return out
}

// refreshSizes measures the stores of the open tasks: the bytes of a
// LevelDB store's folder every time, its keys when due (keyCountMin,
// keyCountShare), an in-memory store's keys every time.
func (r *Runtime) refreshSizes(ctx context.Context) {
	for _, id := range r.OpenTasks() {
		for _, name := range r.taskStores(id) {
			if ctx.Err() != nil {
				return
			}
			k := storeKey{id, name}
			dir, ok := r.storeDir(id, name)
			if !ok {
				continue
			}
			s := r.sizes.get(k, dir != "")
			s.persistent = dir != ""
			if s.persistent {
				s.disk, _ = dirSize(dir) // what could be read; a vanished file counts 0
			}
			now := time.Now()
			if !s.persistent || !now.Before(s.nextCount) {
				began := time.Now()
				n, err := r.countKeys(id, name)
				took := time.Since(began)
				if err == nil {
					s.keys, s.keysAt = n, time.Now()
				} else {
					r.log.Debug("brook: metrics: keys of a store not counted", "task", id.String(), "store", name, "err", err)
				}
				s.nextCount = now.Add(max(keyCountMin, time.Duration(float64(took)/keyCountShare)))
			}
			r.sizes.put(k, s)
		}
	}
}

// taskStores returns the names of the stores of open task id.
func (r *Runtime) taskStores(id assign.TaskID) []string {
	q := &r.queries
	q.mu.RLock()
	defer q.mu.RUnlock()
	qt := q.tasks[id]
	if qt == nil {
		return nil
	}
	out := make([]string, 0, len(qt.tr.stores))
	for name := range qt.tr.stores {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// storeDir returns the folder of a LevelDB store of open task id ("" for
// an in-memory store); false when the task or store is not open.
func (r *Runtime) storeDir(id assign.TaskID, name string) (string, bool) {
	q := &r.queries
	q.mu.RLock()
	defer q.mu.RUnlock()
	qt := q.tasks[id]
	if qt == nil {
		return "", false
	}
	se, ok := qt.tr.stores[name]
	return se.dir, ok
}

// countKeysChunk is how many keys countKeys reads per hold of its lock.
const countKeysChunk = 4096

// countKeys counts the keys of store name of open task id by reading it
// through (an in-memory store: its exact count). The read is registered
// like a query's iterator, so a task that closes meanwhile (a rebalance)
// ends it instead of waiting for it, and the count then fails.
func (r *Runtime) countKeys(id assign.TaskID, name string) (int64, error) {
	var (
		mu     sync.Mutex
		it     store.Iterator[[]byte, []byte]
		killed bool
	)
	kill := func() {
		mu.Lock()
		defer mu.Unlock()
		if !killed && it != nil {
			killed = true
			it.Close()
		}
	}
	var n int64
	memory := false
	done, err := r.openEngine(id, name, func(se storeEngine) (func(), error) {
		if se.dir == "" {
			memory = true
			c, err := se.engine.ApproximateCount() // exact and cheap in memory
			n = c
			return func() {}, err
		}
		i, err := se.engine.Iterate(nil, nil, false)
		if err != nil {
			return nil, err
		}
		it = i
		return kill, nil
	})
	if err != nil {
		return 0, err
	}
	defer done()
	if memory {
		return n, nil
	}
	for {
		mu.Lock()
		if killed {
			mu.Unlock()
			return 0, ErrIteratorInvalidated
		}
		more := true
		for i := 0; i < countKeysChunk; i++ {
			if more = it.Next(); !more {
				break
			}
			n++
		}
		if !more {
			err := it.Err()
			it.Close()
			killed = true // closed: kill must not close it again
			mu.Unlock()
			return n, err
		}
		mu.Unlock()
	}
}

// openEngine calls open with the engine of store name of open task id
// and registers the func it returns as the kill of a query iterator
// (query.go): the runtime calls it before the task closes. The returned
// done unregisters it.
func (r *Runtime) openEngine(id assign.TaskID, name string, open func(storeEngine) (func(), error)) (func(), error) {
	q := &r.queries
	q.mu.RLock()
	defer q.mu.RUnlock()
	qt := q.tasks[id]
	if qt == nil {
		return nil, r.notOpen(id)
	}
	se, ok := qt.tr.stores[name]
	if !ok {
		return nil, r.notOpen(id)
	}
	kill, err := open(se)
	if err != nil {
		return nil, err
	}
	qt.mu.Lock()
	defer qt.mu.Unlock()
	n := qt.next
	qt.next++
	qt.iters[n] = kill
	return func() {
		qt.mu.Lock()
		delete(qt.iters, n)
		qt.mu.Unlock()
	}, nil
}
