package query

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/runtime"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/store"
)

// Option configures the handler NewHandler returns.
type Option func(*queryConfig)

type queryConfig struct {
	token        string
	client       *http.Client
	timeout      time.Duration
	maxHops      int
	defaultLimit int
	maxLimit     int
	retryAfter   time.Duration
	maxURL       int
	maxResponse  int64
}

// WithBearerToken makes the handler require "Authorization: Bearer
// token" on every request except /health and /ready. The scheme name is
// matched without regard to case ("bearer", "BEARER"), the token exactly
// and in constant time. Forwarded requests carry the caller's header, so
// every instance needs the same token.
func WithBearerToken(token string) Option {
	return func(c *queryConfig) { c.token = token }
}

// WithForwardClient sets the HTTP client used to forward queries to other
// instances (TLS, proxies). Default: a client without keep-alives.
func WithForwardClient(cl *http.Client) Option {
	return func(c *queryConfig) { c.client = cl }
}

// WithForwardTimeout bounds each forwarded call. Default 5s.
func WithForwardTimeout(d time.Duration) Option {
	return func(c *queryConfig) { c.timeout = d }
}

// WithMaxHops bounds how many times a query may be forwarded. Default 2;
// 0 turns forwarding off (a key held elsewhere then gets 503).
func WithMaxHops(n int) Option { return func(c *queryConfig) { c.maxHops = n } }

// WithRangeLimits sets the default and the largest page size of range
// answers. Defaults 100 and 1000.
func WithRangeLimits(defaultLimit, maxLimit int) Option {
	return func(c *queryConfig) { c.defaultLimit, c.maxLimit = defaultLimit, maxLimit }
}

// WithRetryAfter sets the Retry-After of 503 answers. Default 1s.
func WithRetryAfter(d time.Duration) Option {
	return func(c *queryConfig) { c.retryAfter = d }
}

// hopsHeader counts how many times a query was forwarded.
const hopsHeader = "X-Brook-Hops"

// servedByHeader names the endpoint that answered.
const servedByHeader = "X-Brook-Served-By"

// NewHandler returns an http.Handler that serves the App's stores as
// JSON (see docs/QUERIES.md for the full reference):
//
//	GET /stores                          the stores and their state here
//	GET /stores/{store}/keys/{key}       one key (forwarded to its owner)
//	GET /stores/{store}/range?from=&to=&prefix=&limit=&token=
//	                                     keys of every instance, in key order
//	GET /stores/{store}/windows/{key}?from=&to=&limit=&token=
//	                                     a key's windows (window stores;
//	                                     forwarded to the key's owner)
//	GET /stores/{store}/windows?from=&to=&limit=&token=
//	                                     windows of every instance, by key
//	                                     then start (window stores)
//	GET /stores/{store}/metadata?key=    which instance hosts the key
//	GET /instances                       the instances and their tasks
//	GET /status                          the instance's Status (StatusOf)
//	GET /status/ui                       the status page (HTML)
//	GET /health, GET /ready              liveness and readiness
//
// Paths are taken literally (never cleaned or redirected) and every
// route answers GET and HEAD. Every error answer is JSON,
// {"error": "..."}: 400 bad input, 401 missing or wrong token, 404
// unknown path, store or key or a route of the other store kind, 405
// (with Allow) another method, 503 with Retry-After while restoring or
// rebalancing, 502 when the owning instance cannot be reached. Range and
// window answers page with a continuation token and say "more": false on
// the last page. Serve it on the address given as Config.QueryEndpoint.
func NewHandler(app App, opts ...Option) http.Handler {
	a, err := handleOf(app, "NewHandler")
	cfg := queryConfig{timeout: 5 * time.Second, maxHops: 2, defaultLimit: 100, maxLimit: 1000, retryAfter: time.Second, maxURL: 16 << 10, maxResponse: 64 << 20}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.client == nil {
		cfg.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	}
	if cfg.timeout <= 0 {
		cfg.timeout = 5 * time.Second
	}
	if cfg.retryAfter <= 0 {
		cfg.retryAfter = time.Second
	}
	if cfg.defaultLimit <= 0 {
		cfg.defaultLimit = 100
	}
	if cfg.maxLimit < cfg.defaultLimit {
		cfg.maxLimit = cfg.defaultLimit
	}
	h := &queryHandler{a: a, cfg: cfg}
	if err != nil {
		// No App to answer for: every request gets the error.
		fail := func(w http.ResponseWriter, r *http.Request) {
			h.fail(w, &apiError{Status: http.StatusInternalServerError, Error: err.Error()})
		}
		h.routes = queryRoutes{health: fail, ready: fail, caughtUp: fail, instances: fail, stores: fail, storeInfo: fail,
			get: fail, rangeQ: fail, metadata: fail, windowsKey: fail, windowsAll: fail}
		return h
	}
	h.routes = queryRoutes{
		health:    h.health,
		ready:     h.ready,
		caughtUp:  h.caughtUp,
		instances: h.auth(h.instances),
		stores:    h.auth(h.stores),
		storeInfo: h.auth(h.storeInfo),
		get:       h.auth(h.get),
		rangeQ:    h.auth(h.rangeQuery),
		metadata:  h.auth(h.metadata),
		// window stores
		windowsKey: h.auth(h.windowsOfKey),
		windowsAll: h.auth(h.allWindows),
	}
	return h
}

