package assign

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/IBM/sarama"
)

// ErrNoAssignment is returned by Routing before this member has received
// an assignment it could read.
var ErrNoAssignment = errors.New("assign: no assignment received yet")

// RoutingError reports that the whole assignment of this member's
// generation cannot be assembled now: the group is rebalancing, some
// member holds another generation, or the group coordinator cannot be
// asked. Asking again later (after a rebalance completes) succeeds.
type RoutingError struct {
	// Generation is this member's generation.
	Generation int32
	// Reason says what is missing.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *RoutingError) Error() string {
	msg := fmt.Sprintf("assign: the assignment of generation %d cannot be routed yet: %s", e.Generation, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *RoutingError) Unwrap() error { return e.Err }

// Routing returns the whole assignment of this member's current
// generation: every member with its query endpoint, tasks, standby and
// warm-up tasks, which interactive queries need to route a key to its
// owner (Assignment.Owner) or to a standby (Assignment.Standbys).
//
// No member receives it from the leader (that would make every member's
// assignment as large as the group's, see the package doc). Routing
// assembles it from the group coordinator's description of the group
// (Config.Describe): each member's endpoint comes from its subscription
// data, its tasks from its assignment (active ones from the partitions,
// standbys and warm-ups from the assignment data), and every assignment must belong
// to this member's generation. The coordinator describes members only
// while the group is stable, so during a rebalance Routing fails with a
// *RoutingError, as it does when the coordinator cannot be reached.
//
// The answer is cached until the next assignment or member id; a failure
// is reused for DefaultRoutingRetry. Concurrent callers share one
// description. The Assignment shares its slices with the cache: callers
// must not modify them.
func (s *Strategy) Routing(ctx context.Context) (Assignment, error) {
	for {
		s.mu.Lock()
		cur := s.current
		if cur == nil {
			s.mu.Unlock()
			return Assignment{}, ErrNoAssignment
		}
		gen := cur.Generation
		if s.routes != nil && s.routes.Generation == gen {
			a := *s.routes
			s.mu.Unlock()
			return a, nil
		}
		if s.routeErr != nil && s.routeErrGen == gen && time.Since(s.routeErrAt) < s.retry {
			err := s.routeErr
			s.mu.Unlock()
			return Assignment{}, err
		}
		if s.describe == nil {
			s.mu.Unlock()
			return Assignment{}, &RoutingError{Generation: gen, Reason: "no way to describe the group is configured"}
		}
		if ch := s.fetching; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return Assignment{}, &RoutingError{Generation: gen, Reason: "waiting for the group's description", Err: ctx.Err()}
			}
		}
		ch := make(chan struct{})
		s.fetching = ch
		own, self := cur.clone(), s.memberID
		s.mu.Unlock()

		a, err := s.assemble(ctx, own, self)

		s.mu.Lock()
		s.fetching = nil
		close(ch)
		if s.current != nil && s.current.Generation == gen && s.memberID == self {
			if err == nil {
				s.routes = &a
			} else if ctx.Err() == nil {
				// A caller's ended context says nothing about the
				// group: do not make others wait for it.
				s.routeErr, s.routeErrGen, s.routeErrAt = err, gen, time.Now()
			}
		}
		s.mu.Unlock()
		return a, err
	}
}

