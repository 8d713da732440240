package runtime

import (
	"errors"
	"fmt"
	"sync"

	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
)

// failureBook attributes the records the shared (at-least-once) producer
// could not write to the tasks that sent them. Every worker flushes the
// one producer, so a flush may return another worker's failures: they wait
// here until that worker's next commit claims them. mu is held across the
// flush, so a worker that flushes after another has taken a failure finds
// it here.
type failureBook struct {
	mu     sync.Mutex
	byTask map[string][]changelog.Failed
}

// flushShared waits for every record sent through the shared producer and
// returns the failures of tasks, keyed by task id.
func (r *Runtime) flushShared(tasks []*taskRun) map[string][]changelog.Failed {
	b := &r.failures
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range r.prod.Flush() {
		var task string
		if meta, ok := f.Msg.Metadata.(*changelog.Meta); ok {
			task = meta.Origin.Task
		}
		if b.byTask == nil {
			b.byTask = map[string][]changelog.Failed{}
		}
		b.byTask[task] = append(b.byTask[task], f)
	}
	out := map[string][]changelog.Failed{}
	for _, tr := range tasks {
		if fs, ok := b.byTask[tr.coll.task]; ok {
			out[tr.coll.task] = fs
			delete(b.byTask, tr.coll.task)
		}
	}
	return out
}

// forgetFailures drops the unclaimed failures of tasks that close.
func (r *Runtime) forgetFailures(tasks map[assign.TaskID]*taskRun) {
	b := &r.failures
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, tr := range tasks {
		if tr.coll != nil {
			delete(b.byTask, tr.coll.task)
		}
	}
}

// settleFailures decides, under at-least-once, what the records the
// producer could not write for task tr mean: a failed changelog record is
// an error (the store's backup is incomplete); a failed sink record goes
// to the production handler, and unless it answers Continue it is an
// error, a *processor.ProductionError naming the sink, the output topic
// and the source record (the earliest one, when several failed).
func (r *Runtime) settleFailures(tr *taskRun, failed []changelog.Failed) error {
	var first *processor.ProductionError
	n := 0
	for _, f := range failed {
		meta, _ := f.Msg.Metadata.(*changelog.Meta)
		if meta != nil && meta.Changelog {
			return fmt.Errorf("brook: task %s: changelog record to %s[%d] failed: %w", tr.id, f.Msg.Topic, f.Msg.Partition, f.Err)
		}
		pe := productionError(f)
		if hnd := r.cfg.Graph.Handlers.Production; hnd != nil {
			ec := processor.ErrorContext{
				TaskID: toProcessorTaskID(tr.id), Node: pe.Node, ApplicationID: r.cfg.ApplicationID, Err: pe,
				Topic: pe.Topic, Partition: pe.Partition, Offset: pe.Offset,
			}
			if hnd(ec, producedFromMessage(f.Msg)) == processor.Continue {
				tr.meter.Node(pe.Node, "sink").Dropped(metrics.DropError)
				r.log.Warn("brook: dropped a record the producer could not write", "action", "your production handler chose Continue: the record is lost for this output; fix the cause (record too large, ACLs, missing topic) or answer Fail", "task", tr.id.String(),
					"node", pe.Node, "output_topic", pe.OutputTopic, "topic", pe.Topic, "partition", pe.Partition, "offset", pe.Offset, "err", f.Err)
				continue
			}
		}
		n++
		if first == nil || pe.Offset < first.Offset {
			first = pe
		}
	}
	if first == nil {
		return nil
	}
	if n > 1 {
		return fmt.Errorf("brook: task %s: %w (%d records failed; the earliest is named)", tr.id, first, n)
	}
	return fmt.Errorf("brook: task %s: %w", tr.id, first)
}

// productionError describes a sink record the broker refused.
func productionError(f changelog.Failed) *processor.ProductionError {
	pe := &processor.ProductionError{OutputTopic: f.Msg.Topic, Offset: -1, Err: f.Err}
	if meta, ok := f.Msg.Metadata.(*changelog.Meta); ok {
		o := meta.Origin
		pe.Node, pe.Topic, pe.Partition, pe.Offset = o.Node, o.Topic, o.Partition, o.Offset
	}
	return pe
}

// droppedTaskError is a commit failure confined to one task: the task was
// dropped (its uncommitted work discarded), and the other tasks' commits
// were not affected.
type droppedTaskError struct{ err error }

func (e *droppedTaskError) Error() string { return e.err.Error() }
func (e *droppedTaskError) Unwrap() error { return e.err }

// commitFailed stops the runtime after a failed commit. When the failure
// was confined to tasks that were dropped, the other tasks may still
// commit what they processed before the runtime stops; otherwise nothing
// more is committed.
func (r *Runtime) commitFailed(err error) {
	var dt *droppedTaskError
	if errors.As(err, &dt) {
		r.stopWith(dt.err, true)
		return
	}
	r.fail(err)
}

// dropTask discards the uncommitted work of a task whose commit failed:
// its open transaction (exactly-once) is aborted, its pending store writes
// and changelog records are dropped, and it is neither processed nor
// committed again; its claim returns, which ends the session. Its
// checkpoint still names its last commit, so a restart restores the
// changelog tail and resumes at its last committed offsets.
func (h *handler) dropTask(tr *taskRun, err error) {
	h.r.log.Error("brook: task's commit failed; its work since the last commit is dropped",
		"task", tr.id.String(), "err", err)
	h.discardTask(tr)
}

// discardTask drops a task's uncommitted work and marks it lost.
func (h *handler) discardTask(tr *taskRun) {
	if tr.txn != nil {
		tr.txn.abort(h.r.log)
	}
	for _, o := range tr.overlays {
		o.Discard()
	}
	tr.coll.dropChangelog()
	tr.markLost()
}
