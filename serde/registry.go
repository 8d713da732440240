package serde

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/riferrei/srclient"
)

// ErrSubjectNotFound means the registry has no version under the subject
// (for example "use latest" before anything was registered).
var ErrSubjectNotFound = errors.New("subject not found")

// ErrSchemaRejected means the registry refused to register or look up a
// schema (invalid schema, or incompatible with the subject's history).
var ErrSchemaRejected = errors.New("schema rejected by the registry")

// RegistryError describes a failed schema-registry call. Kind is
// [ErrRegistryUnavailable] (network failure, time-out, server error; retry
// later), [ErrUnknownSchemaID], [ErrSubjectNotFound] or [ErrSchemaRejected].
type RegistryError struct {
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
	// Err is the underlying cause.
	Err error
}

// Error implements error.
func (e *RegistryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "serde: schema registry %s", e.Op)
	if e.Subject != "" {
		fmt.Fprintf(&b, " subject %q", e.Subject)
	}
	if e.SchemaID != 0 {
		fmt.Fprintf(&b, " id %d", e.SchemaID)
	}
	fmt.Fprintf(&b, ": %v", e.Kind)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
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

// Preflighter is implemented by serdes that must check something with an
// external system before use. The runtime calls Preflight on every key and
// value serde of every source and sink (type-asserting each Serde) before
// it joins its consumer group, and refuses to start on an error.
type Preflighter interface {
	// Preflight checks that the serde can be used for topic.
	Preflight(ctx context.Context, topic string) error
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
type Registry struct {
	baseURL   string
	client    *srclient.SchemaRegistryClient
	http      *http.Client
	ownsHTTP  bool
	log       *slog.Logger
	user      string
	password  string
	mu        sync.RWMutex
	byID      map[int]*registeredSchema
	byText    map[subjectText]*registeredSchema
	latestFor map[string]*registeredSchema
	// missing remembers ids the registry said it does not know, so a run
	// of records with a bad id costs one call per id and interval.
	missing map[int]time.Time
}

// missingTTL is how long an id the registry does not know is answered
// from memory. Ids are never reused, so only a schema registered in the
// meantime (a writer racing ahead of its registration) can change the
// answer.
const missingTTL = 10 * time.Second

type subjectText struct{ subject, text string }

// RegistryOption configures a Registry.
type RegistryOption func(*Registry)

// WithHTTPClient makes the Registry use c for every call (time-outs, TLS,
// proxies). The caller then owns c's idle connections.
func WithHTTPClient(c *http.Client) RegistryOption {
	return func(r *Registry) { r.http, r.ownsHTTP = c, false }
}

// WithBasicAuth sends HTTP basic credentials with every call.
func WithBasicAuth(user, password string) RegistryOption {
	return func(r *Registry) { r.user, r.password = user, password }
}

// WithLogger sets the logger for registry events (registrations, lookups).
func WithLogger(l *slog.Logger) RegistryOption {
	return func(r *Registry) { r.log = l }
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
		baseURL:   strings.TrimRight(baseURL, "/"),
		log:       slog.Default(),
		byID:      map[int]*registeredSchema{},
		byText:    map[subjectText]*registeredSchema{},
		latestFor: map[string]*registeredSchema{},
		missing:   map[int]time.Time{},
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	r.http, r.ownsHTTP = &http.Client{Transport: transport, Timeout: 10 * time.Second}, true
	for _, o := range opts {
		o(r)
	}
	r.client = srclient.NewSchemaRegistryClient(r.baseURL, srclient.WithClient(r.http))
	if r.user != "" {
		r.client.SetCredentials(r.user, r.password)
	}
	return r, nil
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

// classify turns a srclient or HTTP error into a *RegistryError. The
// registry's error codes are the HTTP status, or the status times 100 plus
// a detail (40403: schema not found).
func classify(op, subject string, id int, err error) error {
	re := &RegistryError{Op: op, Subject: subject, SchemaID: id, Kind: ErrRegistryUnavailable, Err: err}
	var se srclient.Error
	if errors.As(err, &se) {
		re.Code = se.Code
		re.Err = errors.New(se.Message)
		status := se.Code
		if status >= 1000 {
			status /= 100
		}
		re.Status = status
		switch {
		case se.Code == 40403 || (status == 404 && op == opByID):
			re.Kind = ErrUnknownSchemaID
		case status == 404:
			re.Kind = ErrSubjectNotFound
		case status == 409 || status == 422:
			re.Kind = ErrSchemaRejected
		}
	}
	return re
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

// schemaByID returns the schema registered under id, from cache when it
// was seen before.
func (r *Registry) schemaByID(id int) (*registeredSchema, error) {
	r.mu.RLock()
	rs := r.byID[id]
	missingAt, missing := r.missing[id]
	r.mu.RUnlock()
	if rs != nil {
		return rs, nil
	}
	if missing && time.Now().Sub(missingAt) < missingTTL {
		return nil, &RegistryError{Op: opByID, SchemaID: id, Kind: ErrUnknownSchemaID,
			Err: fmt.Errorf("the registry did not know schema %d at %s", id, missingAt.Format(time.RFC3339))}
	}
	s, err := r.client.GetSchema(id)
	if err != nil {
		err = classify(opByID, "", id, err)
		if errors.Is(err, ErrUnknownSchemaID) {
			r.mu.Lock()
			if len(r.missing) > 10000 {
				clear(r.missing)
			}
			r.missing[id] = time.Now()
			r.mu.Unlock()
		}
		return nil, err
	}
	if t := s.SchemaType(); t != nil && *t != srclient.Avro && *t != "" {
		return nil, &RegistryError{Op: opByID, SchemaID: id, Kind: ErrSchemaRejected, Err: fmt.Errorf("schema %d is %s, not Avro", id, *t)}
	}
	if len(s.References()) > 0 {
		return nil, &RegistryError{Op: opByID, SchemaID: id, Kind: ErrSchemaRejected, Err: fmt.Errorf("schema %d uses references, which brook does not support", id)}
	}
	rs, err = r.compile(id, s.Schema())
	if err != nil {
		return nil, &RegistryError{Op: opByID, SchemaID: id, Kind: ErrSchemaRejected, Err: err}
	}
	r.mu.Lock()
	r.byID[id] = rs
	r.mu.Unlock()
	return rs, nil
}

// register registers text under subject (idempotent: an existing identical
// schema keeps its id) and caches the id.
func (r *Registry) register(subject, text string) (*registeredSchema, error) {
	key := subjectText{subject, text}
	r.mu.RLock()
	rs := r.byText[key]
	r.mu.RUnlock()
	if rs != nil {
		return rs, nil
	}
	s, err := r.client.CreateSchema(subject, text, srclient.Avro)
	if err != nil {
		return nil, classify(opRegister, subject, 0, err)
	}
	r.log.Info("serde: schema registered", "subject", subject, "id", s.ID())
	rs, err = r.compile(s.ID(), text)
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
func (r *Registry) latest(subject string) (*registeredSchema, error) {
	r.mu.RLock()
	rs := r.latestFor[subject]
	r.mu.RUnlock()
	if rs != nil {
		return rs, nil
	}
	s, err := r.client.GetLatestSchema(subject)
	if err != nil {
		return nil, classify(opLatest, subject, 0, err)
	}
	rs, err = r.schemaByID(s.ID())
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.latestFor[subject] = rs
	r.mu.Unlock()
	return rs, nil
}

// doJSON makes one registry call with ctx and decodes a 2xx JSON answer
// into out. Other statuses become *RegistryError (with the registry's
// error_code and message when it sent them).
func (r *Registry) doJSON(ctx context.Context, op, subject, method, path string, body, out any) error {
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
	resp, err := r.http.Do(req)
	if err != nil {
		return &RegistryError{Op: op, Subject: subject, Kind: ErrRegistryUnavailable, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return &RegistryError{Op: op, Subject: subject, Status: resp.StatusCode, Kind: ErrRegistryUnavailable, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Code    int    `json:"error_code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		re := &RegistryError{Op: op, Subject: subject, Status: resp.StatusCode, Code: e.Code, Kind: ErrRegistryUnavailable}
		if e.Message != "" {
			re.Err = errors.New(e.Message)
		} else {
			re.Err = errors.New(resp.Status)
		}
		switch {
		case resp.StatusCode == http.StatusNotFound:
			re.Kind = ErrSubjectNotFound
		case resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusUnprocessableEntity:
			re.Kind = ErrSchemaRejected
		}
		return re
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return &RegistryError{Op: op, Subject: subject, Status: resp.StatusCode, Kind: ErrRegistryUnavailable, Err: fmt.Errorf("bad JSON answer: %w", err)}
		}
	}
	return nil
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
		err = r.doJSON(ctx, opConfig, subject, http.MethodGet, "/config/"+url.PathEscape(subject), nil, &cfg)
	}
	if errors.Is(err, ErrSubjectNotFound) {
		err = r.doJSON(ctx, opConfig, "", http.MethodGet, "/config", nil, &cfg)
	}
	if err != nil {
		return "", err
	}
	if cfg.Level == "" {
		cfg.Level = cfg.Level2
	}
	if cfg.Level == "" {
		return "", &RegistryError{Op: opConfig, Subject: subject, Kind: ErrRegistryUnavailable, Err: errors.New("answer has no compatibility level")}
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
	err = r.doJSON(ctx, opCompat, subject, http.MethodPost, path, map[string]string{"schema": schema}, &res)
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
