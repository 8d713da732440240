// commit.go: the commit paths of both guarantees. commit runs the
// at-least-once protocol for a worker's tasks (membership check, producer
// flush, store flush, offset commit, checkpoints); under exactly-once it
// hands over to commitTasksEOS, which commits each task in its own
// transaction (commitTaskEOS). The transactional producer itself and
// fencing are in txn.go.

package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/store"
)

// commit runs the at-least-once commit protocol for tasks: confirm the
// group membership, flush the producer, flush the stores (task.Commit),
// commit the consumed offsets and read the answer, write the checkpoints.
// A task with a record the producer could not write (and the production
// handler did not skip) is dropped, not committed; the others are, and
// the error is returned as a *droppedTaskError. When the membership is
// lost (or cannot be confirmed) the tasks are lost: nothing of them is
// committed or checkpointed, and the session ends (loseMembership). Any
// other refusal of the offset commit is returned as a fatal error.
func (h *handler) commit(sess sarama.ConsumerGroupSession, tasks []*taskRun) error {
	return h.commitTasks(sess, tasks, false)
}

// commitTasks is commit; periodic says the worker commits on its interval
// (or a processor's request) and the tasks go on: their checkpoints are
// then written only when due (checkpointDue). A task's last commit before
// it closes is never periodic.
func (h *handler) commitTasks(sess sarama.ConsumerGroupSession, tasks []*taskRun, periodic bool) error {
	r := h.r
	if len(tasks) == 0 {
		return nil
	}
	// Not while the member negotiates a new generation (coop.go).
	r.gate.enter(sess.Context(), sess)
	defer r.gate.leave()
	if r.cfg.ExactlyOnce {
		return h.commitTasksEOS(sess, tasks, periodic)
	}
	live := make([]*taskRun, 0, len(tasks))
	for _, tr := range tasks {
		if !tr.isLost() {
			live = append(live, tr)
		}
	}
	if len(live) == 0 {
		return nil
	}
	// A member that the group dropped (it stalled past the rebalance or
	// session timeout) must not write its changelog records behind those
	// of the tasks' new owners, nor checkpoint past them. Not a fatal
	// error (the session ends and the instance joins again), unless the
	// coordinator refuses the question itself (authorization).
	// The coordinator calls do not use the session's context (Cleanup
	// commits after it ended) but the rebalance timeout: past it, a
	// member that has not joined again is out of the group anyway.
	bound := r.cfg.Sarama.Consumer.Group.Rebalance.Timeout
	if bound <= 0 {
		bound = time.Minute
	}
	cctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := r.group.checkMembership(cctx, sess); err != nil {
		if errors.Is(err, ErrMembershipLost) {
			h.loseMembership(live, err, false)
			return nil
		}
		return err
	}
	for _, tr := range live {
		if err := tr.coll.flushChangelog(); err != nil {
			return fmt.Errorf("brook: task %s: %w", tr.id, err)
		}
	}
	failures := r.flushShared(live)
	type done struct {
		tr   *taskRun
		offs []task.Offset
	}
	var committed []done
	var dropped error
	for _, tr := range live {
		if err := r.settleFailures(tr, failures[tr.coll.task]); err != nil {
			h.dropTask(tr, err)
			if dropped == nil {
				dropped = err
			}
			continue
		}
		offs, err := tr.core.Commit()
		if err != nil {
			return taskError(tr.id, "commit", err)
		}
		for _, o := range tr.overlays {
			if err := o.Commit(); err != nil {
				return fmt.Errorf("brook: task %s: write stores: %w", tr.id, err)
			}
		}
		committed = append(committed, done{tr, offs})
	}
	var offs []task.Offset
	for _, d := range committed {
		offs = append(offs, d.offs...)
	}
	if err := r.group.commitOffsets(cctx, sess, offs); err != nil {
		if !errors.Is(err, ErrMembershipLost) {
			return fmt.Errorf("brook: commit consumed offsets: %w", err)
		}
		// The generation ended between the check and the commit: the
		// store writes are applied and the changelog records written,
		// but the offsets are not committed, so the checkpoints stay
		// where they were.
		lost := make([]*taskRun, len(committed))
		for i, d := range committed {
			lost[i] = d.tr
		}
		h.loseMembership(lost, err, true)
		if dropped != nil {
			return &droppedTaskError{err: dropped}
		}
		return nil
	}
	for _, d := range committed {
		tr := d.tr
		tr.commits++
		r.purge.note(d.offs)
		tr.noteCommitted(d.offs)
		for tp := range tr.logged {
			if tr.tables[tp] {
				for _, o := range d.offs {
					if o.Topic == tp.Topic && o.Partition == tp.Partition {
						tr.logged[tp] = o.Offset
					}
				}
				continue
			}
			if off, ok := r.prod.Acked(tp); ok && off > tr.logged[tp] {
				tr.logged[tp] = off
			}
		}
		if len(tr.logged) == 0 {
			continue
		}
		if err := tr.checkpoint(periodic); err != nil {
			return err
		}
		r.mu.Lock()
		r.restored[tr.id] = tr.offsetsByTopic()
		r.mu.Unlock()
	}
	if dropped != nil {
		return &droppedTaskError{err: dropped}
	}
	return nil
}

