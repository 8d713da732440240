package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/runtime"
	"github.com/brookstream/brook/internal/task"
)

// Stale reads (Kafka Streams' StoreQueryParameters.enableStaleStores):
// a query that asks for them may be answered by a standby or warm-up
// copy of the key's task (topology.Config.NumStandbyReplicas; see
// docs/RUNTIME.md) instead of the task itself, when the task does not
// run on the instance asked. A copy applies the task's changelogs a
// little after the task writes them, so its answer may be older than the
// task's: every such answer states the copy's role and lag (changelog
// offsets not yet applied, against the ends the copy listed last).

// ViewOption configures a typed view (KeyValue, Window).
type ViewOption func(*viewConfig)

type viewConfig struct {
	stale bool
}

func viewOptions(opts []ViewOption) viewConfig {
	var c viewConfig
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// WithStaleReads lets a KeyValue view read this instance's standby and
// warm-up copies of tasks that do not run here: Get (and GetFrom) of a
// key whose task runs elsewhere answers from the local copy of the task
// when there is one, and Range, Prefix and All also merge the local
// copies' keys. GetFrom says which copy answered and how far behind it
// was; StoreStatus.Standbys lists every local copy with its lag. Copies
// serve key-value stores only. Without this option a view reads active
// tasks only.
func WithStaleReads() ViewOption { return func(c *viewConfig) { c.stale = true } }

// ReadSource says which copy of a task answered a read.
type ReadSource struct {
	// Task is the key's task ("<sub-topology>_<partition>").
	Task      string `json:"task"`
	Partition int32  `json:"partition"`
	// Role is "active" (the task itself), "standby" or "warm-up" (a copy
	// of this instance).
	Role string `json:"role"`
	// Lag is how many changelog offsets of the task's stores the copy had
	// not applied when the read began, against the changelogs' ends it
	// listed last (every Config.CommitInterval once caught up; the last
	// stable offsets under exactly-once; offsets holding transaction
	// markers count). 0 for the active task, whose stores hold every
	// write it made.
	Lag int64 `json:"lag"`
}

func copySource(info runtime.CopyRead) ReadSource {
	return ReadSource{Task: info.Task.String(), Partition: info.Task.Partition, Role: info.Role, Lag: info.Lag}
}

// StandbyHost is an instance that keeps a copy of a task.
type StandbyHost struct {
	Endpoint string `json:"endpoint"`
	MemberID string `json:"member_id"`
	// Role is "standby" or "warm-up".
	Role string `json:"role"`
}

// copiesOf lists the instances with a copy of task id in asg: standbys
// first, then warm-ups.
func copiesOf(asg assign.Assignment, id assign.TaskID) []StandbyHost {
	var out []StandbyHost
	for _, h := range asg.Standbys(id) {
		out = append(out, StandbyHost{Endpoint: h.Endpoint, MemberID: h.MemberID, Role: runtime.RoleStandby})
	}
	for _, h := range asg.Warmups(id) {
		out = append(out, StandbyHost{Endpoint: h.Endpoint, MemberID: h.MemberID, Role: runtime.RoleWarmup})
	}
	return out
}

// notLocal is the *NotLocalError of a key located elsewhere.
func (l location) notLocal(store string) *NotLocalError {
	return &NotLocalError{Store: store, Partition: l.task.Partition, Task: taskName(l.task), Endpoint: l.host.Endpoint, Standbys: l.copies}
}

// withCopies fills loc.copies from the assignment of the whole group, if
// it can be had now, for metadata answers.
func (a Handle) withCopies(ctx context.Context, loc *location) {
	if loc.copies != nil || loc.task == runtime.GlobalTask {
		return
	}
	asg, err := a.rt.Strategy().Routing(ctx)
	if err != nil {
		return
	}
	loc.copies = copiesOf(asg, loc.task)
}

// readableCopiesOf returns the tasks of spec's sub-topology whose copies
// on this instance can be read now, leaving out the tasks in active
// (those run here).
func (a Handle) readableCopiesOf(spec *task.StoreSpec, active []assign.TaskID) []assign.TaskID {
	if spec.Global {
		return nil
	}
	g := a.groupOf(spec)
	var out []assign.TaskID
	for _, id := range a.rt.ReadableCopies() {
		if id.Group == g && !slices.Contains(active, id) {
			out = append(out, id)
		}
	}
	return out
}

// CopyStatus is one standby or warm-up copy of a store's task on this
// instance.
type CopyStatus struct {
	Task string `json:"task"`
	// Role is "standby" or "warm-up".
	Role string `json:"role"`
	// Queryable reports that stale reads of the store may be answered by
	// the copy now: it has opened its stores and listed its changelogs'
	// ends, and the store is a key-value store.
	Queryable bool `json:"queryable"`
	// Lag is the sum over the task's changelogs of end - offset at the
	// copy's last look (the ends it has not listed yet do not count: see
	// LagKnown).
	Lag int64 `json:"lag"`
	// LagKnown reports that the copy has listed the end of every
	// changelog it keeps.
	LagKnown bool `json:"lag_known"`
	// CaughtUp is set once the copy has reached every end at least once.
	CaughtUp bool `json:"caught_up"`
}

// copyStatuses lists this instance's copies of spec's tasks.
func (a Handle) copyStatuses(spec *task.StoreSpec) []CopyStatus {
	if spec.Global {
		return nil
	}
	g := a.groupOf(spec)
	var out []CopyStatus
	for _, st := range a.rt.StandbyStatus() {
		if st.Task.Group != g {
			continue
		}
		cs := CopyStatus{Task: st.Task.String(), Role: st.Role, Lag: st.Lag, CaughtUp: st.CaughtUp,
			LagKnown: len(st.Offsets) > 0 && len(st.Ends) == len(st.Offsets)}
		if _, ok := a.rt.CopyReadable(st.Task); ok && spec.Kind == "key-value" && !spec.InMemory {
			cs.Queryable = true
		}
		out = append(out, cs)
	}
	return out
}

// roleHeader and lagHeader carry ReadSource's Role and Lag on the
// answers of key lookups that asked for stale reads.
const (
	roleHeader = "X-Brook-Role"
	lagHeader  = "X-Brook-Lag"
)

// staleParam reads the stale parameter of a request: absent is false.
func staleParam(r *http.Request) (bool, *apiError) {
	raw := r.URL.RawQuery
	if raw == "" {
		return false, nil
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		if strings.Contains(raw, "stale") {
			return false, &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("malformed query string: %v", err)}
		}
		return false, nil
	}
	if !vals.Has("stale") {
		return false, nil
	}
	b, err := strconv.ParseBool(vals.Get("stale"))
	if err != nil {
		return false, &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("stale=%q is not a boolean (true or false)", vals.Get("stale"))}
	}
	return b, nil
}

