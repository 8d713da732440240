// worker.go: the worker loop. Each worker goroutine of a session drives
// its tasks: it processes their queued records in batches, fires the
// punctuators and commits (commit.go) every commit interval or when a task
// asks for it.

package runtime

import (
	"errors"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
)

// work is one processing goroutine: it drives its tasks until the session
// stops.
func (h *handler) work(sess sarama.ConsumerGroupSession, w int, tasks []*taskRun) {
	defer h.wg.Done()
	r := h.r
	signal := h.signals[w]
	now := r.cfg.Clock()
	nextCommit := now.Add(r.cfg.CommitInterval)
	nextPunct := now.Add(r.cfg.PunctuateInterval)
	timer := time.NewTimer(r.cfg.PunctuateInterval)
	defer timer.Stop()
	const batch = 100
	for {
		select {
		case <-h.stop:
			return
		default:
		}
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
						// The session ended while the record waited for the
						// schema registry; nothing of it happened, and it is
						// not committed: its next owner processes it.
						r.log.Info("brook: record left for the next owner", "task", tr.id.String(), "err", err)
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
		if commitNow || !now.Before(nextCommit) {
			began := time.Now()
			err := h.commit(sess, tasks)
			if len(tasks) > 0 {
				r.meter.ObserveCommit(time.Since(began))
			}
			if err != nil {
				r.commitFailed(err)
				return
			}
			r.purge.maybePurge(r.cfg.Clock())
			nextCommit = r.cfg.Clock().Add(r.cfg.CommitInterval)
		}
		if processed == 0 {
			wait := min(time.Until(nextPunct), time.Until(nextCommit))
			if wait < time.Millisecond {
				wait = time.Millisecond
			}
			timer.Reset(wait)
			select {
			case <-h.stop:
				return
			case <-signal:
			case <-timer.C:
			}
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
