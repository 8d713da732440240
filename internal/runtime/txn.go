package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/store"
)

// TransactionalID returns the Kafka transactional id of a task's producer
// under exactly-once: "<application id>-<task id>". Every instance that
// runs the task uses the same id, so the one that opens it last fences all
// earlier ones.
func TransactionalID(appID string, id assign.TaskID) string {
	return appID + "-" + id.String()
}

// txnProducer is the transactional producer of one task under
// exactly-once. A transaction is always open (BeginTxn only changes local
// state, so an idle one costs nothing); commitTask ends it and begins the
// next.
type txnProducer struct {
	*changelog.Producer
	ap  sarama.AsyncProducer
	tid string
	// sent reports that records went into the open transaction. Only the
	// task's worker goroutine touches it.
	sent bool
}

// newTxnProducer creates the transactional producer of task id. Creating
// it registers the transactional id with the coordinator
// (InitProducerId): that bumps the id's epoch, which fences every older
// producer with the same id (a zombie), and aborts a transaction such a
// producer left open, so the changelog's last stable offset moves past it
// before the task restores.
func (r *Runtime) newTxnProducer(id assign.TaskID) (*txnProducer, error) {
	pcfg := *r.cfg.Sarama
	pcfg.Producer.Partitioner = newBrookPartitioner
	pcfg.Producer.Return.Successes = true
	pcfg.Producer.Return.Errors = true
	pcfg.Producer.RequiredAcks = sarama.WaitForAll
	pcfg.Producer.Idempotent = true
	pcfg.Net.MaxOpenRequests = 1
	if pcfg.Producer.Retry.Max < 10 {
		pcfg.Producer.Retry.Max = 10
	}
	pcfg.Producer.Transaction.ID = TransactionalID(r.cfg.ApplicationID, id)
	ap, err := sarama.NewAsyncProducer(r.cfg.Brokers, &pcfg)
	if err != nil {
		return nil, fmt.Errorf("brook: task %s: transactional producer %q: %w", id, pcfg.Producer.Transaction.ID, err)
	}
	tp := &txnProducer{Producer: changelog.NewProducer(ap), ap: ap, tid: pcfg.Producer.Transaction.ID}
	if err := ap.BeginTxn(); err != nil {
		_ = tp.Producer.Close()
		return nil, fmt.Errorf("brook: task %s: begin transaction: %w", id, err)
	}
	return tp, nil
}

