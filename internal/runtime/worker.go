// worker.go: the worker loop. Each worker goroutine of a session drives
// its tasks: it processes their queued records in batches, fires the
// punctuators and commits (commit.go) every commit interval or when a task
// asks for it.

package runtime

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
)

// workerTasks is the set of tasks one worker drives. Under the
// cooperative protocol it changes while the worker runs: tasks are added
// once open, and removed (revokeTask) only when the worker acknowledges
// it between two batches, so that a task is never committed or closed
// while its worker is inside one of its records.
type workerTasks struct {
	changed atomic.Bool
	// polls counts the worker's passes between two batches; parked is
	// set while it waits for work or commits (awaitPoll).
	polls   atomic.Uint64
	parked  atomic.Bool
	done    atomic.Bool
	mu      sync.Mutex
	tasks   []*taskRun
	leaving map[*taskRun]chan struct{}
	exited  bool
}

func newWorkerTasks() *workerTasks {
	return &workerTasks{leaving: map[*taskRun]chan struct{}{}}
}

// add gives the worker a task.
func (w *workerTasks) add(tr *taskRun) {
	w.mu.Lock()
	w.tasks = append(w.tasks, tr)
	w.mu.Unlock()
	w.changed.Store(true)
	tr.queue.wake()
	if tr.queue.notify != nil {
		tr.queue.notify()
	}
}

// remove asks the worker to let go of tr; the channel closes once it has
// (at once when the worker has stopped).
func (w *workerTasks) remove(tr *taskRun) <-chan struct{} {
	ack := make(chan struct{})
	w.mu.Lock()
	if w.exited {
		w.tasks = deleteTask(w.tasks, tr)
		close(ack)
	} else {
		w.leaving[tr] = ack
	}
	w.mu.Unlock()
	w.changed.Store(true)
	if tr.queue.notify != nil {
		tr.queue.notify()
	}
	return ack
}

// count is the number of tasks the worker drives.
func (w *workerTasks) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.tasks)
}