type queryHandler struct {
	a      Handle
	cfg    queryConfig
	routes queryRoutes
	svgCache
}

// queryRoutes are the handlers of the API's paths.
type queryRoutes struct {
	health, ready, caughtUp, instances, stores, storeInfo, get, rangeQ, metadata http.HandlerFunc
	windowsKey, windowsAll                                                       http.HandlerFunc
}

// allowedMethods is the Allow header of every route: the API only reads.
const allowedMethods = "GET, HEAD"

// route finds the handler of a request by its path, taken literally: it
// is neither cleaned nor redirected (a key may be "a//b" or ".."), and
// each segment is unescaped on its own, so "%2F" in a store name or key
// is a slash within it. It sets the path values "store" and "key". A path
// of no route is a 404.
//
// It also returns the route's name, its path pattern (the route label of
// the query metrics), "unknown" for a path of no route.
func (h *queryHandler) route(r *http.Request) (http.HandlerFunc, string, *apiError) {
	notFound := &apiError{Status: http.StatusNotFound, Error: fmt.Sprintf("no such path %q (see docs/QUERIES.md for the API)", r.URL.EscapedPath())}
	p, ok := strings.CutPrefix(r.URL.EscapedPath(), "/")
	if !ok {
		return nil, routeUnknown, notFound
	}
	segs := strings.Split(p, "/")
	if segs[0] == "status" {
		return h.statusRoute(segs, notFound) // status_http.go
	}
	if len(segs) == 1 {
		switch segs[0] {
		case "health":
			return h.routes.health, "/health", nil
		case "ready":
			return h.routes.ready, "/ready", nil
		case "caught-up":
			return h.routes.caughtUp, "/caught-up", nil
		case "instances":
			return h.routes.instances, "/instances", nil
		case "stores":
			return h.routes.stores, "/stores", nil
		}
		return nil, routeUnknown, notFound
	}
	if segs[0] != "stores" || segs[1] == "" {
		return nil, routeUnknown, notFound
	}
	unescape := func(what, s string) (string, *apiError) {
		v, err := url.PathUnescape(s)
		if err != nil {
			return "", &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("malformed %s in the path: %v", what, err)}
		}
		return v, nil
	}
	var next http.HandlerFunc
	var pattern string
	switch {
	case len(segs) == 2:
		next, pattern = h.routes.storeInfo, "/stores/{store}"
	case len(segs) >= 4 && segs[2] == "keys":
		next, pattern = h.routes.get, "/stores/{store}/keys/{key}"
	case len(segs) == 3 && segs[2] == "range":
		next, pattern = h.routes.rangeQ, "/stores/{store}/range"
	case len(segs) == 3 && segs[2] == "metadata":
		next, pattern = h.routes.metadata, "/stores/{store}/metadata"
	case len(segs) >= 4 && segs[2] == "windows":
		next, pattern = h.routes.windowsKey, "/stores/{store}/windows/{key}"
	case len(segs) == 3 && segs[2] == "windows":
		next, pattern = h.routes.windowsAll, "/stores/{store}/windows"
	default:
		return nil, routeUnknown, notFound
	}
	name, e := unescape("store name", segs[1])
	if e != nil {
		return nil, pattern, e
	}
	if len(segs) >= 4 {
		key, e := unescape("key", strings.Join(segs[3:], "/"))
		if e != nil {
			return nil, pattern, e
		}
		r.SetPathValue("key", key)
	}
	r.SetPathValue("store", name)
	return next, pattern, nil
}

// routeUnknown is the route label of requests for a path of no route.
const routeUnknown = "unknown"

// apiError is the JSON body of every error answer.
type apiError struct {
	Status int    `json:"-"`
	Error  string `json:"error"`
	// Restoring is set on 503 answers for restoring stores.
	Restoring []RestoreStatus `json:"restoring,omitempty"`
}

func (h *queryHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := h.a.meter()
	if m == nil {
		h.serve(w, r, new(string))
		return
	}
	// Measured: the route, the status answered and the time taken.
	began := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	route := routeUnknown
	h.serve(sw, r, &route)
	m.ObserveQuery(route, sw.status(), time.Since(began))
}

