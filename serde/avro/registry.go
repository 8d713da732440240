package avro

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/brookstream/brook/serde"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
)

// ErrSubjectNotFound means the registry has no version under the subject
// (for example "use latest" before anything was registered).
var ErrSubjectNotFound = errors.New("subject not found")

// ErrSchemaRejected means the registry refused to register or look up a
// schema (invalid schema, or incompatible with the subject's history).
var ErrSchemaRejected = errors.New("schema rejected by the registry")

// RegistryError describes a failed schema-registry call. Kind is
// [serde.ErrRegistryUnavailable] (no answer, a time-out, a server error or any
// other answer that is not a verdict on the schema: retry later),
// [serde.ErrUnknownSchemaID], [ErrSubjectNotFound] or [ErrSchemaRejected].
type RegistryError struct {
	// URL is the registry's base URL.
	URL string
	// Op names the call ("register", "get schema by id", "latest version",
	// "compatibility", "config").
	Op string
	// Subject is the subject involved, if any.
	Subject string
	// SchemaID is the id involved, or 0.
	SchemaID int
	// Status is the HTTP status, or 0 when no response arrived.
	Status int
	// Code is the registry's error code (40403, 409, ...), or 0.
	Code int
	// Kind classifies the failure; see the type's documentation.
	Kind error
	// Err is the underlying cause (of the last attempt).
	Err error
	// Attempts is how many times the call was tried (retries of an
	// unavailable registry; see [WithRetry]), and Waited how long it
	// took in all. Zero when the call was not made through the retry
	// loop.
	Attempts int
	Waited   time.Duration
}

// Error implements error.
func (e *RegistryError) Error() string {
	var b strings.Builder
	b.WriteString("serde: schema registry")
	if e.URL != "" {
		fmt.Fprintf(&b, " %s:", e.URL)
	}
	fmt.Fprintf(&b, " %s", e.Op)
	if e.Subject != "" {
		fmt.Fprintf(&b, " subject %q", e.Subject)
	}
	switch {
	case e.SchemaID != 0 && e.Op == opByID:
		fmt.Fprintf(&b, " %d", e.SchemaID)
	case e.SchemaID != 0:
		fmt.Fprintf(&b, " schema id %d", e.SchemaID)
	}
	fmt.Fprintf(&b, ": %v", e.Kind)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (gave up after %d attempts over %v)", e.Attempts, e.Waited.Round(time.Millisecond))
	}
	return b.String()
}