// commitTasksEOS commits every task of tasks in its own transaction. A
// task found fenced is lost (dropped until the next rebalance). A task
// whose commit fails otherwise is dropped (its transaction aborted) and
// the other tasks still commit: their transactions are independent. The
// first such failure is returned as a *droppedTaskError.
func (h *handler) commitTasksEOS(sess sarama.ConsumerGroupSession, tasks []*taskRun, periodic bool) error {
	var first error
	for _, tr := range tasks {
		if tr.isLost() {
			continue
		}
		err := h.commitTaskEOS(sess, tr, periodic)
		if err == nil {
			tr.commits++
			continue
		}
		if !fencedError(err) {
			err = h.confirmFence(tr, err)
		}
		if fencedError(err) {
			h.loseTask(tr, err)
			continue
		}
		h.dropTask(tr, err)
		if first == nil {
			first = err
		}
	}
	if first != nil {
		return &droppedTaskError{err: first}
	}
	return nil
}

// commitTaskEOS is the exactly-once commit of one task:
//
//  1. wait for every record sent in the transaction (a failed one fails
//     the commit: Kafka cannot commit a transaction with a failed write);
//  2. take the consumed positions (task.Commit; the overlay stores keep
//     their writes in memory);
//  3. add the positions to the transaction, with the group generation and
//     member id, and commit it;
//  4. apply the overlays to the local engines and flush them;
//  5. write the checkpoint (the changelog offsets the local data now
//     reflects), and begin the next transaction.
func (h *handler) commitTaskEOS(sess sarama.ConsumerGroupSession, tr *taskRun, periodic bool) error {
	r := h.r
	tp := tr.txn
	if err := tr.coll.flushChangelog(); err != nil {
		return fmt.Errorf("brook: task %s: %w", tr.id, err)
	}
	if failed := tp.Flush(); len(failed) > 0 {
		return transactionWriteError(tr, failed)
	}
	offs, err := tr.core.Commit()
	if err != nil {
		return taskError(tr.id, "commit", err)
	}
	if len(offs) == 0 && !tp.sent {
		return nil
	}
	if len(offs) > 0 {
		pom := map[string][]*sarama.PartitionOffsetMetadata{}
		for _, o := range offs {
			// The metadata carries the task's stream time (restoredStreamTimes).
			meta := task.EncodeStreamTime(o.StreamTime)
			pom[o.Topic] = append(pom[o.Topic], &sarama.PartitionOffsetMetadata{Partition: o.Partition, Offset: o.Offset, Metadata: &meta})
		}
		var instance *string
		if id := r.cfg.Sarama.Consumer.Group.InstanceId; id != "" {
			instance = &id
		}
		meta := sarama.NewConsumerGroupMetadataFromSession(sess, r.cfg.ApplicationID, instance)
		if err := tp.ap.AddOffsetsToTxnWithGroupMetadata(pom, meta); err != nil {
			return fmt.Errorf("brook: task %s: add offsets to transaction: %w", tr.id, err)
		}
	}
	if err := tp.ap.CommitTxn(); err != nil {
		return fmt.Errorf("brook: task %s: commit transaction %q: %w", tr.id, tp.tid, err)
	}
	tp.sent = false
	r.countTxn()
	tr.meter.TxnCommitted()
	r.purge.note(offs)
	tr.noteCommitted(offs)
	// The transaction is committed: its writes may reach the local stores.
	for _, o := range tr.overlays {
		if err := o.Commit(); err != nil {
			// Not retryable here, but safe: the checkpoint still names the
			// previous commit, so a restart restores the tail again.
			return fmt.Errorf("brook: task %s: apply committed writes to the local store: %w", tr.id, err)
		}
	}
	tr.advanceCheckpoint(offs, tp.Producer)
	if len(tr.logged) > 0 {
		if err := tr.checkpoint(periodic); err != nil {
			return err
		}
		r.mu.Lock()
		r.restored[tr.id] = tr.offsetsByTopic()
		r.mu.Unlock()
	}
	if err := tp.ap.BeginTxn(); err != nil {
		return fmt.Errorf("brook: task %s: begin transaction: %w", tr.id, err)
	}
	return nil
}