// copyGet is localGet from this instance's copy of task id.
func (q *kvQuery[K, V]) copyGet(rt *runtime.Runtime, id assign.TaskID, name string, k any) (json.RawMessage, bool, ReadSource, error) {
	var out json.RawMessage
	var found bool
	info, err := rt.ReadCopyStore(id, name, q.getJSON(name, k, &out, &found))
	if err != nil {
		return nil, false, ReadSource{}, err
	}
	return out, found, copySource(info), nil
}

// forwardStale forwards a stale key lookup held elsewhere: to the task's
// owner first, then, when the owner is unknown, cannot be reached, or
// answers 502 or 503, to the instances keeping copies of the task
// (standbys, then warm-ups), which answer from their copies. The request
// keeps its stale parameter. The first other answer is relayed; when
// every instance fails, the last answer (or a 502 naming each failure).
func (h *queryHandler) forwardStale(w http.ResponseWriter, r *http.Request, loc location, hops int) {
	var hosts []assign.Host
	if !loc.noOwner {
		hosts = append(hosts, loc.host)
	}
	for _, c := range loc.copies {
		hosts = append(hosts, assign.Host{MemberID: c.MemberID, Endpoint: c.Endpoint})
	}
	self := h.a.endpoint()
	var failures []string
	var last *struct {
		status int
		hdr    http.Header
		body   []byte
	}
	for _, host := range hosts {
		switch {
		case host.Endpoint == "":
			failures = append(failures, fmt.Sprintf("member %s has no query endpoint", host.MemberID))
			continue
		case host.Endpoint == self:
			// This instance has no readable copy (locateFor looked).
			continue
		case hops >= h.cfg.maxHops:
			h.fail(w, &apiError{Status: http.StatusServiceUnavailable, Error: "the instances disagree on who hosts this key (rebalancing); retry"})
			return
		}
		status, hdr, body, err := h.call(r.Context(), host.Endpoint, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), hops+1)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s unreachable: %v", host.Endpoint, err))
			continue
		}
		if !isJSON(hdr, body) {
			failures = append(failures, fmt.Sprintf("%s answered %d with a body that is not JSON", host.Endpoint, status))
			continue
		}
		if status == http.StatusBadGateway || status == http.StatusServiceUnavailable {
			failures = append(failures, fmt.Sprintf("%s answered %d", host.Endpoint, status))
			last = &struct {
				status int
				hdr    http.Header
				body   []byte
			}{status, hdr, body}
			continue
		}
		relay(w, status, hdr, body)
		return
	}
	if last != nil {
		relay(w, last.status, last.hdr, last.body)
		return
	}
	if len(failures) == 0 {
		h.fail(w, &apiError{Status: http.StatusServiceUnavailable, Error: "the instances disagree on who hosts this key (rebalancing); retry"})
		return
	}
	h.fail(w, &apiError{Status: http.StatusBadGateway, Error: "neither the owner nor a copy of the key's task answered: " + strings.Join(failures, "; ")})
}