// refresh, called by the worker between batches, applies the changes
// since the last call: it returns the current tasks and acknowledges the
// removals.
func (w *workerTasks) refresh(cur []*taskRun) []*taskRun {
	if !w.changed.Swap(false) {
		return cur
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for tr, ack := range w.leaving {
		w.tasks = deleteTask(w.tasks, tr)
		close(ack)
		delete(w.leaving, tr)
	}
	return append(cur[:0:0], w.tasks...)
}

// exit marks the worker stopped and acknowledges pending removals.
func (w *workerTasks) exit() {
	w.done.Store(true)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.exited = true
	for tr, ack := range w.leaving {
		w.tasks = deleteTask(w.tasks, tr)
		close(ack)
		delete(w.leaving, tr)
	}
}

func deleteTask(ts []*taskRun, tr *taskRun) []*taskRun {
	out := ts[:0:0]
	for _, t := range ts {
		if t != tr {
			out = append(out, t)
		}
	}
	return out
}

// work is one processing goroutine: it drives its tasks until the session
// stops.
func (h *handler) work(sess sarama.ConsumerGroupSession, w int) {
	defer h.wg.Done()
	r := h.r
	ws := h.workers[w]
	defer ws.exit()
	var tasks []*taskRun
	ws.changed.Store(true)
	signal := h.signals[w]
	now := r.cfg.Clock()
	nextCommit := now.Add(r.cfg.CommitInterval)
	nextPunct := now.Add(r.cfg.PunctuateInterval)
	timer := time.NewTimer(r.cfg.PunctuateInterval)
	defer timer.Stop()
	const batch = 100
	preflushed := false // this commit interval's changelog preflush is done
	for {
		select {
		case <-h.stop:
			return
		default:
		}
		tasks = ws.refresh(tasks)
		ws.polls.Add(1)
		processed := 0
		commitNow := false
		for _, tr := range tasks {
			if tr.isLost() {
				continue
			}
			// Measuring (tr.meter nil: off) adds no clock reading: each
			// record's time runs from the previous one's end (or the
			// batch start) to its own end, so it includes taking it off
			// the queue and handing its output over, and that reading
			// also serves the queue as the time of the next pop.
			tm := tr.meter
			var t0 time.Time
			if tm != nil {
				t0 = time.Now()
			}
			for i := 0; i < batch; i++ {
				popAt := t0
				if tm == nil {
					popAt = time.Now()
				}
				m, f, ok := tr.queue.popFifo(popAt)
				if !ok {
					break
				}
				if tm != nil {
					tm.Begin(t0)
				}
				tr.begin()
				if err := tr.core.Process(rawRecord(m)); err != nil {
					// Undo the record's partial output and writes; the
					// records before it are committed (Cleanup), under
					// both guarantees, and a restart resumes at it.
					tr.rollback()
					if errors.Is(err, task.ErrInterrupted) {
						// The session ended (or the task is being revoked)
						// while the record waited for the schema registry;
						// nothing of it happened, and it is not committed:
						// its next owner processes it.
						r.log.Info("brook: record left for the next owner", "task", tr.id.String(), "err", err)
						if tr.isRevoking() && sess.Context().Err() == nil {
							break
						}
						return
					}
					r.failRecord(taskError(tr.id, "", err))
					return
				}
				if err := tr.end(); err != nil {
					r.fail(err)
					return
				}
				f.processed(m.Offset)
				if tm != nil {
					t1 := time.Now()
					tm.Processed(t1.Sub(t0))
					t0 = t1
				}
				processed++
				if tr.core.CommitRequested() {
					// A processor asked for a commit: the task processes
					// nothing more before it (RequestCommit commits "as
					// soon as possible after the current record"), so
					// under exactly-once its next record begins a new
					// transaction. The worker's other tasks still get
					// their batch first.
					break
				}
			}
			commitNow = commitNow || tr.core.CommitRequested() || tr.pendingWrites() >= maxPendingWrites
		}
		now = r.cfg.Clock()
		if !now.Before(nextPunct) {
			for _, tr := range tasks {
				if tr.isLost() {
					continue
				}
				tr.meter.Begin(now)
				tr.begin()
				if _, err := tr.core.Punctuate(now); err != nil {
					tr.rollback()
					r.failRecord(taskError(tr.id, "punctuate", err))
					return
				}
				if err := tr.end(); err != nil {
					r.fail(err)
					return
				}
				commitNow = commitNow || tr.core.CommitRequested()
			}
			nextPunct = now.Add(r.cfg.PunctuateInterval)
		}
		if !preflushed && !commitNow && r.cfg.CommitInterval >= preflushMinInterval &&
			!now.Before(nextCommit.Add(-r.cfg.CommitInterval/preflushShare)) && now.Before(nextCommit) {
			preflushed = true
			if err := h.preflush(sess, tasks); err != nil {
				r.fail(err)
				return
			}
		}
		if commitNow || !now.Before(nextCommit) {
			began := time.Now()
			ws.parked.Store(true)
			err := h.commitTasks(sess, tasks, true)
			ws.parked.Store(false)
			if len(tasks) > 0 {
				r.meter.ObserveCommit(time.Since(began))
			}
			if err != nil {
				r.commitFailed(err)
				return
			}
			r.purge.maybePurge(r.cfg.Clock())
			nextCommit = r.cfg.Clock().Add(r.cfg.CommitInterval)
			preflushed = false
		}
		if processed == 0 {
			wait := min(time.Until(nextPunct), time.Until(nextCommit))
			if wait < time.Millisecond {
				wait = time.Millisecond
			}
			timer.Reset(wait)
			ws.parked.Store(true)
			select {
			case <-h.stop:
				return
			case <-signal:
			case <-timer.C:
			}
			ws.parked.Store(false)
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
}

func rawRecord(m *sarama.ConsumerMessage) task.RawRecord {
	rec := task.RawRecord{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Key: m.Key, Value: m.Value, Timestamp: m.Timestamp,
	}
	if len(m.Headers) > 0 {
		rec.Headers = make(processor.Headers, 0, len(m.Headers))
		for _, hd := range m.Headers {
			if hd != nil {
				rec.Headers = append(rec.Headers, processor.Header{Key: string(hd.Key), Value: hd.Value})
			}
		}
	}
	return rec
}
