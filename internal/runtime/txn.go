// txn.go: the exactly-once transactional producer of a task: its
// transactional id, creating it (which fences older owners), aborting and
// closing it, recognising a fence, losing a fenced task, and the
// exactly-once statistics. The exactly-once commit is in commit.go.

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
	"github.com/brookstream/brook/internal/meter"
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
	// abortErr is the coordinator's refusal of the last abort (abort).
	abortErr error
	// meter counts the task's aborted transactions (nil: not measured).
	meter *meter.Task
}

// newTxnProducer creates the transactional producer of task id. Creating
// it registers the transactional id with the coordinator
// (InitProducerId): that bumps the id's epoch, which fences every older
// producer with the same id (a zombie), and aborts a transaction such a
// producer left open, so the changelog's last stable offset moves past it
// before the task restores.
func (r *Runtime) newTxnProducer(id assign.TaskID) (*txnProducer, error) {
	pcfg := changelog.ProducerConfig(r.cfg.Sarama, newBrookPartitioner, TransactionalID(r.cfg.ApplicationID, id))
	ap, err := sarama.NewAsyncProducer(r.cfg.Brokers, pcfg)
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
	a, ok := r.strategy.Local()
	if !ok {
		return
	}
	for _, id := range a.Tasks {
		if ctx.Err() != nil {
			return
		}
		tp, err := r.newTxnProducer(id)
		if err != nil {
			r.log.Warn("brook: fence the previous owner of a task", "action", "the task starts anyway once the broker answers; if this persists, check the transactional-id ACLs and the transaction coordinator", "task", id.String(), "err", err)
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

// abort aborts the open transaction if anything went into it, and returns
// the coordinator's refusal, if any. A fenced producer cannot abort: the
// coordinator refuses it with PRODUCER_FENCED (fencedError), and the
// broker has aborted its transaction anyway (when the new owner registered
// the id, or at the transaction timeout). After a refusal the producer is
// in a fatal state: aborting again returns the same refusal without
// asking the coordinator again.
func (tp *txnProducer) abort(log *slog.Logger) error {
	tp.Flush() // sarama ends a transaction only after its records are settled
	status := tp.ap.TxnStatus()
	if tp.abortErr != nil && status&sarama.ProducerTxnFlagFatalError != 0 {
		return tp.abortErr
	}
	if !tp.sent && status&sarama.ProducerTxnFlagInError == 0 {
		return nil
	}
	tp.sent = false
	if err := tp.ap.AbortTxn(); err != nil {
		tp.abortErr = err
		log.Warn("brook: abort transaction", "action", "nothing: the transaction is aborted by the broker at its timeout and the task's next owner reprocesses it", "transactional.id", tp.tid, "err", err, "kafka_error", kafkaErrorName(err))
		return err
	}
	tp.meter.TxnAborted()
	log.Info("brook: transaction aborted", "transactional.id", tp.tid)
	return nil
}

// close aborts an open transaction and closes the producer.
func (tp *txnProducer) close(log *slog.Logger) {
	_ = tp.abort(log) // logged; the broker aborts what a fenced producer cannot
	_ = tp.Producer.Close()
}

// fenceErrors are the errors that mean that this instance may no longer
// commit for a task: the task's producer was fenced (its epoch is stale,
// because another producer registered the task's transactional id or the
// coordinator aborted its transaction at the transaction timeout and
// bumped the epoch; or the id no longer maps to the producer), or the
// group moved to a new generation before the task's offsets could be
// committed. In that order, with the names the log gives them.
var fenceErrors = []struct {
	err  sarama.KError
	name string
}{
	{sarama.ErrProducerFenced, "PRODUCER_FENCED"},
	{sarama.ErrInvalidProducerEpoch, "INVALID_PRODUCER_EPOCH"},
	{sarama.ErrInvalidProducerIDMapping, "INVALID_PRODUCER_ID_MAPPING"},
	{sarama.ErrIllegalGeneration, "ILLEGAL_GENERATION"},
	{sarama.ErrUnknownMemberId, "UNKNOWN_MEMBER_ID"},
	{sarama.ErrFencedInstancedId, "FENCED_INSTANCE_ID"},
	{sarama.ErrRebalanceInProgress, "REBALANCE_IN_PROGRESS"},
}

// fencedError reports that err (anywhere in its chain) is one of
// fenceErrors: another instance owns the task now, or may. The task's
// uncommitted work is dropped and the instance rejoins the group; it is
// not a fatal error.
func fencedError(err error) bool {
	return fenceName(err) != ""
}

// fenceName names the first of fenceErrors in err's chain, or "".
func fenceName(err error) string {
	for _, f := range fenceErrors {
		if errors.Is(err, f.err) {
			return f.name
		}
	}
	return ""
}

// kafkaErrorName names the Kafka error in err's chain that matters to
// the transaction's fate, for logs: sarama v1.61.1 has no text for some of
// them (PRODUCER_FENCED, code 90, prints as "Unknown error, how did this
// happen? Error code = 90").
func kafkaErrorName(err error) string {
	if n := fenceName(err); n != "" {
		return n
	}
	var ke sarama.KError
	switch {
	case errors.Is(err, sarama.ErrInvalidTxnState):
		return "INVALID_TXN_STATE"
	case errors.Is(err, sarama.ErrTransactionNotReady):
		return "transaction not ready (an earlier write of the transaction failed)"
	case errors.As(err, &ke):
		return fmt.Sprintf("Kafka error code %d", int16(ke))
	}
	return ""
}

// confirmFence decides what a failed commit of task tr means when its
// error does not name a fence on its face. After a fence the broker's
// answer to the task's next request depends on the broker and on timing:
// Kafka refuses a write with INVALID_PRODUCER_EPOCH, but the embedded
// broker (kfake) answers INVALID_TXN_STATE when the partition was already
// in the transaction the fence aborted, and once a write failed sarama
// refuses the transaction's later records itself (ErrTransactionNotReady).
// The open transaction must be aborted whatever the error, and the
// coordinator's answer to the abort is unambiguous: it refuses a fenced
// producer's abort with PRODUCER_FENCED. So the abort decides: refused as
// fenced, the returned error also wraps that refusal (and fencedError
// holds); aborted, or refused for another reason, err is returned as it
// is: a real failure, never taken for a fence.
func (h *handler) confirmFence(tr *taskRun, err error) error {
	aerr := tr.txn.abort(h.r.log)
	if !fencedError(aerr) {
		return err
	}
	return fmt.Errorf("%w (the coordinator then refused to abort the task's transaction: %w, so another producer owns its transactional id)", err, aerr)
}

// loseTask drops a fenced task: its transaction is aborted (if the
// producer still can), its uncommitted writes and changelog records are
// dropped, and its queue is closed, so its claims return (even one
// blocked on the full queue), which ends the group session. The instance
// then rejoins the group: if another instance owns the task now, the
// task stays there; if none does (the broker aborted the task's
// transaction at its timeout, with no rebalance), this instance gets it
// back and re-creates it: a new producer registers the transactional id,
// the stores restore the changelog tail, and processing resumes at the
// last committed offsets.
func (h *handler) loseTask(tr *taskRun, err error) {
	h.r.log.Warn("brook: task fenced: another instance owns it now, or may (its producer was fenced: a new owner registered its transactional id, or the broker aborted its transaction at the transaction timeout; or the group moved on); its uncommitted work is dropped and the instance rejoins the group",
		"action", "nothing if rare (exactly-once holds: the next owner redoes the work); if frequent, check for two instances sharing a state directory or a commit slower than the transaction timeout", "task", tr.id.String(), "transactional.id", tr.txn.tid, "reason", fenceName(err), "err", err)
	h.discardTask(tr)
	h.r.countFenced()
	tr.meter.Fenced()
}

func (tr *taskRun) isLost() bool {
	select {
	case <-tr.gone:
		return true
	default:
		return false
	}
}

// markLost marks the task lost and closes its queue: its buffered records
// are dropped, and a ConsumeClaim waiting for room in the queue returns.
// Only the task's worker or Cleanup call it.
func (tr *taskRun) markLost() {
	if !tr.isLost() {
		close(tr.gone)
		if tr.queue != nil {
			tr.queue.close()
		}
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