// transactionWriteError describes records the broker refused inside a
// task's transaction. Kafka cannot commit a transaction with a failed
// write, so the production handler cannot skip them. Once one write fails,
// the producer refuses the transaction's later records (ErrTransactionNotReady):
// those are consequences, so the error names the first cause: a fenced
// producer (the task moved), else a refused sink record as a
// *processor.ProductionError naming the sink, the output topic and the
// source record (the earliest, when several failed), else a refused
// changelog record.
func transactionWriteError(tr *taskRun, failed []changelog.Failed) error {
	causes := make([]changelog.Failed, 0, len(failed))
	for _, f := range failed {
		if fencedError(f.Err) {
			return fmt.Errorf("brook: task %s: produce to %s[%d] in a transaction: %w", tr.id, f.Msg.Topic, f.Msg.Partition, f.Err)
		}
		if !errors.Is(f.Err, sarama.ErrTransactionNotReady) {
			causes = append(causes, f)
		}
	}
	if len(causes) == 0 {
		causes = failed
	}
	var first *processor.ProductionError
	var changelogFailure *changelog.Failed
	for i, f := range causes {
		if meta, ok := f.Msg.Metadata.(*changelog.Meta); ok && meta.Changelog {
			if changelogFailure == nil {
				changelogFailure = &causes[i]
			}
			continue
		}
		if pe := productionError(f); first == nil || pe.Offset < first.Offset {
			first = pe
		}
	}
	if first == nil {
		f := changelogFailure
		return fmt.Errorf("brook: task %s: changelog record to %s[%d] in a transaction: %w (the task's transaction is aborted)",
			tr.id, f.Msg.Topic, f.Msg.Partition, f.Err)
	}
	return fmt.Errorf("brook: task %s: %w (%d record(s) of the task's transaction failed; under exactly-once the transaction is aborted and the production handler cannot skip them)",
		tr.id, first, len(failed))
}

// advanceCheckpoint moves the task's checkpoint offsets past what a commit
// made durable: a table's offset is its committed consumed position, a
// changelog's the offset after its last acknowledged record.
func (tr *taskRun) advanceCheckpoint(offs []task.Offset, p *changelog.Producer) {
	for tp := range tr.logged {
		if tr.tables[tp] {
			for _, o := range offs {
				if o.Topic == tp.Topic && o.Partition == tp.Partition {
					tr.logged[tp] = o.Offset
				}
			}
			continue
		}
		if off, ok := p.Acked(tp); ok && off > tr.logged[tp] {
			tr.logged[tp] = off
		}
	}
}