// serve answers a request and sets *route to its route's label.
func (h *queryHandler) serve(w http.ResponseWriter, r *http.Request, route *string) {
	if len(r.URL.RawPath)+len(r.URL.Path)+len(r.URL.RawQuery) > h.cfg.maxURL {
		h.fail(w, &apiError{Status: http.StatusRequestURITooLong, Error: "request URL too long"})
		return
	}
	if r.ContentLength > 0 || r.Body != nil && r.Body != http.NoBody {
		// Queries have no body: read at most a little of one.
		r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
	}
	next, pattern, e := h.route(r)
	*route = pattern
	if e != nil {
		h.fail(w, e)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", allowedMethods)
		h.fail(w, &apiError{Status: http.StatusMethodNotAllowed, Error: fmt.Sprintf("method %s not allowed: the query API answers %s", r.Method, allowedMethods)})
		return
	}
	next(w, r)
}

func (h *queryHandler) auth(next http.HandlerFunc) http.HandlerFunc {
	if h.cfg.token == "" {
		return next
	}
	want := sha256.Sum256([]byte(h.cfg.token))
	return func(w http.ResponseWriter, r *http.Request) {
		if !bearerMatches(r.Header.Get("Authorization"), want) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="brook"`)
			h.fail(w, &apiError{Status: http.StatusUnauthorized, Error: "missing or wrong bearer token"})
			return
		}
		next(w, r)
	}
}

// bearerMatches reports whether an Authorization header value carries
// the bearer token whose SHA-256 is want. The scheme is matched without
// regard to case and may be followed by several spaces (RFC 9110 §11.1,
// RFC 6750 §2.1); the token must match exactly. The tokens are compared
// through their digests in constant time, so the time taken does not
// tell how much of the token, nor its length, was right.
func bearerMatches(header string, want [sha256.Size]byte) bool {
	scheme, token, ok := strings.Cut(strings.Trim(header, " \t"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	token = strings.TrimLeft(token, " ")
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && token != ""
}

func (h *queryHandler) reply(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(apiError{Error: "cannot render the answer as JSON: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	if ep := h.a.endpoint(); ep != "" && w.Header().Get(servedByHeader) == "" {
		w.Header().Set(servedByHeader, ep)
	}
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

func (h *queryHandler) fail(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(h.cfg.retryAfter.Round(time.Second)/time.Second))))
	}
	h.reply(w, e.Status, e)
}

// errorFor maps query errors to answers.
func (h *queryHandler) errorFor(err error) *apiError {
	var nr *NotReadyError
	var us *processor.UnknownStoreError
	var st *processor.StoreTypeError
	switch {
	case errors.As(err, &nr):
		return &apiError{Status: http.StatusServiceUnavailable, Error: nr.Error(), Restoring: nr.Restoring}
	case errors.Is(err, ErrIteratorInvalidated):
		return &apiError{Status: http.StatusServiceUnavailable, Error: err.Error()}
	case errors.As(err, &us):
		return &apiError{Status: http.StatusNotFound, Error: us.Error()}
	case errors.As(err, &st):
		return &apiError{Status: http.StatusNotFound, Error: st.Error()}
	}
	return &apiError{Status: http.StatusInternalServerError, Error: err.Error()}
}

func (h *queryHandler) health(w http.ResponseWriter, r *http.Request) {
	s := h.a.state()
	body := map[string]any{"state": s.String()}
	if s == runtime.Error || s == runtime.Stopped {
		h.fail(w, &apiError{Status: http.StatusServiceUnavailable, Error: "application is " + s.String()})
		return
	}
	h.reply(w, http.StatusOK, body)
}

func (h *queryHandler) ready(w http.ResponseWriter, r *http.Request) {
	s := h.a.state()
	asg, ok := h.a.rt.Strategy().Local()
	if s != runtime.Running || !ok {
		h.fail(w, &apiError{Status: http.StatusServiceUnavailable, Error: "not ready: application is " + s.String(), Restoring: restoreStatuses(h.a.rt.RestoreProgress())})
		return
	}
	open := h.a.rt.OpenTasks()
	for _, id := range asg.Tasks {
		if _, ok := slices.BinarySearchFunc(open, id, assign.TaskID.Compare); !ok {
			h.fail(w, &apiError{Status: http.StatusServiceUnavailable, Error: "not ready: task " + id.String() + " is restoring", Restoring: restoreStatuses(h.a.rt.RestoreProgress())})
			return
		}
	}
	h.reply(w, http.StatusOK, map[string]any{"state": s.String(), "tasks": len(open)})
}

// maxCaughtUpWait bounds the wait parameter of /caught-up.
const maxCaughtUpWait = 5 * time.Minute

// caughtUpAnswer is the body of /caught-up.
type caughtUpAnswer struct {
	// Error is set on a 503 answer: why the instance has not caught up.
	Error      string                      `json:"error,omitempty"`
	CaughtUp   bool                        `json:"caught_up"`
	State      string                      `json:"state"`
	MarkedAt   time.Time                   `json:"marked_at"`
	Partitions []runtime.PartitionProgress `json:"partitions"`
}

// caughtUp answers whether this instance has processed its input up to
// the end offsets listed when the request came (App.CaughtUp), waiting up
// to the wait parameter for it: 200 when it has, 503 with the partitions
// and their remaining offsets when not.
func (h *queryHandler) caughtUp(w http.ResponseWriter, r *http.Request) {
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			h.fail(w, &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("bad wait %q: a duration such as 10s (at most %v)", v, maxCaughtUpWait)})
			return
		}
		wait = min(d, maxCaughtUpWait)
	}
	mark, err := h.a.rt.MarkEnds(r.Context())
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusServiceUnavailable, Error: "not caught up: " + err.Error()})
		return
	}
	var rep runtime.CaughtUpReport
	if wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		rep, _ = h.a.rt.WaitCaughtUp(ctx, mark)
		cancel()
	} else {
		rep = h.a.rt.CaughtUp(r.Context(), mark)
	}
	body := caughtUpAnswer{CaughtUp: rep.CaughtUp, State: h.a.state().String(), MarkedAt: rep.MarkedAt, Partitions: rep.Partitions}
	if body.Partitions == nil {
		body.Partitions = []runtime.PartitionProgress{}
	}
	if rep.CaughtUp {
		h.reply(w, http.StatusOK, body)
		return
	}
	body.Error = "not caught up: " + rep.Reason
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(h.cfg.retryAfter.Round(time.Second)/time.Second))))
	h.reply(w, http.StatusServiceUnavailable, body)
}

func (h *queryHandler) instances(w http.ResponseWriter, r *http.Request) {
	ins, gen, err := h.a.instances(r.Context())
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusServiceUnavailable, Error: err.Error() + " (state " + h.a.state().String() + ")"})
		return
	}
	h.reply(w, http.StatusOK, struct {
		Generation int32      `json:"generation"`
		Instances  []Instance `json:"instances"`
	}{gen, ins})
}

func (h *queryHandler) stores(w http.ResponseWriter, r *http.Request) {
	out := []StoreStatus{}
	for _, name := range h.a.storeNames() {
		out = append(out, h.a.storeStatus(name, h.a.rt.Graph().Stores[name]))
	}
	h.reply(w, http.StatusOK, map[string]any{"stores": out})
}

// lookup returns the named store's spec and querier.
func (h *queryHandler) lookup(name string) (*task.StoreSpec, StoreCodec, *apiError) {
	spec := h.a.rt.Graph().Stores[name]
	if spec == nil {
		return nil, nil, &apiError{Status: http.StatusNotFound, Error: fmt.Sprintf("no store %q (stores: %v)", name, h.a.storeNames())}
	}
	q, ok := spec.Query.(StoreCodec)
	if !ok {
		return nil, nil, &apiError{Status: http.StatusNotFound, Error: fmt.Sprintf("store %q (%s) cannot be queried over HTTP", name, spec.Kind)}
	}
	return spec, q, nil
}

// lookupKeyValue returns the named key-value store's spec and querier; a
// store of another kind is a 404 that says where its data is.
func (h *queryHandler) lookupKeyValue(name string) (*task.StoreSpec, kvCodec, *apiError) {
	spec, q, e := h.lookup(name)
	if e != nil {
		return nil, nil, e
	}
	kq, ok := q.(kvCodec)
	if !ok {
		return nil, nil, wrongKind(spec, "key-value")
	}
	return spec, kq, nil
}

// wrongKind is the answer for a route of want stores asked of spec, a
// store of another kind: a 404 that names the routes of its kind.
func wrongKind(spec *task.StoreSpec, want string) *apiError {
	where := ""
	switch spec.Query.(type) {
	case kvCodec:
		where = "; read it at /stores/{store}/keys/{key} and /stores/{store}/range"
	case windowCodec:
		where = "; read it at /stores/{store}/windows/{key} and /stores/{store}/windows"
	}
	where = strings.ReplaceAll(where, "{store}", url.PathEscape(spec.Name))
	return &apiError{Status: http.StatusNotFound, Error: fmt.Sprintf("store %q is a %s store, not a %s store%s", spec.Name, spec.Kind, want, where)}
}

func (h *queryHandler) storeInfo(w http.ResponseWriter, r *http.Request) {
	spec, _, e := h.lookup(r.PathValue("store"))
	if e != nil {
		h.fail(w, e)
		return
	}
	h.reply(w, http.StatusOK, h.a.storeStatus(spec.Name, spec))
}

func (h *queryHandler) hops(r *http.Request) (int, *apiError) {
	v := r.Header.Get(hopsHeader)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, &apiError{Status: http.StatusBadRequest, Error: "bad " + hopsHeader + " header"}
	}
	return n, nil
}

type keyAnswer struct {
	Store     string          `json:"store"`
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition int32           `json:"partition"`
	Task      string          `json:"task"`
	Host      string          `json:"host"`
	// Role and Lag are set when stale reads were asked for: which copy
	// answered ("active", "standby", "warm-up") and its lag (ReadSource).
	Role string `json:"role,omitempty"`
	Lag  *int64 `json:"lag,omitempty"`
}

func (h *queryHandler) get(w http.ResponseWriter, r *http.Request) {
	spec, q, e := h.lookupKeyValue(r.PathValue("store"))
	if e != nil {
		h.fail(w, e)
		return
	}
	hops, e := h.hops(r)
	if e != nil {
		h.fail(w, e)
		return
	}
	text := r.PathValue("key")
	k, err := q.parseKey(text)
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("store %q: %v (keys are %s)", spec.Name, err, q.keyFormat())})
		return
	}
	kb, err := q.keyBytes(h.a.serdeTopic(spec), k)
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("store %q: %v", spec.Name, err)})
		return
	}
	stale, e := staleParam(r)
	if e != nil {
		h.fail(w, e)
		return
	}
	loc, err := h.a.locateFor(r.Context(), spec, kb, stale)
	if err != nil {
		h.fail(w, h.errorFor(err))
		return
	}
	if !loc.local {
		if stale {
			h.forwardStale(w, r, loc, hops)
			return
		}
		h.forward(w, r, loc.host, hops)
		return
	}
	var v json.RawMessage
	var found bool
	src := ReadSource{Role: runtime.RoleActive}
	if loc.copyRole != "" {
		v, found, src, err = q.copyGet(h.a.rt, loc.task, spec.Name, k)
	} else {
		v, found, err = q.localGet(h.a.rt, loc.task, spec.Name, k)
	}
	if err != nil {
		h.fail(w, h.errorFor(h.a.queryErr(spec.Name, err)))
		return
	}
	if stale {
		w.Header().Set(roleHeader, src.Role)
		w.Header().Set(lagHeader, strconv.FormatInt(src.Lag, 10))
	}
	if !found {
		h.fail(w, &apiError{Status: http.StatusNotFound, Error: fmt.Sprintf("store %q has no key %q", spec.Name, text)})
		return
	}
	kj, err := q.keyJSON(k)
	if err != nil {
		kj, _ = json.Marshal(text)
	}
	ans := keyAnswer{Store: spec.Name, Key: kj, Value: v, Partition: loc.task.Partition, Task: taskName(loc.task), Host: h.a.endpoint()}
	if stale {
		ans.Role, ans.Lag = src.Role, &src.Lag
	}
	h.reply(w, http.StatusOK, ans)
}

// forward relays the request to host and its answer back.
func (h *queryHandler) forward(w http.ResponseWriter, r *http.Request, host assign.Host, hops int) {
	if host.Endpoint == "" {
		h.fail(w, &apiError{Status: http.StatusBadGateway, Error: fmt.Sprintf("the owner (member %s) has no query endpoint (Config.QueryEndpoint)", host.MemberID)})
		return
	}
	if host.Endpoint == h.a.endpoint() || hops >= h.cfg.maxHops {
		// The instances disagree about the assignment: a rebalance is
		// under way.
		h.fail(w, &apiError{Status: http.StatusServiceUnavailable, Error: "the instances disagree on who hosts this key (rebalancing); retry"})
		return
	}
	status, hdr, body, err := h.call(r.Context(), host.Endpoint, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), hops+1)
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusBadGateway, Error: fmt.Sprintf("owner %s unreachable: %v", host.Endpoint, err)})
		return
	}
	if !isJSON(hdr, body) {
		// Not a brook query handler's answer (a proxy's error page, another
		// server at that address): relaying it would break the API's shape.
		h.fail(w, &apiError{Status: http.StatusBadGateway, Error: fmt.Sprintf("owner %s answered %d with a body that is not JSON (Content-Type %q)", host.Endpoint, status, hdr.Get("Content-Type"))})
		return
	}
	relay(w, status, hdr, body)
}

// relay writes an answer of another instance back to the client.
func relay(w http.ResponseWriter, status int, hdr http.Header, body []byte) {
	for _, k := range []string{"Content-Type", "Retry-After", "WWW-Authenticate", servedByHeader, roleHeader, lagHeader} {
		if v := hdr.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	if status >= 500 && status != http.StatusBadGateway && status != http.StatusServiceUnavailable {
		status = http.StatusBadGateway
	}
	w.WriteHeader(status)
	w.Write(body)
}

// isJSON reports whether an answer is JSON: its Content-Type says so
// and its body parses.
func isJSON(hdr http.Header, body []byte) bool {
	mt, _, err := mime.ParseMediaType(hdr.Get("Content-Type"))
	return err == nil && mt == "application/json" && json.Valid(body)
}

func (h *queryHandler) call(ctx context.Context, endpoint, path, rawQuery, authz string, hops int) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.timeout)
	defer cancel()
	u := endpointURL(endpoint) + path
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set(hopsHeader, strconv.Itoa(hops))
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := h.cfg.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, h.cfg.maxResponse+1))
	if err != nil {
		return 0, nil, nil, err
	}
	if int64(len(body)) > h.cfg.maxResponse {
		return 0, nil, nil, fmt.Errorf("answer larger than %d bytes", h.cfg.maxResponse)
	}
	return resp.StatusCode, resp.Header, body, nil
}

func (h *queryHandler) metadata(w http.ResponseWriter, r *http.Request) {
	spec, q, e := h.lookup(r.PathValue("store"))
	if e != nil {
		h.fail(w, e)
		return
	}
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil || !vals.Has("key") {
		h.fail(w, &apiError{Status: http.StatusBadRequest, Error: "metadata needs ?key=<key>"})
		return
	}
	text := vals.Get("key")
	k, err := q.parseKey(text)
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("store %q: %v (keys are %s)", spec.Name, err, q.keyFormat())})
		return
	}
	kb, err := q.keyBytes(h.a.serdeTopic(spec), k)
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("store %q: %v", spec.Name, err)})
		return
	}
	loc, err := h.a.locate(r.Context(), spec, kb)
	if err != nil {
		h.fail(w, h.errorFor(err))
		return
	}
	h.a.withCopies(r.Context(), &loc)
	kj, err := q.keyJSON(k)
	if err != nil {
		kj, _ = json.Marshal(text)
	}
	h.reply(w, http.StatusOK, struct {
		KeyMetadata
		Key json.RawMessage `json:"key"`
	}{loc.metadata(spec.Name), kj})
}

type rangeAnswer struct {
	Store   string      `json:"store"`
	Entries []scanEntry `json:"entries"`
	// Next is the continuation token: pass it as ?token= for the next
	// page; absent on the last page.
	Next string `json:"next,omitempty"`
	// More says that the range has keys beyond Entries (then Next is
	// set); false on the last page. It is always present, so that a
	// client can tell the last page from an answer without the field.
	More bool `json:"more"`
}

// page returns the answer of a page of entries, with its token when
// there is more.
func page(store string, entries []scanEntry, more bool) rangeAnswer {
	a := rangeAnswer{Store: store, Entries: nonNil(entries), More: more}
	if more {
		a.Next = encodeToken(entries[len(entries)-1].KeyBytes)
	}
	return a
}

// rangeBounds computes the serialized key interval of a range request.
func (h *queryHandler) rangeBounds(spec *task.StoreSpec, q StoreCodec, vals url.Values) (lo, hi []byte, limit int, e *apiError) {
	var err error
	bad := func(format string, args ...any) *apiError {
		return &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("store %q: ", spec.Name) + fmt.Sprintf(format, args...)}
	}
	topic := h.a.serdeTopic(spec)
	parse := func(name string) ([]byte, *apiError) {
		if !vals.Has(name) {
			return nil, nil
		}
		k, err := q.parseKey(vals.Get(name))
		if err != nil {
			return nil, bad("%s: %v (keys are %s)", name, err, q.keyFormat())
		}
		b, err := q.keyBytes(topic, k)
		if err != nil {
			return nil, bad("%s: %v", name, err)
		}
		if b == nil {
			b = []byte{}
		}
		return b, nil
	}
	if vals.Has("prefix") && (vals.Has("from") || vals.Has("to")) {
		return nil, nil, 0, bad("give prefix or from/to, not both")
	}
	if vals.Has("prefix") {
		p, e := parse("prefix")
		if e != nil {
			return nil, nil, 0, e
		}
		if len(p) > 0 {
			lo, hi = p, store.PrefixEnd(p)
		}
	} else {
		if lo, e = parse("from"); e != nil {
			return nil, nil, 0, e
		}
		if hi, e = parse("to"); e != nil {
			return nil, nil, 0, e
		}
	}
	if lo, err = afterToken(lo, vals.Get("token")); err != nil {
		return nil, nil, 0, bad("%v", err)
	}
	limit = h.cfg.defaultLimit
	if s := vals.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, nil, 0, bad("limit must be a positive integer")
		}
		limit = min(n, h.cfg.maxLimit)
	}
	return lo, hi, limit, nil
}

func (h *queryHandler) rangeQuery(w http.ResponseWriter, r *http.Request) {
	spec, q, e := h.lookupKeyValue(r.PathValue("store"))
	if e != nil {
		h.fail(w, e)
		return
	}
	hops, e := h.hops(r)
	if e != nil {
		h.fail(w, e)
		return
	}
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusBadRequest, Error: "bad query string: " + err.Error()})
		return
	}
	lo, hi, limit, e := h.rangeBounds(spec, q, vals)
	if e != nil {
		h.fail(w, e)
		return
	}
	if hi != nil && lo != nil && bytes.Compare(lo, hi) >= 0 {
		h.reply(w, http.StatusOK, rangeAnswer{Store: spec.Name, Entries: []scanEntry{}})
		return
	}
	local := func() ([]scanEntry, bool, *apiError) {
		tasks, err := h.a.localTasksOf(spec)
		if err != nil {
			return nil, false, h.errorFor(err)
		}
		entries, more, err := q.localScan(h.a.rt, tasks, spec.Name, lo, hi, limit)
		if err != nil {
			return nil, false, h.errorFor(h.a.queryErr(spec.Name, err))
		}
		return entries, more, nil
	}
	all, more, e := gatherPages(h, r, spec, vals, limit, hops, local, func(body []byte) ([]scanEntry, bool, error) {
		var ra rangeAnswer
		if err := json.Unmarshal(body, &ra); err != nil {
			return nil, false, err
		}
		return ra.Entries, ra.More, nil
	})
	if e != nil {
		h.fail(w, e)
		return
	}
	h.reply(w, http.StatusOK, page(spec.Name, all, more))
}

// gatherPages answers a page of a range over a store's tasks: with
// scope=local, local()'s page (this instance's tasks only); else the
// merged pages of every instance holding tasks of the store (local() for
// this one, the same request with scope=local and limit for the others,
// whose answers decode reads), with whether the range has more.
func gatherPages[E pageEntry](h *queryHandler, r *http.Request, spec *task.StoreSpec, vals url.Values, limit, hops int,
	local func() ([]E, bool, *apiError), decode func(body []byte) ([]E, bool, error)) ([]E, bool, *apiError) {
	switch vals.Get("scope") {
	case "local":
		return local()
	case "":
	default:
		return nil, false, &apiError{Status: http.StatusBadRequest, Error: "scope must be empty or local"}
	}
	if hops > 0 {
		return nil, false, &apiError{Status: http.StatusBadRequest, Error: "a forwarded range must have scope=local"}
	}
	if spec.Global {
		// Every instance holds a global store whole: gathering would
		// repeat every key once per instance.
		return local()
	}
	// Gather: this instance's entries and every other instance's that
	// runs tasks of the store.
	asg, err := h.a.rt.Strategy().Routing(r.Context())
	if err != nil {
		nr := h.a.notReady(spec.Name, assign.TaskID{}, false)
		nr.Err = err
		return nil, false, h.errorFor(nr)
	}
	g := h.a.groupOf(spec)
	assigned := 0
	var parts []pagePart[E]
	fwd := url.Values{}
	for k, v := range vals {
		fwd[k] = v
	}
	fwd.Set("scope", "local")
	fwd.Set("limit", strconv.Itoa(limit))
	for i, host := range asg.Hosts {
		n := 0
		for _, t := range host.Tasks {
			if t.Group == g {
				n++
			}
		}
		if n == 0 {
			continue
		}
		assigned += n
		var entries []E
		var m bool
		if i == asg.Self {
			var e *apiError
			if entries, m, e = local(); e != nil {
				return nil, false, e
			}
		} else {
			if host.Endpoint == "" {
				return nil, false, &apiError{Status: http.StatusBadGateway, Error: fmt.Sprintf("member %s hosts tasks of store %q but has no query endpoint", host.MemberID, spec.Name)}
			}
			status, hdr, body, err := h.call(r.Context(), host.Endpoint, r.URL.EscapedPath(), fwd.Encode(), r.Header.Get("Authorization"), hops+1)
			if err != nil {
				return nil, false, &apiError{Status: http.StatusBadGateway, Error: fmt.Sprintf("instance %s unreachable: %v", host.Endpoint, err)}
			}
			if status != http.StatusOK && !isJSON(hdr, body) {
				return nil, false, &apiError{Status: http.StatusBadGateway, Error: fmt.Sprintf("instance %s answered %d with a body that is not JSON (Content-Type %q)", host.Endpoint, status, hdr.Get("Content-Type"))}
			}
			if status != http.StatusOK {
				var ae apiError
				_ = json.Unmarshal(body, &ae)
				ae.Status = status
				if status >= 500 && status != http.StatusServiceUnavailable {
					ae.Status = http.StatusBadGateway
				}
				ae.Error = fmt.Sprintf("instance %s: %s", host.Endpoint, ae.Error)
				return nil, false, &ae
			}
			if entries, m, err = decode(body); err != nil {
				return nil, false, &apiError{Status: http.StatusBadGateway, Error: fmt.Sprintf("instance %s: bad answer: %v", host.Endpoint, err)}
			}
		}
		who := host.Endpoint
		if who == "" {
			who = "member " + host.MemberID
		}
		parts = append(parts, pagePart[E]{from: who, entries: entries, more: m})
	}
	if int32(assigned) < asg.Partitions[g] {
		return nil, false, h.errorFor(h.a.notReady(spec.Name, assign.TaskID{}, false))
	}
	all, more, err := mergeParts(parts, limit)
	if err != nil {
		return nil, false, &apiError{Status: http.StatusBadGateway, Error: err.Error()}
	}
	return all, more, nil
}

// pageEntry is an entry of a paged answer.
type pageEntry interface {
	// sortKey is the entry's place in the answer's order (ascending
	// bytes) and what a continuation token holds.
	sortKey() []byte
}

func (e scanEntry) sortKey() []byte { return e.KeyBytes }

// pagePart is one instance's page of a gathered range: its first entries
// in the range, ascending by sort key, and whether it has more.
type pagePart[E pageEntry] struct {
	from    string // the instance, for errors
	entries []E
	more    bool
}

// rangePart is one instance's page of a gathered key range.
type rangePart = pagePart[scanEntry]

// mergePages merges the pages of the instances holding a store's tasks
// into one page of at most limit entries, and says whether the range has
// more keys.
//
// An instance that has more keys than it returned (its own range limit
// may be smaller than this one's) has returned every key of its own up to
// its last one, and nothing beyond. The merged page therefore ends at the
// smallest such last key: past it, keys of that instance not yet seen
// would be skipped by the next page's token. Up to it, every instance's
// keys are all present, so the page is exactly the range's first keys.
func mergePages(parts []rangePart, limit int) ([]scanEntry, bool, error) {
	return mergeParts(parts, limit)
}

// mergeParts is mergePages for the entries of any paged answer, ordered
// by their sort keys.
func mergeParts[E pageEntry](parts []pagePart[E], limit int) ([]E, bool, error) {
	var cut []byte // the smallest last key of an instance with more
	haveCut := false
	n := 0
	for _, p := range parts {
		for i := 1; i < len(p.entries); i++ {
			if bytes.Compare(p.entries[i-1].sortKey(), p.entries[i].sortKey()) > 0 {
				return nil, false, fmt.Errorf("instance %s: range answer out of order", p.from)
			}
		}
		n += len(p.entries)
		if !p.more {
			continue
		}
		if len(p.entries) == 0 {
			return nil, false, fmt.Errorf("instance %s: range answer says there is more but has no entries", p.from)
		}
		last := p.entries[len(p.entries)-1].sortKey()
		if !haveCut || bytes.Compare(last, cut) < 0 {
			cut, haveCut = last, true
		}
	}
	all := make([]E, 0, n)
	more := false
	for _, p := range parts {
		for _, e := range p.entries {
			if haveCut && bytes.Compare(e.sortKey(), cut) > 0 {
				more = true
				break
			}
			all = append(all, e)
		}
		more = more || p.more
	}
	slices.SortStableFunc(all, func(a, b E) int { return bytes.Compare(a.sortKey(), b.sortKey()) })
	if len(all) > limit {
		all, more = all[:limit], true
	}
	return all, more, nil
}

// tokenPrefix starts every continuation token this version writes. It
// is not in the base64url alphabet, so it also tells these tokens from
// the bare base64url tokens of earlier versions.
const tokenPrefix = "1."

// encodeToken returns the continuation token of a page whose last key
// is kb: tokenPrefix and kb in base64url. It is never empty, not even for
// the empty key (an empty token would read as "no token": the first
// page).
func encodeToken(kb []byte) string {
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(kb)
}

// afterToken returns the lower bound of a range page: lo, or the smallest
// key after the last key of token (a continuation token, "" for the first
// page) when that is larger.
func afterToken(lo []byte, token string) ([]byte, error) {
	if token == "" {
		return lo, nil
	}
	last, err := decodeToken(token)
	if err != nil {
		return nil, err
	}
	after := append(last, 0) // the smallest key after last
	if lo == nil || bytes.Compare(after, lo) > 0 {
		return after, nil
	}
	return lo, nil
}

// decodeToken returns the last key of the page a continuation token
// continues. It also reads the tokens of earlier versions (bare base64url,
// never of the empty key), so that paging goes on across a rolling
// upgrade.
func decodeToken(t string) ([]byte, error) {
	enc, ok := strings.CutPrefix(t, tokenPrefix)
	if !ok && strings.Contains(t, ".") {
		return nil, errors.New("bad continuation token (not one this handler wrote)")
	}
	kb, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, errors.New("bad continuation token (not base64url)")
	}
	return kb, nil
}

func nonNil(e []scanEntry) []scanEntry {
	if e == nil {
		return []scanEntry{}
	}
	return e
}

// endpointURL is the base URL of an instance's query endpoint.
func endpointURL(endpoint string) string {
	if strings.Contains(endpoint, "://") {
		return endpoint
	}
	return "http://" + endpoint
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// status is the status answered (200 when the handler wrote nothing).
func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

// Unwrap returns the wrapped writer (http.ResponseController).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
