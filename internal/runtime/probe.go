// probe.go: probing rebalances (KIP-441). Under the cooperative protocol
// the member asks its session to join again (requestRejoin, coop.go) and
// keeps its tasks; what follows describes the eager protocol, and the
// fallback when the session cannot be asked. When the leader keeps a task on
// a caught-up member while another warms it up, the warming member's
// assignment carries ProbingRebalance: the group should rebalance again
// after that delay so that the leader can move the tasks whose warm-ups
// caught up. sarama v1.61.1 has no call that asks for a rebalance, so the
// member ends its own session: the runtime gives every Consume call its
// own context and cancels it (with the cause "probing rebalance", which
// sarama sends as the JoinGroup reason, KIP-800). Consume then returns
// after the session's Cleanup (a commit, like at any rebalance), and the
// loop in consume calls it again: the member sends JoinGroup with its
// member id and new subscription data. Its warm state has changed (the
// warm-ups advanced), so the coordinator moves the group to
// PreparingRebalance and every member rejoins; the leader plans with the
// new lags. Nothing leaves the group, so no session time-out is waited
// for and no other member's tasks are reassigned beyond what the plan
// moves.
//
// The alternatives were weaker: a JoinGroup for a throw-away member id
// (then LeaveGroup) also forces a rebalance, but adds a member the plan
// sees and must be removed again, and an instance that crashes in between
// leaves it for a whole session time-out; waiting for a heartbeat's
// REBALANCE_IN_PROGRESS needs another member to act. If the coordinator
// finds this member's subscription unchanged (a warm-up that made no
// progress at all), it answers the JoinGroup with the current generation
// without a rebalance: the member reopens the same tasks and the next
// probe tries again after the delay.

package runtime

import (
	"errors"
	"time"

	"github.com/brookstream/brook/internal/assign"
)

// errProbing is the cause of a session ended for a probing rebalance.
var errProbing = errors.New("brook: probing rebalance: warm-up copies may be ready to take their tasks over")

// probeEarliest is the least time a session runs before its member probes
// early (its warm-ups caught up before ProbingRebalance): a guard against
// a rebalance loop when the leader keeps assigning warm-ups that are
// already within the acceptable lag.
const probeEarliest = 5 * time.Second

// probePoll is how often a member with warm-ups checks whether they are
// within the acceptable lag.
const probePoll = time.Second

// startProbe, for an assignment with a probing delay, starts the
// goroutine (owned by the session: it ends with the session, or with the
// next assignment under the cooperative protocol) that makes the group
// rebalance once the delay has passed, or earlier once every warm-up here
// is within the acceptable recovery lag.
func (h *handler) startProbe(a assign.MemberAssignment) {
	if a.ProbingRebalance <= 0 {
		return
	}
	r := h.r
	lag := r.cfg.AcceptableRecoveryLag
	if lag <= 0 {
		lag = assign.DefaultAcceptableRecoveryLag
	}
	h.mu.Lock()
	if !h.live {
		h.mu.Unlock()
		return
	}
	sessStop, sess := h.stop, h.sess
	h.stopProbe()
	h.probeStop = make(chan struct{})
	stop := h.probeStop
	h.wg.Add(1)
	h.mu.Unlock()
	began := time.Now()
	go func() {
		defer h.wg.Done()
		deadline := time.NewTimer(a.ProbingRebalance)
		defer deadline.Stop()
		tick := time.NewTicker(probePoll)
		defer tick.Stop()
		reason := "probing interval elapsed"
		for {
			select {
			case <-stop:
				return
			case <-sessStop:
				return
			case <-deadline.C:
			case <-tick.C:
				r.mu.Lock()
				sb := r.standbys
				r.mu.Unlock()
				if time.Since(began) < probeEarliest || !sb.warmupsCaughtUp(lag) {
					continue
				}
				reason = "warm-ups within the acceptable recovery lag"
			}
			r.log.Info("brook: probing rebalance: rejoining the group so the leader can move tasks whose warm-ups caught up",
				"reason", reason, "warmups", len(a.Warmup), "generation", a.Generation)
			if h.cooperative && requestRejoin(sess, errProbing) {
				return // the session, and its tasks, go on
			}
			r.endSession(errProbing)
			return
		}
	}()
}

// stopProbe ends the probing timer of the previous assignment. h.mu is
// held.
func (h *handler) stopProbe() {
	if h.probeStop != nil {
		close(h.probeStop)
		h.probeStop = nil
	}
}

// endSession ends the current group session with cause (consume then
// joins the group again).
func (r *Runtime) endSession(cause error) {
	r.mu.Lock()
	end := r.sessionEnd
	r.mu.Unlock()
	if end != nil {
		end(cause)
	}
}
