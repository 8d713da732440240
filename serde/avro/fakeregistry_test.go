package avro_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeRegistry is an in-process stand-in for the schema registry's REST
// API, enough for unit tests of caching and error paths. The registry tests
// in registry_test.go run against the real registry.
type fakeRegistry struct {
	srv      *httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	schemas  []string         // id-1 -> schema
	subjects map[string][]int // subject -> ids by version
	// compat, when set, answers compatibility checks.
	compat func(subject, schema string) (bool, []string)
	level  string
}

func newFakeRegistry(t testing.TB) *fakeRegistry {
	f := &fakeRegistry{subjects: map[string][]int{}, level: "BACKWARD"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRegistry) URL() string { return f.srv.URL }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, http.StatusNotFound, map[string]any{"error_code": code, "message": msg})
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var body struct {
		Schema string `json:"schema"`
	}
	if r.Body != nil {
		_ = json.NewDecoder(r.Body).Decode(&body)
	}
	switch {
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "schemas" && parts[1] == "ids":
		id, _ := strconv.Atoi(parts[2])
		if id < 1 || id > len(f.schemas) {
			notFound(w, 40403, "Schema not found")
			return
		}
		writeJSON(w, 200, map[string]any{"schema": f.schemas[id-1]})
	case r.Method == http.MethodPost && len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions":
		subject := parts[1]
		id := 0
		for i, s := range f.schemas {
			if s == body.Schema {
				id = i + 1
			}
		}
		if id == 0 {
			f.schemas = append(f.schemas, body.Schema)
			id = len(f.schemas)
		}
		found := false
		for _, v := range f.subjects[subject] {
			found = found || v == id
		}
		if !found {
			f.subjects[subject] = append(f.subjects[subject], id)
		}
		writeJSON(w, 200, map[string]any{"id": id})
	case r.Method == http.MethodGet && len(parts) == 4 && parts[0] == "subjects" && parts[3] == "latest":
		ids := f.subjects[parts[1]]
		if len(ids) == 0 {
			notFound(w, 40401, "Subject not found")
			return
		}
		id := ids[len(ids)-1]
		writeJSON(w, 200, map[string]any{"subject": parts[1], "version": len(ids), "id": id, "schema": f.schemas[id-1]})
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "config":
		notFound(w, 40408, "Subject does not have subject-level compatibility configured")
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "config":
		writeJSON(w, 200, map[string]any{"compatibilityLevel": f.level})
	case r.Method == http.MethodPost && len(parts) == 5 && parts[0] == "compatibility":
		if len(f.subjects[parts[2]]) == 0 {
			notFound(w, 40401, "Subject not found")
			return
		}
		ok, msgs := true, []string(nil)
		if f.compat != nil {
			ok, msgs = f.compat(parts[2], body.Schema)
		}
		writeJSON(w, 200, map[string]any{"is_compatible": ok, "messages": msgs})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error_code": 404, "message": "no route " + r.Method + " " + r.URL.Path})
	}
}

func (f *fakeRegistry) subjectIDs(subject string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.subjects[subject]...)
}