// fenceAssigned registers the transactional id of every task the last
// assignment gave this member, and closes the producers again. It runs
// when the group session could not start because the committed offsets of
// its partitions are unstable: a previous owner (crashed, or a zombie)
// left a transaction open that holds offsets for them, and the
// read_committed offset fetch waits for it. Registering the id ends that
// transaction at once (aborted, or completed if it was already being
// committed) instead of after the transaction timeout; the session then
// starts again and fetches stable offsets. The tasks are this member's in
// the current generation, so fencing their previous owners is right.
func (r *Runtime) fenceAssigned(ctx context.Context) {
	a, ok := r.strategy.Assignment()
	if !ok {
		return
	}
	for _, id := range a.Local() {
		if ctx.Err() != nil {
			return
		}
		tp, err := r.newTxnProducer(id)
		if err != nil {
			r.log.Warn("brook: fence the previous owner of a task", "task", id.String(), "err", err)
			continue
		}
		tp.close(r.log)
		r.log.Info("brook: fenced the previous owner of a task whose offsets were unstable", "task", id.String())
	}
	// Give the group coordinator a moment to apply the transaction markers.
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// abort aborts the open transaction if anything went into it. Errors are
// logged: a fenced producer cannot abort, and the broker aborts its
// transaction anyway (when the new owner registers the id, or at the
// transaction timeout).
func (tp *txnProducer) abort(log *slog.Logger) {
	tp.Flush() // sarama ends a transaction only after its records are settled
	if !tp.sent && tp.ap.TxnStatus()&sarama.ProducerTxnFlagInError == 0 {
		return
	}
	tp.sent = false
	if err := tp.ap.AbortTxn(); err != nil {
		log.Warn("brook: abort transaction", "transactional.id", tp.tid, "err", err)
		return
	}
	log.Info("brook: transaction aborted", "transactional.id", tp.tid)
}

// close aborts an open transaction and closes the producer.
func (tp *txnProducer) close(log *slog.Logger) {
	tp.abort(log)
	_ = tp.Producer.Close()
}

// fencedError reports that another instance now owns a task: its
// producer was fenced, or the group moved on to a new generation before
// the task's offsets could be committed. The task's uncommitted work is
// dropped; it is not a fatal error.
func fencedError(err error) bool {
	for _, e := range []error{
		sarama.ErrProducerFenced, sarama.ErrInvalidProducerEpoch,
		sarama.ErrIllegalGeneration, sarama.ErrUnknownMemberId,
		sarama.ErrFencedInstancedId, sarama.ErrRebalanceInProgress,
		sarama.ErrInvalidProducerIDMapping,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// commitTasksEOS commits every task of tasks in its own transaction. A
// task found fenced is lost (dropped until the next rebalance). A task
// whose commit fails otherwise is dropped (its transaction aborted) and
// the other tasks still commit: their transactions are independent. The
// first such failure is returned as a *droppedTaskError.
func (h *handler) commitTasksEOS(sess sarama.ConsumerGroupSession, tasks []*taskRun) error {
	var first error
	for _, tr := range tasks {
		if tr.isLost() {
			continue
		}
		err := h.commitTaskEOS(sess, tr)
		if err == nil {
			continue
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
func (h *handler) commitTaskEOS(sess sarama.ConsumerGroupSession, tr *taskRun) error {
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
		return fmt.Errorf("brook: task %s: commit: %w", tr.id, err)
	}
	if len(offs) == 0 && !tp.sent {
		return nil
	}
	if len(offs) > 0 {
		pom := map[string][]*sarama.PartitionOffsetMetadata{}
		for _, o := range offs {
			pom[o.Topic] = append(pom[o.Topic], &sarama.PartitionOffsetMetadata{Partition: o.Partition, Offset: o.Offset})
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
		if err := store.WriteCheckpoint(tr.dir, tr.logged); err != nil {
			return fmt.Errorf("brook: task %s: %w", tr.id, err)
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

// loseTask drops a task another instance now owns: its transaction is
// aborted (if the producer still can), its uncommitted writes die with its
// overlays when it closes, and its claim returns, which ends the group
// session so that this instance rejoins and learns its new assignment.
func (h *handler) loseTask(tr *taskRun, err error) {
	h.r.log.Warn("brook: task fenced: another instance owns it now; its uncommitted work is dropped",
		"task", tr.id.String(), "transactional.id", tr.txn.tid, "err", err)
	h.discardTask(tr)
	h.r.countFenced()
}

func (tr *taskRun) isLost() bool {
	select {
	case <-tr.gone:
		return true
	default:
		return false
	}
}

func (tr *taskRun) markLost() {
	if !tr.isLost() {
		close(tr.gone)
	}
}

// countTxn and countFenced keep exactly-once statistics.
func (r *Runtime) countTxn() {
	r.mu.Lock()
	r.txnStats.Committed++
	r.mu.Unlock()
}

func (r *Runtime) countFenced() {
	r.mu.Lock()
	r.txnStats.Fenced++
	r.mu.Unlock()
}

// TxnStats counts exactly-once transactions.
type TxnStats struct {
	// Committed is the number of transactions committed.
	Committed int64
	// Fenced is the number of times a task was found owned by another
	// instance (fenced producer or stale group generation).
	Fenced int64
}

// TxnStats returns the exactly-once statistics so far.
func (r *Runtime) TxnStats() TxnStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.txnStats
}