// noteCommitted records the offsets a commit of the task committed (for
// the committed lag and the caught-up report).
func (tr *taskRun) noteCommitted(offs []task.Offset) {
	for _, o := range offs {
		tr.queue.committedAt(o.Topic, o.Partition, o.Offset)
	}
}

// preflushShare is how early, as a share of the commit interval, a
// worker hands its tasks' buffered changelog records to the producer
// (preflush): at 1/5, a commit sends and waits for the records of the
// last fifth of the interval only. preflushMinInterval is the shortest
// commit interval it is done for.
const (
	preflushShare       = 5
	preflushMinInterval = 100 * time.Millisecond
)

// preflush hands the tasks' buffered changelog records to the producer
// ahead of their commit, so that the commit, which stops the worker's
// processing, sends and awaits only what was written since. A store's
// changelog buffer keeps the last write of each key until it is sent, so
// the records sent are fewer than the writes; sending once more before
// the commit costs at most one more record per key written on both sides
// of it (B2u at full speed: 10,000 keys, about 20,000 records a second
// instead of 10,000, for 260,000 writes), and took the changelog's share
// of a commit pause from 12-40 ms to a fifth of it. Under at-least-once
// the records go only after the coordinator confirms the membership, as
// at a commit (a member the group dropped must not write behind the
// tasks' new owners); under exactly-once they join the tasks' open
// transactions. Nothing is sent while the member negotiates a new
// generation, or when the membership cannot be confirmed: the commit
// then does what it does.
func (h *handler) preflush(sess sarama.ConsumerGroupSession, tasks []*taskRun) error {
	r := h.r
	if len(tasks) == 0 || !r.gate.tryEnter(sess) {
		return nil
	}
	defer r.gate.leave()
	if !r.cfg.ExactlyOnce {
		bound := r.cfg.Sarama.Consumer.Group.Session.Timeout
		if bound <= 0 {
			bound = 10 * time.Second
		}
		cctx, cancel := context.WithTimeout(sess.Context(), bound)
		err := r.group.checkMembership(cctx, sess)
		cancel()
		if err != nil {
			return nil
		}
	}
	for _, tr := range tasks {
		if tr.isLost() {
			continue
		}
		if err := tr.coll.flushChangelog(); err != nil {
			return fmt.Errorf("brook: task %s: %w", tr.id, err)
		}
	}
	return nil
}

// A periodic commit rewrites a task's checkpoint only when its changelog
// offsets moved checkpointMinRecords past the last one written, or
// checkpointMaxAge after it (as Kafka Streams, which rewrites it on a
// commit only past 10,000 records). Writing it is two fsyncs per task, on
// the processing goroutine: 3-6 ms of every commit pause of six tasks,
// measured on B2u/B3. A checkpoint behind the local data is safe under
// both guarantees: a restore replays the changelog from it, and the
// records it replays again only set keys to values the changelog holds
// later anyway. A crash therefore restores at most that much more.
const (
	checkpointMinRecords = 10_000
	checkpointMaxAge     = 30 * time.Second
)

// checkpoint writes the task's checkpoint (tr.logged), unless periodic
// and not due.
func (tr *taskRun) checkpoint(periodic bool) error {
	var moved int64
	for tp, off := range tr.logged {
		moved += off - tr.ckptWritten[tp]
	}
	if periodic && tr.ckptWritten != nil && moved < checkpointMinRecords && time.Since(tr.ckptAt) < checkpointMaxAge {
		return nil
	}
	if err := store.WriteCheckpoint(tr.dir, tr.logged); err != nil {
		return fmt.Errorf("brook: task %s: %w", tr.id, err)
	}
	tr.ckptWritten = maps.Clone(tr.logged)
	tr.ckptAt = time.Now()
	return nil
}
