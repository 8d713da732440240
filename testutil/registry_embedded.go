package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/brookstream/brook/serde/avro"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EmbeddedRegistry is an in-process schema registry that speaks the part
// of the Confluent Schema Registry REST API that brook (and srclient) use:
// registering, looking up and reading schemas by subject, version and id,
// compatibility levels (global and per subject) and compatibility checks.
//
// Compatibility checks are real for Avro: they apply Avro's schema
// resolution rules, the same code brook's Avro deserializer resolves
// writer schemas with (avro.CheckAvroResolution). BACKWARD means the new
// schema can read data written with the latest one, FORWARD the reverse,
// FULL both; the _TRANSITIVE levels check against every version. The
// default global level is BACKWARD, as in Confluent's registry. Only Avro
// schemas are accepted (no JSON Schema, Protobuf or references). State is
// in memory.
//
// It is meant for tests and for the examples' no-infrastructure mode, not
// for production.
type EmbeddedRegistry struct {
	srv    *http.Server
	ln     net.Listener
	served chan struct{}

	mu       sync.Mutex
	global   string
	levels   map[string]string
	subjects map[string][]int // subject -> schema id per version (version = index+1)
	schemas  []string         // id-1 -> schema text
	byText   map[string]int   // compacted schema text -> id
}

// NewEmbeddedRegistry starts a registry listening on addr ("127.0.0.1:0"
// picks a free port). Close stops it.
func NewEmbeddedRegistry(addr string) (*EmbeddedRegistry, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testutil: embedded registry: %w", err)
	}
	r := &EmbeddedRegistry{
		ln: ln, served: make(chan struct{}),
		global: "BACKWARD", levels: map[string]string{}, subjects: map[string][]int{}, byText: map[string]int{},
	}
	r.srv = &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { // owned by Close, which waits for it
		defer close(r.served)
		_ = r.srv.Serve(ln)
	}()
	return r, nil
}

