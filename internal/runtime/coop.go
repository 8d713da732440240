// coop.go: what the cooperative rebalance protocol (KIP-429) needs around
// sarama v1.61.1. With it, a rebalance keeps the session: Setup runs once,
// a claim that moves away has its Messages channel closed (ConsumeClaim
// then commits and closes its task: revokeTask), a claim that arrives gets
// a new ConsumeClaim (which opens its task: openAdded), and the tasks that
// stay go on processing throughout. Three things sarama does not give:
//
//   - Knowing that a new generation is being negotiated. Between the
//     JoinGroup request and the moment the session carries the new
//     generation, an offset commit with the old generation is refused
//     (ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS), which the commit path
//     must not take for a lost membership, and which under exactly-once
//     would abort a transaction. groupStrategy wraps the assignor:
//     sarama calls SubscriptionUserData just before each JoinGroup and
//     OnAssignment just after the SyncGroup, and commitGate holds commits
//     from the one to the session showing the new generation (and holds
//     the join until a commit in flight has its answer).
//   - Learning the new assignment before claims are revoked and added:
//     OnAssignment tells the handler (handler.assigned), which stops
//     restores of tasks that left, re-plans the standby copies, fences the
//     previous owners of arriving tasks under exactly-once, and starts the
//     probing timer.
//   - Asking for a rebalance (a probing rebalance, KIP-441). sarama has no
//     call for it (Java's enforceRebalance); its session has a one-slot
//     channel that its heartbeat loop signals on REBALANCE_IN_PROGRESS and
//     that its cooperative loop answers by joining again. requestRejoin
//     signals that channel through reflection: checked when the runtime
//     starts (rejoinSupported), for the pinned sarama version. Without it
//     the probe ends the session instead (as under the eager protocol),
//     which closes every task.

package runtime

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
)

// groupStrategy is the balance strategy the runtime gives sarama: the
// assignor (which declares the rebalance protocols: assign.Config's
// Cooperative), with hooks around the join.
type groupStrategy struct {
	*assign.Strategy
	gate *commitGate
	// beforeJoin is called before each JoinGroup, before the gate closes.
	beforeJoin func()
	// assigned is called after each SyncGroup with the member's new
	// assignment (the strategy has already decoded it).
	assigned func(generation int32)
}

// SubscriptionUserData implements sarama.SubscriptionUserDataBalanceStrategy.
// sarama calls it just before each JoinGroup: commits wait from here until
// the session carries the generation the join ends in.
func (g *groupStrategy) SubscriptionUserData(topics []string) ([]byte, error) {
	if g.beforeJoin != nil {
		g.beforeJoin()
	}
	g.gate.joining()
	return g.Strategy.SubscriptionUserData(topics)
}

// OnAssignment implements sarama.OnAssignmentBalanceStrategy.
func (g *groupStrategy) OnAssignment(a *sarama.ConsumerGroupMemberAssignment, generation int32) {
	g.Strategy.OnAssignment(a, generation)
	g.gate.joined(generation)
	if g.assigned != nil {
		g.assigned(generation)
	}
}

// commitGate keeps offset commits out of the window in which the member
// is negotiating a new generation.
type commitGate struct {
	mu       sync.Mutex
	cond     *sync.Cond
	inJoin   bool
	gen      int32 // the generation the last join ended in
	inflight int
	// bound is the longest a commit waits for a join (and a join for the
	// commits in flight): the rebalance time-out, past which the member
	// is out of the group anyway.
	bound time.Duration
}

func newCommitGate(bound time.Duration) *commitGate {
	g := &commitGate{gen: -1, bound: bound}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// joining marks a join in progress. It waits (at most bound) for the
// commits in flight, which carry the old generation, to get their
// answer.
func (g *commitGate) joining() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inJoin = true
	deadline := time.Now().Add(g.bound)
	for g.inflight > 0 && time.Now().Before(deadline) {
		g.waitUntil(deadline)
	}
}

// joined records the generation a join ended in.
func (g *commitGate) joined(gen int32) {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.inJoin = false
	g.gen = gen
	g.cond.Broadcast()
	g.mu.Unlock()
}

// reset forgets a join that ended without an assignment (the session
// ended).
func (g *commitGate) reset() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.inJoin = false
	g.cond.Broadcast()
	g.mu.Unlock()
}

// enter waits until no join is in progress and the session shows the
// generation of the last join, then counts a commit in flight; leave
// must follow. It gives up waiting when ctx ends or after bound (the
// commit then goes ahead and learns from the coordinator where the
// member stands).
func (g *commitGate) enter(ctx context.Context, sess sarama.ConsumerGroupSession) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	deadline := time.Now().Add(g.bound)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if !g.inJoin && (g.gen < 0 || sess.GenerationID() >= g.gen) {
			break
		}
		next := time.Now().Add(5 * time.Millisecond)
		if next.After(deadline) {
			next = deadline
		}
		g.waitUntil(next)
	}
	g.inflight++
}

// tryEnter is enter without waiting: it counts a commit in flight and
// returns true only when enter would not wait.
func (g *commitGate) tryEnter(sess sarama.ConsumerGroupSession) bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inJoin || (g.gen >= 0 && sess.GenerationID() < g.gen) {
		return false
	}
	g.inflight++
	return true
}

// leave ends a commit counted by enter.
func (g *commitGate) leave() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.inflight--
	g.cond.Broadcast()
	g.mu.Unlock()
}

// waitUntil waits on the condition until it is signalled or t passes.
// g.mu is held.
func (g *commitGate) waitUntil(t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.AfterFunc(d, func() {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	g.cond.Wait()
	timer.Stop()
}

// errNoRejoin says that this sarama version's session cannot be asked to
// rejoin.
var errNoRejoin = errors.New("brook: the sarama session has no rejoin channel (sarama version changed?)")

// rejoinChannel returns the session's rejoin channel (see the file
// comment), or errNoRejoin.
func rejoinChannel(sess sarama.ConsumerGroupSession) (chan error, error) {
	v := reflect.ValueOf(sess)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, errNoRejoin
	}
	f := v.Elem().FieldByName("rejoin")
	if !f.IsValid() || f.Type() != reflect.TypeOf((chan error)(nil)) {
		return nil, errNoRejoin
	}
	ch := *(*chan error)(unsafe.Pointer(f.UnsafeAddr()))
	if ch == nil || cap(ch) == 0 {
		return nil, errNoRejoin
	}
	return ch, nil
}

// requestRejoin asks a cooperative session to join the group again (a
// probing rebalance), with cause as the JoinGroup reason. It reports
// false when the session cannot be asked.
func requestRejoin(sess sarama.ConsumerGroupSession, cause error) bool {
	ch, err := rejoinChannel(sess)
	if err != nil {
		return false
	}
	select {
	case ch <- cause:
	default: // a rejoin is already pending
	}
	return true
}

// The hooks sarama looks for on a strategy.
var (
	_ sarama.RebalanceProtocolBalanceStrategy    = (*groupStrategy)(nil)
	_ sarama.SubscriptionUserDataBalanceStrategy = (*groupStrategy)(nil)
	_ sarama.OnAssignmentBalanceStrategy         = (*groupStrategy)(nil)
)