// assemble describes the group and builds the whole assignment of own's
// generation from the description.
func (s *Strategy) assemble(ctx context.Context, own MemberAssignment, self string) (Assignment, error) {
	fail := func(err error, format string, args ...any) (Assignment, error) {
		return Assignment{}, &RoutingError{Generation: own.Generation, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	if self == "" {
		return fail(nil, "this member's id is not known yet")
	}
	desc, err := s.describe(ctx)
	if err != nil {
		return fail(err, "describe the group")
	}
	return s.routingFrom(desc, own, self)
}

// routingFrom builds the whole assignment of own's generation from the
// group's description, in which this member is self.
func (s *Strategy) routingFrom(desc *sarama.GroupDescription, own MemberAssignment, self string) (Assignment, error) {
	fail := func(err error, format string, args ...any) (Assignment, error) {
		return Assignment{}, &RoutingError{Generation: own.Generation, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	switch {
	case desc == nil:
		return fail(nil, "the coordinator returned no description")
	case !errors.Is(desc.Err, sarama.ErrNoError):
		return fail(desc.Err, "describe the group")
	case desc.State != "Stable":
		return fail(nil, "the group is %s (rebalancing)", desc.State)
	case desc.Protocol != StrategyName:
		return fail(nil, "the group runs protocol %q, not %q", desc.Protocol, StrategyName)
	}
	a := Assignment{Generation: own.Generation, Self: -1, Partitions: maps.Clone(own.Partitions),
		owners: make(map[TaskID]int), standbys: make(map[TaskID][]int), warmups: make(map[TaskID][]int)}
	ids := slices.Sorted(maps.Keys(desc.Members))
	unreadable := 0
	for i, id := range ids {
		m := desc.Members[id]
		if m == nil {
			return fail(nil, "member %s has no description", id)
		}
		h := Host{MemberID: id}
		// The endpoint: a member whose subscription cannot be read (an
		// older brook) is listed without one.
		if meta, err := m.GetMemberMetadata(); err == nil && meta != nil {
			if d, err := DecodeMemberData(meta.UserData); err == nil {
				h.Endpoint = d.Endpoint
			} else {
				unreadable++
			}
		} else {
			unreadable++
		}
		asg, err := m.GetMemberAssignment()
		if err != nil || asg == nil {
			return fail(err, "member %s's assignment cannot be read", id)
		}
		ma, err := DecodeMemberAssignment(asg.UserData)
		if err != nil {
			return fail(err, "member %s's assignment data", id)
		}
		if ma.Generation != own.Generation {
			return fail(nil, "member %s holds generation %d", id, ma.Generation)
		}
		if h.Tasks, err = s.Tasks(asg.Topics); err != nil {
			return fail(err, "member %s's partitions", id)
		}
		for _, t := range h.Tasks {
			if j, dup := a.owners[t]; dup {
				return fail(nil, "task %s is assigned to both %s and %s", t, ids[j], id)
			}
			a.owners[t] = i
		}
		h.Standby, h.Warmup = ma.Standby, ma.Warmup
		if err := s.checkCopies(MemberAssignment{Partitions: a.Partitions, Tasks: h.Tasks, Standby: h.Standby, Warmup: h.Warmup}); err != nil {
			return fail(err, "member %s's standby and warm-up tasks", id)
		}
		for _, t := range h.Standby {
			a.standbys[t] = append(a.standbys[t], i)
		}
		for _, t := range h.Warmup {
			a.warmups[t] = append(a.warmups[t], i)
		}
		if id == self {
			if !slices.Equal(h.Tasks, own.Tasks) || !slices.Equal(h.Standby, own.Standby) || !slices.Equal(h.Warmup, own.Warmup) {
				return fail(nil, "the coordinator lists tasks %v, standbys %v, warm-ups %v for this member, which received %v, %v, %v",
					h.Tasks, h.Standby, h.Warmup, own.Tasks, own.Standby, own.Warmup)
			}
			a.Self = i
		}
		a.Hosts = append(a.Hosts, h)
	}
	// A copy on the member running the task would be no copy.
	for t, hs := range a.standbys {
		if o, ok := a.owners[t]; ok && slices.Contains(hs, o) {
			return fail(nil, "member %s runs task %s and keeps a standby of it", ids[o], t)
		}
	}
	if a.Self < 0 {
		return fail(nil, "this member (%s) is not in the group", self)
	}
	if unreadable > 0 {
		s.log.Warn("brook assignor: members whose subscription cannot be read are listed without a query endpoint", "action", "run the same brook version on every instance of an application id", "members", unreadable, "generation", own.Generation)
	}
	return a, nil
}