// StartRegistry starts an embedded registry for the test and stops it at
// the end of the test.
func StartRegistry(t testing.TB) *EmbeddedRegistry {
	t.Helper()
	r, err := NewEmbeddedRegistry("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// URL returns the registry's base URL.
func (r *EmbeddedRegistry) URL() string { return "http://" + r.ln.Addr().String() }

// Close stops the server and waits for it. Calling it again does nothing.
func (r *EmbeddedRegistry) Close() error {
	err := r.srv.Close()
	<-r.served
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Handler returns the registry's HTTP handler (to mount it elsewhere).
func (r *EmbeddedRegistry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /subjects", r.listSubjects)
	mux.HandleFunc("GET /subjects/{subject}/versions", r.listVersions)
	mux.HandleFunc("POST /subjects/{subject}/versions", r.register)
	mux.HandleFunc("POST /subjects/{subject}", r.lookup)
	mux.HandleFunc("DELETE /subjects/{subject}", r.deleteSubject)
	mux.HandleFunc("GET /subjects/{subject}/versions/{version}", r.getVersion)
	mux.HandleFunc("GET /schemas/ids/{id}", r.getByID)
	mux.HandleFunc("GET /config", r.getGlobal)
	mux.HandleFunc("PUT /config", r.putGlobal)
	mux.HandleFunc("GET /config/{subject}", r.getConfig)
	mux.HandleFunc("PUT /config/{subject}", r.putConfig)
	mux.HandleFunc("POST /compatibility/subjects/{subject}/versions/{version}", r.compatibility)
	return http.MaxBytesHandler(mux, 4<<20)
}

type regError struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, format string, args ...any) {
	status := code
	for status >= 1000 {
		status /= 10
	}
	reply(w, status, regError{Code: code, Message: fmt.Sprintf(format, args...)})
}

var levelNames = []string{"NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"}

type schemaRequest struct {
	Schema     string            `json:"schema"`
	SchemaType string            `json:"schemaType"`
	References []json.RawMessage `json:"references"`
}

// readSchema decodes and validates a schema request body.
func readSchema(w http.ResponseWriter, req *http.Request) (string, bool) {
	var sr schemaRequest
	if err := json.NewDecoder(req.Body).Decode(&sr); err != nil {
		fail(w, 42201, "invalid request body: %v", err)
		return "", false
	}
	if sr.SchemaType != "" && sr.SchemaType != "AVRO" {
		fail(w, 42201, "the embedded registry supports Avro schemas only, not %s", sr.SchemaType)
		return "", false
	}
	if len(sr.References) > 0 {
		fail(w, 42201, "the embedded registry does not support schema references")
		return "", false
	}
	if err := avro.CheckAvroResolution(sr.Schema, sr.Schema); err != nil {
		fail(w, 42201, "Invalid schema: %v", err)
		return "", false
	}
	return sr.Schema, true
}

func compact(text string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(text)); err != nil {
		return text
	}
	return b.String()
}

func (r *EmbeddedRegistry) levelOf(subject string) string {
	if l, ok := r.levels[subject]; ok {
		return l
	}
	return r.global
}

// incompatibilities checks text against the subject's versions under its
// level (against version only when only > 0); it returns the reasons it
// cannot be added. r.mu is held.
func (r *EmbeddedRegistry) incompatibilities(subject, text string, only int) []string {
	ids := r.subjects[subject]
	if len(ids) == 0 {
		return nil
	}
	level := r.levelOf(subject)
	against := ids[len(ids)-1:]
	switch {
	case only > 0:
		against = ids[only-1 : only]
	case strings.HasSuffix(level, "_TRANSITIVE"):
		against = ids
	}
	backward := strings.HasPrefix(level, "BACKWARD") || strings.HasPrefix(level, "FULL")
	forward := strings.HasPrefix(level, "FORWARD") || strings.HasPrefix(level, "FULL")
	var msgs []string
	for i, id := range ids {
		if !slices.Contains(against, id) || only > 0 && i+1 != only {
			continue
		}
		old := r.schemas[id-1]
		if backward {
			if err := avro.CheckAvroResolution(text, old); err != nil {
				msgs = append(msgs, fmt.Sprintf("%s: the new schema cannot read data written with version %d: %v", level, i+1, err))
			}
		}
		if forward {
			if err := avro.CheckAvroResolution(old, text); err != nil {
				msgs = append(msgs, fmt.Sprintf("%s: version %d cannot read data written with the new schema: %v", level, i+1, err))
			}
		}
	}
	return msgs
}

func (r *EmbeddedRegistry) listSubjects(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	out := []string{}
	for s := range r.subjects {
		out = append(out, s)
	}
	r.mu.Unlock()
	slices.Sort(out)
	reply(w, http.StatusOK, out)
}

func (r *EmbeddedRegistry) listVersions(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	r.mu.Lock()
	ids, ok := r.subjects[subject]
	r.mu.Unlock()
	if !ok {
		fail(w, 40401, "Subject '%s' not found.", subject)
		return
	}
	out := make([]int, len(ids))
	for i := range ids {
		out[i] = i + 1
	}
	reply(w, http.StatusOK, out)
}

func (r *EmbeddedRegistry) register(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	text, ok := readSchema(w, req)
	if !ok {
		return
	}
	key := compact(text)
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.byText[key]; ok && slices.Contains(r.subjects[subject], id) {
		reply(w, http.StatusOK, map[string]int{"id": id})
		return
	}
	if msgs := r.incompatibilities(subject, text, 0); len(msgs) > 0 {
		fail(w, 409, "Schema being registered is incompatible with an earlier schema for subject %q, details: %s", subject, strings.Join(msgs, "; "))
		return
	}
	id, ok := r.byText[key]
	if !ok {
		r.schemas = append(r.schemas, text)
		id = len(r.schemas)
		r.byText[key] = id
	}
	r.subjects[subject] = append(r.subjects[subject], id)
	reply(w, http.StatusOK, map[string]int{"id": id})
}

type versionAnswer struct {
	Subject string `json:"subject"`
	ID      int    `json:"id"`
	Version int    `json:"version"`
	Schema  string `json:"schema"`
}

func (r *EmbeddedRegistry) lookup(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	text, ok := readSchema(w, req)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, ok := r.subjects[subject]
	if !ok {
		fail(w, 40401, "Subject '%s' not found.", subject)
		return
	}
	id := r.byText[compact(text)]
	if i := slices.Index(ids, id); id > 0 && i >= 0 {
		reply(w, http.StatusOK, versionAnswer{Subject: subject, ID: id, Version: i + 1, Schema: r.schemas[id-1]})
		return
	}
	fail(w, 40403, "Schema not found")
}

func (r *EmbeddedRegistry) deleteSubject(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, ok := r.subjects[subject]
	if !ok {
		fail(w, 40401, "Subject '%s' not found.", subject)
		return
	}
	delete(r.subjects, subject)
	delete(r.levels, subject)
	out := make([]int, len(ids))
	for i := range ids {
		out[i] = i + 1
	}
	reply(w, http.StatusOK, out)
}

// version resolves "latest" or a number; r.mu is held.
func (r *EmbeddedRegistry) version(w http.ResponseWriter, subject, v string) (int, bool) {
	ids, ok := r.subjects[subject]
	if !ok {
		fail(w, 40401, "Subject '%s' not found.", subject)
		return 0, false
	}
	if v == "latest" || v == "-1" {
		return len(ids), true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		fail(w, 42202, "The specified version '%s' is not a valid version id.", v)
		return 0, false
	}
	if n > len(ids) {
		fail(w, 40402, "Version %d not found.", n)
		return 0, false
	}
	return n, true
}

func (r *EmbeddedRegistry) getVersion(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.version(w, subject, req.PathValue("version"))
	if !ok {
		return
	}
	id := r.subjects[subject][n-1]
	reply(w, http.StatusOK, versionAnswer{Subject: subject, ID: id, Version: n, Schema: r.schemas[id-1]})
}

func (r *EmbeddedRegistry) getByID(w http.ResponseWriter, req *http.Request) {
	id, err := strconv.Atoi(req.PathValue("id"))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || id < 1 || id > len(r.schemas) {
		fail(w, 40403, "Schema %s not found", req.PathValue("id"))
		return
	}
	reply(w, http.StatusOK, map[string]string{"schema": r.schemas[id-1]})
}

func (r *EmbeddedRegistry) getGlobal(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reply(w, http.StatusOK, map[string]string{"compatibilityLevel": r.global})
}

func readLevel(w http.ResponseWriter, req *http.Request) (string, bool) {
	var body struct {
		Compatibility string `json:"compatibility"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil || !slices.Contains(levelNames, strings.ToUpper(body.Compatibility)) {
		fail(w, 42203, "Invalid compatibility level; use one of %v", levelNames)
		return "", false
	}
	return strings.ToUpper(body.Compatibility), true
}

func (r *EmbeddedRegistry) putGlobal(w http.ResponseWriter, req *http.Request) {
	l, ok := readLevel(w, req)
	if !ok {
		return
	}
	r.mu.Lock()
	r.global = l
	r.mu.Unlock()
	reply(w, http.StatusOK, map[string]string{"compatibility": l})
}

func (r *EmbeddedRegistry) getConfig(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.levels[subject]
	if !ok {
		if req.URL.Query().Get("defaultToGlobal") != "true" {
			fail(w, 40408, "Subject '%s' does not have subject-level compatibility configured", subject)
			return
		}
		l = r.global
	}
	reply(w, http.StatusOK, map[string]string{"compatibilityLevel": l})
}

func (r *EmbeddedRegistry) putConfig(w http.ResponseWriter, req *http.Request) {
	l, ok := readLevel(w, req)
	if !ok {
		return
	}
	r.mu.Lock()
	r.levels[req.PathValue("subject")] = l
	r.mu.Unlock()
	reply(w, http.StatusOK, map[string]string{"compatibility": l})
}

func (r *EmbeddedRegistry) compatibility(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	text, ok := readSchema(w, req)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.version(w, subject, req.PathValue("version"))
	if !ok {
		return
	}
	// Check against the asked version only (the _TRANSITIVE levels check
	// every version at registration).
	msgs := r.incompatibilities(subject, text, n)
	out := map[string]any{"is_compatible": len(msgs) == 0}
	if req.URL.Query().Get("verbose") == "true" {
		if msgs == nil {
			msgs = []string{}
		}
		out["messages"] = msgs
	}
	reply(w, http.StatusOK, out)
}