// Unwrap returns the kind and the cause.
func (e *RegistryError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// IncompatibleSchemaError is the preflight verdict that a serde's schema is
// not compatible with its subject: the app must not start with it.
type IncompatibleSchemaError struct {
	// Subject is the registry subject checked.
	Subject string
	// Level is the compatibility level in force (BACKWARD, FULL, ...).
	Level string
	// Messages are the registry's reasons (and, for use-latest and fixed-id
	// serdes, the local resolution failures).
	Messages []string
}

// Error implements error.
func (e *IncompatibleSchemaError) Error() string {
	msg := fmt.Sprintf("serde: avro schema is incompatible with subject %q at level %s", e.Subject, e.Level)
	if len(e.Messages) > 0 {
		msg += ": " + strings.Join(e.Messages, "; ")
	}
	return msg
}

// registeredSchema is a schema known to the registry, parsed and compiled.
type registeredSchema struct {
	id     int
	text   string
	schema *avroSchema
	codec  *goavro.Codec
}

// Registry is a cached schema-registry client shared by Avro serdes. All
// schemas fetched by id, all registrations and all "latest version" lookups
// are cached for the Registry's lifetime, so a steady stream of records
// makes no registry calls. Safe for concurrent use.
//
// An unavailable registry is not bad data. A call that gets no answer, a
// time-out, an HTTP 5xx or 429, or any other answer that is not the
// registry's verdict on the schema (a 404 without the registry's own error
// code, a 401, a proxy's error page) fails with [serde.ErrRegistryUnavailable],
// and is retried with exponential backoff (100 ms doubling up to 5 s)
// until [WithRetry]'s bound has passed (default [DefaultRetryWait]). Only
// verdicts are final at once: an unknown schema id (error code 40403, see
// [serde.ErrUnknownSchemaID]), a subject without versions ([ErrSubjectNotFound]),
// a refused schema ([ErrSchemaRejected]).
//
// Two short memories keep a bad stream or a dead registry cheap: an id the
// registry said it does not know is answered from memory for 10 s, and
// for a second after a call found the registry unavailable, new calls do
// not ask it on their first attempt: they fail at once (without retries)
// or go straight to their first pause, so a blackholed registry does not
// cost a request time-out per record. Retries always ask.
type Registry struct {
	baseURL    string
	http       *http.Client
	ownsHTTP   bool
	log        *slog.Logger
	user       string
	password   string
	retryWait  time.Duration
	reqTimeout time.Duration
	// now and sleep are the clock; tests replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu        sync.RWMutex
	byID      map[int]*registeredSchema
	byText    map[subjectText]*registeredSchema
	latestFor map[string]*registeredSchema
	// missing remembers ids the registry said it does not know, so a run
	// of records with a bad id costs one call per id and interval.
	missing map[int]time.Time
	// downUntil: a call found the registry unavailable (downErr) at
	// downUntil-downTTL; until downUntil calls do not ask it.
	downUntil time.Time
	downErr   *RegistryError
}

// missingTTL is how long an id the registry does not know is answered
// from memory. Ids are never reused, so only a schema registered in the
// meantime (a writer racing ahead of its registration) can change the
// answer.
const missingTTL = 10 * time.Second

// downTTL is how long a registry found unavailable is not asked again.
const downTTL = time.Second

// Backoff between attempts while the registry is unavailable: the first
// pause, doubling up to the last.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// DefaultRetryWait is how long, by default, a registry call keeps retrying
// while the registry is unavailable before it fails (see [WithRetry]).
const DefaultRetryWait = 30 * time.Second

// DefaultRequestTimeout is the default time-out of one HTTP request to the
// registry (see [WithRequestTimeout]).
const DefaultRequestTimeout = 10 * time.Second

type subjectText struct{ subject, text string }

// RegistryOption configures a Registry.
type RegistryOption func(*Registry)

// WithHTTPClient makes the Registry use c for every call (TLS, proxies,
// its own time-out on top of [WithRequestTimeout]'s). The caller then owns
// c's idle connections.
func WithHTTPClient(c *http.Client) RegistryOption {
	return func(r *Registry) { r.http, r.ownsHTTP = c, false }
}

// WithBasicAuth sends HTTP basic credentials with every call.
func WithBasicAuth(user, password string) RegistryOption {
	return func(r *Registry) { r.user, r.password = user, password }
}

// WithLogger sets the logger for registry events (registrations, and a
// warning at each failed attempt while the registry is unavailable).
func WithLogger(l *slog.Logger) RegistryOption {
	return func(r *Registry) { r.log = l }
}

// WithRetry sets how long one call keeps retrying while the registry is
// unavailable, counted from the call's start: no new attempt starts after
// maxWait, and the one in flight then may still take up to the request
// time-out. Default [DefaultRetryWait]. Zero or negative: no retry, the
// first unavailable answer fails the call.
//
// The runtime does not hand a call that still fails to an error handler:
// an application stops with the error (see docs/RUNTIME.md), so maxWait
// is how long a registry outage may last before the application stops.
func WithRetry(maxWait time.Duration) RegistryOption {
	return func(r *Registry) { r.retryWait = max(maxWait, 0) }
}

// WithRequestTimeout sets the time-out of one HTTP request to the registry
// (default [DefaultRequestTimeout]); a request that takes longer counts as
// the registry being unavailable. Zero or negative keeps the default.
func WithRequestTimeout(d time.Duration) RegistryOption {
	return func(r *Registry) {
		if d > 0 {
			r.reqTimeout = d
		}
	}
}

// NewRegistry returns a client for the schema registry at baseURL
// ("http://host:8081"). It makes no call until a serde needs one. Close
// it when done.
func NewRegistry(baseURL string, opts ...RegistryOption) (*Registry, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("serde: schema registry URL %q must be http(s)://host[:port]", baseURL)
	}
	r := &Registry{
		baseURL:    strings.TrimRight(baseURL, "/"),
		log:        slog.Default(),
		retryWait:  DefaultRetryWait,
		reqTimeout: DefaultRequestTimeout,
		now:        time.Now,
		sleep:      sleepContext,
		byID:       map[int]*registeredSchema{},
		byText:     map[subjectText]*registeredSchema{},
		latestFor:  map[string]*registeredSchema{},
		missing:    map[int]time.Time{},
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	r.http, r.ownsHTTP = &http.Client{Transport: transport}, true
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// URL returns the registry's base URL.
func (r *Registry) URL() string { return r.baseURL }

// Close releases idle connections of the Registry's own HTTP client.
func (r *Registry) Close() error {
	if r.ownsHTTP {
		r.http.CloseIdleConnections()
	}
	return nil
}

const (
	opByID     = "get schema by id"
	opRegister = "register"
	opLatest   = "latest version"
	opByIDSet  = "fixed schema id"
	opCompat   = "compatibility"
	opConfig   = "config"
)

func (r *Registry) compile(id int, text string) (*registeredSchema, error) {
	s, err := parseAvroSchema(text)
	if err != nil {
		return nil, err
	}
	gtext, err := goavroSchemaText(text)
	if err != nil {
		return nil, err
	}
	codec, err := goavro.NewCodec(gtext)
	if err != nil {
		return nil, fmt.Errorf("goavro: %w", err)
	}
	return &registeredSchema{id: id, text: text, schema: s, codec: codec}, nil
}

// schemaAnswer is the registry's description of one schema.
type schemaAnswer struct {
	ID         int               `json:"id"`
	Schema     string            `json:"schema"`
	SchemaType string            `json:"schemaType"`
	References []json.RawMessage `json:"references"`
}

// accept checks and compiles a schema the registry returned for id.
func (r *Registry) accept(op, subject string, id int, a *schemaAnswer) (*registeredSchema, error) {
	reject := func(err error) error {
		return &RegistryError{URL: r.baseURL, Op: op, Subject: subject, SchemaID: id, Kind: ErrSchemaRejected, Err: err}
	}
	if a.SchemaType != "" && a.SchemaType != "AVRO" {
		return nil, reject(fmt.Errorf("schema %d is %s, not Avro", id, a.SchemaType))
	}
	if len(a.References) > 0 {
		return nil, reject(fmt.Errorf("schema %d uses references, which brook does not support", id))
	}
	rs, err := r.compile(id, a.Schema)
	if err != nil {
		return nil, reject(err)
	}
	return rs, nil
}

// schemaByID returns the schema registered under id, from cache when it
// was seen before.
func (r *Registry) schemaByID(ctx context.Context, id int) (*registeredSchema, error) {
	r.mu.RLock()
	rs := r.byID[id]
	missingAt, missing := r.missing[id]
	r.mu.RUnlock()
	if rs != nil {
		return rs, nil
	}
	if missing && r.now().Sub(missingAt) < missingTTL {
		return nil, &RegistryError{URL: r.baseURL, Op: opByID, SchemaID: id, Kind: serde.ErrUnknownSchemaID,
			Err: fmt.Errorf("the registry did not know schema %d at %s", id, missingAt.Format(time.RFC3339))}
	}
	var a schemaAnswer
	err := r.call(ctx, opByID, "", id, http.MethodGet, "/schemas/ids/"+strconv.Itoa(id), nil, &a)
	if err != nil {
		if errors.Is(err, serde.ErrUnknownSchemaID) {
			r.mu.Lock()
			if len(r.missing) > 10000 {
				clear(r.missing)
			}
			r.missing[id] = r.now()
			r.mu.Unlock()
		}
		return nil, err
	}
	if rs, err = r.accept(opByID, "", id, &a); err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.byID[id] == nil {
		r.byID[id] = rs
	}
	rs = r.byID[id]
	r.mu.Unlock()
	return rs, nil
}

// register registers text under subject (idempotent: an existing identical
// schema keeps its id) and caches the id.
func (r *Registry) register(ctx context.Context, subject, text string) (*registeredSchema, error) {
	key := subjectText{subject, text}
	r.mu.RLock()
	rs := r.byText[key]
	r.mu.RUnlock()
	if rs != nil {
		return rs, nil
	}
	var a schemaAnswer
	path := "/subjects/" + url.PathEscape(subject) + "/versions"
	if err := r.call(ctx, opRegister, subject, 0, http.MethodPost, path, map[string]string{"schema": text}, &a); err != nil {
		return nil, err
	}
	if a.ID <= 0 {
		return nil, &RegistryError{URL: r.baseURL, Op: opRegister, Subject: subject, Kind: serde.ErrRegistryUnavailable,
			Err: errors.New("the answer has no schema id")}
	}
	r.log.Info("serde: schema registered", "subject", subject, "id", a.ID)
	rs, err := r.compile(a.ID, text)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.byText[key] = rs
	if r.byID[rs.id] == nil {
		r.byID[rs.id] = rs
	}
	r.mu.Unlock()
	return rs, nil
}

// latest returns the latest schema under subject, cached after the first
// call for the Registry's lifetime.
func (r *Registry) latest(ctx context.Context, subject string) (*registeredSchema, error) {
	r.mu.RLock()
	rs := r.latestFor[subject]
	r.mu.RUnlock()
	if rs != nil {
		return rs, nil
	}
	var a schemaAnswer
	path := "/subjects/" + url.PathEscape(subject) + "/versions/latest"
	if err := r.call(ctx, opLatest, subject, 0, http.MethodGet, path, nil, &a); err != nil {
		return nil, err
	}
	if a.ID <= 0 {
		return nil, &RegistryError{URL: r.baseURL, Op: opLatest, Subject: subject, Kind: serde.ErrRegistryUnavailable,
			Err: errors.New("the answer has no schema id")}
	}
	r.mu.RLock()
	rs = r.byID[a.ID]
	r.mu.RUnlock()
	if rs == nil {
		var err error
		if rs, err = r.accept(opLatest, subject, a.ID, &a); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	if r.byID[rs.id] == nil {
		r.byID[rs.id] = rs
	}
	rs = r.byID[rs.id]
	r.latestFor[subject] = rs
	r.mu.Unlock()
	return rs, nil
}

// call makes one registry request, retrying while the registry is
// unavailable: with exponential backoff, until r.retryWait has passed
// since the call began or ctx ends. Any other outcome (an answer, a
// verdict) returns at once. Failures are *RegistryError values.
func (r *Registry) call(ctx context.Context, op, subject string, id int, method, path string, body, out any) error {
	start := r.now()
	pause := firstBackoff
	for attempt := 1; ; attempt++ {
		err := r.attempt(ctx, attempt == 1, op, subject, id, method, path, body, out)
		var re *RegistryError
		if err == nil || !errors.As(err, &re) || re.Kind != serde.ErrRegistryUnavailable {
			return err
		}
		re.Attempts, re.Waited = attempt, r.now().Sub(start)
		if ctx.Err() != nil {
			return re
		}
		left := r.retryWait - re.Waited
		if left <= 0 {
			return re
		}
		wait := min(pause, left)
		r.log.Warn("serde: schema registry unavailable; retrying", "action", "records wait and nothing is skipped; check that the schema registry at url is up and reachable", "url", r.baseURL, "op", op, "subject", subject,
			"id", id, "attempt", attempt, "retry_in", wait, "gives_up_in", left, "err", re.Err)
		if err := r.sleep(ctx, wait); err != nil {
			re.Err = fmt.Errorf("stopped waiting for the registry (%w); last failure: %w", err, re.Err)
			re.Waited = r.now().Sub(start)
			return re
		}
		pause = min(2*pause, maxBackoff)
	}
}

// attempt makes one request. The first attempt of a call does not when
// the registry was found unavailable less than downTTL ago: it fails at
// once with that finding (and the call waits for its retry, which asks).
func (r *Registry) attempt(ctx context.Context, first bool, op, subject string, id int, method, path string, body, out any) error {
	now := r.now()
	r.mu.RLock()
	until, last := r.downUntil, r.downErr
	r.mu.RUnlock()
	if first && now.Before(until) {
		return &RegistryError{URL: r.baseURL, Op: op, Subject: subject, SchemaID: id, Status: last.Status, Code: last.Code,
			Kind: serde.ErrRegistryUnavailable, Err: fmt.Errorf("not asked: a call %v ago found it unavailable: %w",
				now.Sub(until.Add(-downTTL)).Round(time.Millisecond), last.Err)}
	}
	actx, cancel := context.WithTimeout(ctx, r.reqTimeout)
	err := r.doJSON(actx, op, subject, id, method, path, body, out)
	timedOut := actx.Err() == context.DeadlineExceeded
	cancel()
	var re *RegistryError
	switch {
	case errors.As(err, &re) && re.Kind == serde.ErrRegistryUnavailable:
		if ctx.Err() != nil {
			break // the caller gave up; that says nothing about the registry
		}
		if timedOut && re.Status == 0 {
			re.Err = fmt.Errorf("no answer within %v: %w", r.reqTimeout, re.Err)
		}
		found := *re // the caller goes on changing re
		r.mu.Lock()
		r.downUntil, r.downErr = r.now().Add(downTTL), &found
		r.mu.Unlock()
	case err == nil || re != nil:
		// The registry answered: it is up.
		r.mu.Lock()
		r.downUntil, r.downErr = time.Time{}, nil
		r.mu.Unlock()
	}
	return err
}

// doJSON makes one registry call with ctx and decodes a 2xx JSON answer
// into out. Other statuses become *RegistryError values: the registry's
// verdicts (a 404 with one of its 404xx error codes, 409, 422) get their
// kind, everything else is serde.ErrRegistryUnavailable.
func (r *Registry) doJSON(ctx context.Context, op, subject string, id int, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.baseURL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json, application/json")
	if r.user != "" {
		req.SetBasicAuth(r.user, r.password)
	}
	fail := func(status int, err error) *RegistryError {
		return &RegistryError{URL: r.baseURL, Op: op, Subject: subject, SchemaID: id, Status: status, Kind: serde.ErrRegistryUnavailable, Err: err}
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fail(0, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fail(resp.StatusCode, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Code    int    `json:"error_code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		re := fail(resp.StatusCode, errors.New(resp.Status))
		re.Code = e.Code
		if e.Message != "" {
			re.Err = errors.New(e.Message)
		}
		re.Kind = verdict(op, resp.StatusCode, e.Code)
		return re
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fail(resp.StatusCode, fmt.Errorf("bad JSON answer: %w", err))
		}
	}
	return nil
}

// verdict classifies a registry's error answer to op. A 404 is a verdict
// only with one of the registry's own 404xx codes (40401 subject, 40402
// version, 40403 schema, 40408 subject config not found): a bare 404 (or
// the generic code 404) means the URL reaches something that is not the
// registry's API, which is an infrastructure problem, not bad data.
func verdict(op string, status, code int) error {
	switch {
	case status == http.StatusNotFound && code/100 == 404 && code != 404:
		if op == opByID {
			if code == 40403 {
				return serde.ErrUnknownSchemaID
			}
			return serde.ErrRegistryUnavailable
		}
		return ErrSubjectNotFound
	case status == http.StatusConflict || status == http.StatusUnprocessableEntity:
		return ErrSchemaRejected
	}
	return serde.ErrRegistryUnavailable
}

// CompatibilityLevel returns the compatibility level in force for subject:
// the subject's own level, or the global level when the subject has none
// (or subject is "").
func (r *Registry) CompatibilityLevel(ctx context.Context, subject string) (string, error) {
	var cfg struct {
		Level  string `json:"compatibilityLevel"`
		Level2 string `json:"compatibility"`
	}
	err := ErrSubjectNotFound
	if subject != "" {
		err = r.call(ctx, opConfig, subject, 0, http.MethodGet, "/config/"+url.PathEscape(subject), nil, &cfg)
	}
	if errors.Is(err, ErrSubjectNotFound) {
		err = r.call(ctx, opConfig, "", 0, http.MethodGet, "/config", nil, &cfg)
	}
	if err != nil {
		return "", err
	}
	if cfg.Level == "" {
		cfg.Level = cfg.Level2
	}
	if cfg.Level == "" {
		return "", &RegistryError{URL: r.baseURL, Op: opConfig, Subject: subject, Kind: serde.ErrRegistryUnavailable, Err: errors.New("answer has no compatibility level")}
	}
	return cfg.Level, nil
}

// CheckCompatibility asks the registry whether schema may be added to
// subject under the subject's compatibility level (the subject's own, else
// the global one). It returns nil when it may, an *IncompatibleSchemaError
// with the registry's reasons when it may not, and a *RegistryError when
// the registry cannot answer. A subject with no versions yet accepts any
// valid schema.
func (r *Registry) CheckCompatibility(ctx context.Context, subject, schema string) error {
	level, err := r.CompatibilityLevel(ctx, subject)
	if err != nil {
		return err
	}
	var res struct {
		Compatible bool     `json:"is_compatible"`
		Messages   []string `json:"messages"`
	}
	path := "/compatibility/subjects/" + url.PathEscape(subject) + "/versions/latest?verbose=true"
	err = r.call(ctx, opCompat, subject, 0, http.MethodPost, path, map[string]string{"schema": schema}, &res)
	var re *RegistryError
	if errors.As(err, &re) && re.Kind == ErrSubjectNotFound && (re.Code == 40401 || re.Code == 40402 || re.Code == 0) {
		return nil // nothing registered yet: nothing to be incompatible with
	}
	if errors.As(err, &re) && re.Kind == ErrSchemaRejected {
		// An unparsable schema: as much a refusal as incompatibility.
		return &IncompatibleSchemaError{Subject: subject, Level: level, Messages: []string{re.Err.Error()}}
	}
	if err != nil {
		return err
	}
	if !res.Compatible {
		return &IncompatibleSchemaError{Subject: subject, Level: level, Messages: res.Messages}
	}
	return nil
}
