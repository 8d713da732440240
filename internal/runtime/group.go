package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/store"
)

// Requests to the group coordinator that the runtime makes itself rather
// than through sarama's session, because it must read their answers:
// sarama's ConsumerGroupSession.Commit reports nothing (errors only reach
// the group's error channel, detached from the commit), so a member that
// lost its place in the group would go on writing changelog records and
// checkpoints as if its commit had succeeded.

// ErrMembershipLost is wrapped by the errors that report that this
// instance is no longer a member of the group generation its session
// belongs to (the coordinator answered UNKNOWN_MEMBER_ID,
// ILLEGAL_GENERATION, FENCED_INSTANCE_ID, GROUP_ID_NOT_FOUND, or
// REBALANCE_IN_PROGRESS to an offset commit), or that the coordinator
// could not confirm the membership. Its tasks may already run elsewhere.
var ErrMembershipLost = errors.New("brook: the group membership of this instance is lost or cannot be confirmed")

// membershipError reports whether a coordinator error means that the
// member is no longer part of its session's generation (a group that no
// longer exists has no members).
func membershipError(err error) bool {
	for _, e := range []error{
		sarama.ErrUnknownMemberId, sarama.ErrIllegalGeneration,
		sarama.ErrFencedInstancedId, sarama.ErrRebalanceInProgress,
		sarama.ErrGroupIDNotFound,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// coordinatorRetriable reports whether a coordinator request failed for a
// reason another attempt (after finding the coordinator again) may cure.
func coordinatorRetriable(err error) bool {
	for _, e := range []error{
		sarama.ErrNotCoordinatorForConsumer, sarama.ErrConsumerCoordinatorNotAvailable,
		sarama.ErrOffsetsLoadInProgress, sarama.ErrRequestTimedOut, sarama.ErrNotConnected,
		sarama.ErrOutOfBrokers, sarama.ErrClosedClient, sarama.ErrUnstableOffsetCommit,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

// coordinatorAttempts bounds the attempts of one coordinator request; the
// backoff between them is the client's metadata retry backoff.
const coordinatorAttempts = 5

// withCoordinator calls fn with the group's coordinator until it succeeds,
// fails for a reason that is not retriable, or coordinatorAttempts have
// failed. Between attempts it looks the coordinator up again.
func (r *Runtime) withCoordinator(ctx context.Context, what string, fn func(*sarama.Broker) error) error {
	group := r.cfg.ApplicationID
	backoff := r.cfg.Sarama.Metadata.Retry.Backoff
	if backoff <= 0 {
		backoff = 250 * time.Millisecond
	}
	var err error
	for attempt := 0; attempt < coordinatorAttempts; attempt++ {
		if attempt > 0 {
			_ = r.client.RefreshCoordinator(group)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("brook: %s: %w (last error: %w)", what, ctx.Err(), err)
			case <-t.C:
			}
		}
		var coord *sarama.Broker
		coord, err = r.client.Coordinator(group)
		if err == nil {
			err = fn(coord)
		}
		if err == nil || !coordinatorRetriable(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("brook: %s of group %q: %w", what, group, err)
	}
	return nil
}

// groupCommitter is what an at-least-once commit asks of the group: is
// this instance still a member of the session's generation, and commit
// these offsets for it. Both return ErrMembershipLost when the
// generation is gone.
type groupCommitter interface {
	checkMembership(ctx context.Context, sess sarama.ConsumerGroupSession) error
	commitOffsets(ctx context.Context, sess sarama.ConsumerGroupSession, offs []task.Offset) error
}

// coordinatorGroup asks the group coordinator itself (sarama's session
// commit hides the coordinator's answers).
type coordinatorGroup struct{ r *Runtime }

func (g coordinatorGroup) checkMembership(ctx context.Context, sess sarama.ConsumerGroupSession) error {
	return g.r.checkMembership(ctx, sess)
}

func (g coordinatorGroup) commitOffsets(ctx context.Context, sess sarama.ConsumerGroupSession, offs []task.Offset) error {
	return g.r.commitOffsets(ctx, sess, offs)
}

// checkMembership asks the group coordinator whether this instance is
// still a member of the generation of sess, with a heartbeat of the
// session's member id and generation. It returns nil when it is (a
// rebalance in progress still counts: an eager member commits its work
// before it joins again), an error wrapping ErrMembershipLost and the
// coordinator's answer when it is not or when the coordinator could not
// be asked, and any other error as it is.
func (r *Runtime) checkMembership(ctx context.Context, sess sarama.ConsumerGroupSession) error {
	err := r.withCoordinator(ctx, "membership check", func(coord *sarama.Broker) error {
		resp, err := coord.Heartbeat(r.heartbeatRequest(sess))
		if err != nil {
			return err
		}
		if resp.Err == sarama.ErrNoError || resp.Err == sarama.ErrRebalanceInProgress {
			return nil
		}
		return resp.Err
	})
	switch {
	case err == nil:
		return nil
	case membershipError(err), coordinatorRetriable(err), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: member %s, generation %d: %w", ErrMembershipLost, sess.MemberID(), sess.GenerationID(), err)
	}
	return err
}

func (r *Runtime) heartbeatRequest(sess sarama.ConsumerGroupSession) *sarama.HeartbeatRequest {
	v := r.cfg.Sarama.Version
	req := &sarama.HeartbeatRequest{GroupId: r.cfg.ApplicationID, MemberId: sess.MemberID(), GenerationId: sess.GenerationID()}
	switch {
	case v.IsAtLeast(sarama.V2_4_0_0):
		req.Version = 4
	case v.IsAtLeast(sarama.V2_3_0_0):
		req.Version = 3
	case v.IsAtLeast(sarama.V2_0_0_0):
		req.Version = 2
	case v.IsAtLeast(sarama.V0_11_0_0):
		req.Version = 1
	}
	if req.Version >= 3 {
		req.GroupInstanceId = r.instanceID()
	}
	return req
}

func (r *Runtime) instanceID() *string {
	if id := r.cfg.Sarama.Consumer.Group.InstanceId; id != "" {
		return &id
	}
	return nil
}

// commitOffsets commits offs for the generation of sess and reads the
// answer for every partition. It returns nil when every partition was
// committed; an error wrapping ErrMembershipLost when the coordinator
// says the member left the generation (or could not be reached, so the
// outcome is unknown); any other refusal (authorization, unknown topic,
// ...) as an error naming the partition.
func (r *Runtime) commitOffsets(ctx context.Context, sess sarama.ConsumerGroupSession, offs []task.Offset) error {
	if len(offs) == 0 {
		return nil
	}
	req := r.offsetCommitRequest(sess, offs)
	err := r.withCoordinator(ctx, "offset commit", func(coord *sarama.Broker) error {
		resp, err := coord.CommitOffset(req)
		if err != nil {
			return err
		}
		var retry, other error
		for _, o := range offs {
			kerr := sarama.ErrIncompleteResponse
			if ps, ok := resp.Errors[o.Topic]; ok {
				if e, ok := ps[o.Partition]; ok {
					kerr = e
				}
			}
			switch {
			case kerr == sarama.ErrNoError:
			case membershipError(kerr):
				return kerr // the whole generation is gone
			case coordinatorRetriable(kerr):
				retry = kerr
			case other == nil:
				other = fmt.Errorf("%s[%d] at offset %d: %w", o.Topic, o.Partition, o.Offset, kerr)
			}
		}
		if other != nil {
			return other
		}
		return retry
	})
	switch {
	case err == nil:
		return nil
	case membershipError(err), coordinatorRetriable(err), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: member %s, generation %d: %w", ErrMembershipLost, sess.MemberID(), sess.GenerationID(), err)
	}
	return err
}

func (r *Runtime) offsetCommitRequest(sess sarama.ConsumerGroupSession, offs []task.Offset) *sarama.OffsetCommitRequest {
	v := r.cfg.Sarama.Version
	req := &sarama.OffsetCommitRequest{
		Version: 1, ConsumerGroup: r.cfg.ApplicationID,
		ConsumerGroupGeneration: sess.GenerationID(), ConsumerID: sess.MemberID(),
	}
	switch {
	case v.IsAtLeast(sarama.V2_4_0_0):
		req.Version = 8
	case v.IsAtLeast(sarama.V2_3_0_0):
		req.Version = 7
	case v.IsAtLeast(sarama.V2_1_0_0):
		req.Version = 6
	case v.IsAtLeast(sarama.V2_0_0_0):
		req.Version = 4
	case v.IsAtLeast(sarama.V0_11_0_0):
		req.Version = 3
	case v.IsAtLeast(sarama.V0_9_0_0):
		req.Version = 2
	}
	if req.Version >= 7 {
		req.GroupInstanceId = r.instanceID()
	}
	if req.Version >= 2 && req.Version < 5 {
		req.RetentionTime = -1
	}
	ts := int64(0)
	if req.Version == 1 {
		ts = sarama.ReceiveTime
	}
	for _, o := range offs {
		// The metadata carries the task's stream time, so that its next
		// owner resumes from it (restoredStreamTimes).
		req.AddBlockWithLeaderEpoch(o.Topic, o.Partition, o.Offset, -1, ts, task.EncodeStreamTime(o.StreamTime))
	}
	return req
}

// committedOffsets fetches the group's committed offsets of tps (read
// stable under exactly-once: a pending transactional commit is waited
// for). A partition without a committed offset gets -1.
func (r *Runtime) committedOffsets(ctx context.Context, tps []store.TopicPartition) (map[store.TopicPartition]int64, error) {
	committed, err := r.fetchCommitted(ctx, tps)
	if err != nil {
		return nil, err
	}
	out := make(map[store.TopicPartition]int64, len(committed))
	for tp, c := range committed {
		out[tp] = c.offset
	}
	return out, nil
}

// committedOffset is a partition's committed offset (-1 when none) and
// the metadata committed with it.
type committedOffset struct {
	offset   int64
	metadata string
}

// fetchCommitted fetches the group's committed offsets of tps and their
// metadata, as committedOffsets describes.
func (r *Runtime) fetchCommitted(ctx context.Context, tps []store.TopicPartition) (map[store.TopicPartition]committedOffset, error) {
	out := make(map[store.TopicPartition]committedOffset, len(tps))
	if len(tps) == 0 {
		return out, nil
	}
	parts := map[string][]int32{}
	for _, tp := range tps {
		parts[tp.Topic] = append(parts[tp.Topic], tp.Partition)
	}
	err := r.withCoordinator(ctx, "committed offsets fetch", func(coord *sarama.Broker) error {
		req := sarama.NewOffsetFetchRequest(r.cfg.Sarama.Version, r.cfg.ApplicationID, parts)
		if r.cfg.Sarama.Consumer.IsolationLevel == sarama.ReadCommitted && req.Version >= 7 {
			req.RequireStable = true
		}
		resp, err := coord.FetchOffset(req)
		if err != nil {
			return err
		}
		if gerr := resp.GroupError(); gerr != sarama.ErrNoError {
			return gerr
		}
		for _, tp := range tps {
			blk := resp.GetBlock(tp.Topic, tp.Partition)
			if blk == nil {
				return fmt.Errorf("%s: %w", tp, sarama.ErrIncompleteResponse)
			}
			if blk.Err != sarama.ErrNoError {
				return fmt.Errorf("%s: %w", tp, blk.Err)
			}
			out[tp] = committedOffset{offset: blk.Offset, metadata: blk.Metadata}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// restoredStreamTimes returns the stream time each task of the session
// resumes from: the largest one committed (task.EncodeStreamTime) with the
// offsets of the task's claimed partitions. A task without one is absent
// (its stream time is unknown until its first record). Metadata another
// client wrote, or that this version cannot read, counts as unknown and
// is logged (at debug level when it is not brook's).
func (r *Runtime) restoredStreamTimes(ctx context.Context, claims map[string][]int32) (map[assign.TaskID]time.Time, error) {
	var tps []store.TopicPartition
	for topic, parts := range claims {
		for _, p := range parts {
			tps = append(tps, store.TopicPartition{Topic: topic, Partition: p})
		}
	}
	committed, err := r.fetchCommitted(ctx, tps)
	if err != nil {
		return nil, fmt.Errorf("%w (needed to restore the tasks' stream time)", err)
	}
	out := map[assign.TaskID]time.Time{}
	for tp, c := range committed {
		id, ok := r.strategy.TaskOf(tp.Topic, tp.Partition)
		if !ok {
			continue
		}
		st, err := task.ParseStreamTime(c.metadata)
		switch {
		case errors.Is(err, task.ErrForeignMetadata):
			r.log.Debug("brook: committed offset metadata is not brook's: stream time unknown for this partition",
				"task", id.String(), "topic", tp.Topic, "partition", tp.Partition, "metadata", c.metadata)
			continue
		case err != nil:
			r.log.Warn("brook: committed offset metadata unreadable: stream time unknown for this partition", "action", "nothing if another tool committed this group's offsets; stream time restarts from the next record (windows may close later)",
				"task", id.String(), "topic", tp.Topic, "partition", tp.Partition, "err", err)
			continue
		case st.IsZero():
			continue
		}
		if prev, ok := out[id]; !ok || st.After(prev) {
			out[id] = st
		}
	}
	return out, nil
}

// loseMembership drops tasks whose commit cannot be confirmed because this
// instance is no longer a member of its session's generation, or the
// coordinator could not say: what Kafka Streams calls a migrated task. Their
// uncommitted work is discarded, they are neither processed nor committed
// again, and their claims return, which ends the session; the instance
// then joins the group again. Their checkpoints stay at their last commit,
// so when a task comes back its restore replays every changelog record
// written since, its meanwhile owner's included.
//
// applied says that the commit had already written the tasks' store
// writes to their engines. A logged store is still right (its restore
// replays the changelog records of those writes, which were acknowledged
// before), but a table's engine may now hold source records past the
// committed offset it restores up to: its checkpoint entry is dropped, so
// it restores from the beginning.
func (h *handler) loseMembership(tasks []*taskRun, err error, applied bool) {
	r := h.r
	ids := make([]string, len(tasks))
	for i, tr := range tasks {
		ids[i] = tr.id.String()
	}
	r.log.Warn("brook: group membership lost or unconfirmed: tasks closed without committing; their work since the last commit is left to their next owner",
		"action", "nothing if rare (the instance rejoins); if frequent, processing of a batch outlasts the session or poll timeout: raise them or lower CommitInterval", "tasks", ids, "err", err)
	for _, tr := range tasks {
		h.discardTask(tr)
		if applied {
			tr.forgetTables(r)
		}
	}
}

// forgetTables rewrites the task's checkpoint without its tables' entries
// (the previous checkpoint otherwise), so that they restore from the
// beginning.
func (tr *taskRun) forgetTables(r *Runtime) {
	keep := make(map[store.TopicPartition]int64, len(tr.logged))
	for tp, off := range tr.logged {
		if !tr.tables[tp] {
			keep[tp] = off
		}
	}
	if len(keep) == len(tr.logged) {
		return
	}
	err := store.WriteCheckpoint(tr.dir, keep)
	if err != nil {
		err = errors.Join(err, store.RemoveCheckpoint(tr.dir))
	}
	if err != nil {
		r.log.Error("brook: cannot drop the table entries of a checkpoint", "task", tr.id.String(), "err", err)
	}
}
