package avro

import (
	"context"
	"errors"
	"github.com/brookstream/brook/serde"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a Registry clock whose sleeps return at once and move the
// time on, so retry schedules are checked without waiting for them.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	sleeps  []time.Duration
	onSleep func(n int) // called after the n-th sleep (1-based)
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	n, on := len(c.sleeps), c.onSleep
	c.mu.Unlock()
	if on != nil {
		on(n)
	}
	return ctx.Err()
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// scripted is a registry stand-in whose n-th request (1-based) is answered
// by answer.
type scripted struct {
	srv      *httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	answer   func(n int, w http.ResponseWriter, r *http.Request)
}

func newScripted(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *scripted {
	s := &scripted{answer: answer}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.requests.Add(1))
		s.mu.Lock()
		a := s.answer
		s.mu.Unlock()
		a(n, w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scripted) set(answer func(n int, w http.ResponseWriter, r *http.Request)) {
	s.mu.Lock()
	s.answer = answer
	s.mu.Unlock()
}

func answerJSON(status int, body string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// answerSchema answers every schema lookup with the Avro schema "string"
// as id 7 (and registrations with id 7).
var answerSchema = answerJSON(200, `{"id":7,"schema":"\"string\""}`)

// payload is "hi" in the wire format with schema id 7.
var payload = []byte{0, 0, 0, 0, 7, 4, 'h', 'i'}

func newClockedRegistry(t *testing.T, url string, c *fakeClock, opts ...RegistryOption) *Registry {
	t.Helper()
	reg, err := NewRegistry(url, append([]RegistryOption{WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	reg.now, reg.sleep = c.now, c.sleep
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

func newStringAvro(t *testing.T, reg *Registry, opts ...AvroOption) *Avro[string] {
	t.Helper()
	a, err := NewAvro[string](reg, `"string"`, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRegistryClassifiesFailures: the registry's verdicts on the data (an
// unknown id, a subject without versions, a refused schema) are final at
// once; everything else — a refused connection, 5xx, 429, 401, a 404 that
// is not the registry's own, a garbled answer — is "unavailable" and is
// retried until the bound, never mistaken for bad data.
func TestRegistryClassifiesFailures(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	cases := []struct {
		name   string
		answer func(int, http.ResponseWriter, *http.Request)
		down   bool // connection refused
		call   string
		kind   error
	}{
		{name: "connection refused", down: true, call: "id", kind: serde.ErrRegistryUnavailable},
		{name: "500 with registry code", answer: answerJSON(500, `{"error_code":50001,"message":"Error in the backend data store"}`), call: "id", kind: serde.ErrRegistryUnavailable},
		{name: "503 plain text", answer: func(_ int, w http.ResponseWriter, _ *http.Request) { http.Error(w, "no healthy upstream", 503) }, call: "id", kind: serde.ErrRegistryUnavailable},
		{name: "429", answer: answerJSON(429, `{"error_code":429,"message":"slow down"}`), call: "register", kind: serde.ErrRegistryUnavailable},
		{name: "401", answer: answerJSON(401, `{"error_code":401,"message":"Unauthorized"}`), call: "latest", kind: serde.ErrRegistryUnavailable},
		{name: "404 generic route", answer: answerJSON(404, `{"error_code":404,"message":"HTTP 404 Not Found"}`), call: "id", kind: serde.ErrRegistryUnavailable},
		{name: "404 bare", answer: func(_ int, w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) }, call: "latest", kind: serde.ErrRegistryUnavailable},
		{name: "200 garbled", answer: answerJSON(200, `<html>login</html>`), call: "id", kind: serde.ErrRegistryUnavailable},
		{name: "unknown id", answer: answerJSON(404, `{"error_code":40403,"message":"Schema not found"}`), call: "id", kind: serde.ErrUnknownSchemaID},
		{name: "no such subject", answer: answerJSON(404, `{"error_code":40401,"message":"Subject not found"}`), call: "latest", kind: ErrSubjectNotFound},
		{name: "incompatible", answer: answerJSON(409, `{"error_code":409,"message":"incompatible"}`), call: "register", kind: ErrSchemaRejected},
		{name: "invalid schema", answer: answerJSON(422, `{"error_code":42201,"message":"Invalid schema"}`), call: "register", kind: ErrSchemaRejected},
	}
	const bound = 2 * time.Second
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := closedURL
			var s *scripted
			if !c.down {
				s = newScripted(t, c.answer)
				url = s.srv.URL
			}
			clock := &fakeClock{}
			reg := newClockedRegistry(t, url, clock, WithRetry(bound))
			ctx := context.Background()
			var err error
			switch c.call {
			case "id":
				_, err = reg.schemaByID(ctx, 7)
			case "latest":
				_, err = reg.latest(ctx, "s-value")
			case "register":
				_, err = reg.register(ctx, "s-value", `"string"`)
			}
			var re *RegistryError
			if !errors.Is(err, c.kind) || !errors.As(err, &re) || re.Kind != c.kind {
				t.Fatalf("got %v, want kind %v", err, c.kind)
			}
			if re.URL != url || !strings.Contains(err.Error(), url) {
				t.Fatalf("error does not name the registry %s: %v", url, err)
			}
			retried := len(clock.slept()) > 0
			if retried != (c.kind == serde.ErrRegistryUnavailable) {
				t.Fatalf("retried = %v (sleeps %v) for kind %v", retried, clock.slept(), c.kind)
			}
			if c.kind != serde.ErrRegistryUnavailable && s.requests.Load() != 1 {
				t.Fatalf("a verdict took %d requests, want 1", s.requests.Load())
			}
			if c.kind == serde.ErrRegistryUnavailable && re.Waited < bound {
				t.Fatalf("gave up after %v, before the %v bound", re.Waited, bound)
			}
		})
	}
}

// TestRegistryBackoffIsBounded: while the registry answers 503, a call
// retries with pauses doubling from 100 ms up to 5 s, asks at every retry,
// and gives up when the bound has passed — not before, and with no pause
// running past it — with an error that says how long it tried.
func TestRegistryBackoffIsBounded(t *testing.T) {
	s := newScripted(t, answerJSON(503, `{"error_code":50301,"message":"down"}`))
	clock := &fakeClock{}
	const bound = 20 * time.Second
	a := newStringAvro(t, newClockedRegistry(t, s.srv.URL, clock, WithRetry(bound)))
	_, err := a.Deserialize("t", payload)
	var de *serde.DecodeError
	var re *RegistryError
	if !errors.As(err, &de) || de.Kind != serde.ErrRegistryUnavailable || !errors.As(err, &re) {
		t.Fatalf("got %v, want a serde.DecodeError of kind serde.ErrRegistryUnavailable", err)
	}
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms, 3700 * ms}
	got := clock.slept()
	if len(got) != len(want) {
		t.Fatalf("pauses %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pauses %v, want %v", got, want)
		}
	}
	if re.Attempts != len(want)+1 || re.Waited != bound || int(s.requests.Load()) != re.Attempts {
		t.Fatalf("attempts %d, waited %v, requests %d; want %d, %v, %d", re.Attempts, re.Waited, s.requests.Load(), len(want)+1, bound, len(want)+1)
	}
	if !strings.Contains(err.Error(), "gave up after 10 attempts over 20s") || !strings.Contains(err.Error(), s.srv.URL) {
		t.Fatalf("error does not say where and how long: %v", err)
	}

	// Without retries the first failure is final.
	clock2 := &fakeClock{}
	before := s.requests.Load()
	a2 := newStringAvro(t, newClockedRegistry(t, s.srv.URL, clock2, WithRetry(0)))
	if _, err := a2.Deserialize("t", payload); !errors.Is(err, serde.ErrRegistryUnavailable) {
		t.Fatalf("no retry: %v", err)
	}
	if n := s.requests.Load() - before; n != 1 || len(clock2.slept()) != 0 {
		t.Fatalf("no retry: %d requests, pauses %v; want 1 and none", n, clock2.slept())
	}
}

// TestRegistryOutageShorterThanBound: the registry fails three times, then
// answers; the call just succeeds, and the schema is cached.
func TestRegistryOutageShorterThanBound(t *testing.T) {
	s := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n <= 3 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		answerSchema(n, w, r)
	})
	clock := &fakeClock{}
	a := newStringAvro(t, newClockedRegistry(t, s.srv.URL, clock))
	v, err := a.Deserialize("t", payload)
	if err != nil || v != "hi" {
		t.Fatalf("got %q, %v", v, err)
	}
	if got := clock.slept(); len(got) != 3 || got[0] != 100*time.Millisecond || got[2] != 400*time.Millisecond {
		t.Fatalf("pauses %v, want 100ms 200ms 400ms", got)
	}
	if _, err := a.Deserialize("t", payload); err != nil || s.requests.Load() != 4 {
		t.Fatalf("cached schema: %v, %d requests", err, s.requests.Load())
	}
	// The serializer side waits the same way: a registration during an
	// outage succeeds once the registry is back.
	s.set(func(n int, w http.ResponseWriter, r *http.Request) {
		if n <= 6 {
			http.Error(w, "restarting", http.StatusBadGateway)
			return
		}
		answerSchema(n, w, r)
	})
	if b, err := newStringAvro(t, a.reg).Serialize("t2", "hi"); err != nil || string(b) != string(payload) {
		t.Fatalf("serialize across an outage: % x, %v", b, err)
	}
}

// TestRegistryRemembersUnavailable: after a blackholed registry made one
// call wait for its request time-out, calls in the next second do not ask
// it (no time-out each); after that second it is asked again, and once it
// answers, calls go through at once.
func TestRegistryRemembersUnavailable(t *testing.T) {
	var healthy atomic.Bool
	s := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			<-r.Context().Done() // blackhole: no answer until the client gives up
			return
		}
		answerJSON(404, `{"error_code":40403,"message":"Schema not found"}`)(n, w, r)
	})
	clock := &fakeClock{}
	reg := newClockedRegistry(t, s.srv.URL, clock, WithRetry(0), WithRequestTimeout(50*time.Millisecond))
	ctx := context.Background()
	_, err := reg.schemaByID(ctx, 1)
	if !errors.Is(err, serde.ErrRegistryUnavailable) || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Fatalf("blackholed: %v", err)
	}
	for id := 2; id < 50; id++ {
		if _, err := reg.schemaByID(ctx, id); !errors.Is(err, serde.ErrRegistryUnavailable) || !strings.Contains(err.Error(), "not asked") {
			t.Fatalf("id %d while known down: %v", id, err)
		}
	}
	if n := s.requests.Load(); n != 1 {
		t.Fatalf("%d requests while the registry was known down, want 1", n)
	}
	clock.advance(downTTL)
	healthy.Store(true)
	if _, err := reg.schemaByID(ctx, 50); !errors.Is(err, serde.ErrUnknownSchemaID) || s.requests.Load() != 2 {
		t.Fatalf("after a second: %v, %d requests; want the registry asked again", err, s.requests.Load())
	}
	// An answer clears the memory: the next call asks at once.
	if _, err := reg.schemaByID(ctx, 51); !errors.Is(err, serde.ErrUnknownSchemaID) || s.requests.Load() != 3 {
		t.Fatalf("after an answer: %v, %d requests", err, s.requests.Load())
	}

	// A call with retries that starts while the registry is known down
	// does not ask on its first attempt, but does at its first retry.
	healthy.Store(false)
	if _, err := reg.schemaByID(ctx, 60); !errors.Is(err, serde.ErrRegistryUnavailable) {
		t.Fatal(err)
	}
	healthy.Store(true)
	before := s.requests.Load()
	clock2 := &fakeClock{t: clock.now()}
	reg.sleep = clock2.sleep
	reg.now = clock2.now
	reg.retryWait = time.Minute
	if _, err := reg.schemaByID(ctx, 61); !errors.Is(err, serde.ErrUnknownSchemaID) {
		t.Fatalf("retrying call: %v", err)
	}
	if n := s.requests.Load() - before; n != 1 || len(clock2.slept()) != 1 {
		t.Fatalf("retrying call: %d requests, pauses %v; want 1 request after 1 pause", n, clock2.slept())
	}
}

// TestRegistryRemembersUnknownIDs: an id the registry does not know is
// answered from memory for a while (a flood of records with a bogus id
// costs one call), then asked again.
func TestRegistryRemembersUnknownIDs(t *testing.T) {
	s := newScripted(t, answerJSON(404, `{"error_code":40403,"message":"Schema not found"}`))
	clock := &fakeClock{}
	a := newStringAvro(t, newClockedRegistry(t, s.srv.URL, clock))
	for i := 0; i < 100; i++ {
		_, err := a.Deserialize("t", payload)
		var de *serde.DecodeError
		if !errors.As(err, &de) || de.Kind != serde.ErrUnknownSchemaID || de.SchemaID != 7 {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if n := s.requests.Load(); n != 1 {
		t.Fatalf("%d requests for one unknown id, want 1", n)
	}
	clock.advance(missingTTL)
	s.set(answerSchema) // registered in the meantime
	if v, err := a.Deserialize("t", payload); err != nil || v != "hi" || s.requests.Load() != 2 {
		t.Fatalf("after %v: %q, %v, %d requests", missingTTL, v, err, s.requests.Load())
	}
}

// TestRegistryWaitEndsWithContext: a wait for an unavailable registry
// ends when the caller's context does, with an error that is both
// serde.ErrRegistryUnavailable and the context's error.
func TestRegistryWaitEndsWithContext(t *testing.T) {
	s := newScripted(t, answerJSON(503, `{"error_code":50301,"message":"down"}`))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := &fakeClock{onSleep: func(n int) {
		if n == 2 {
			cancel()
		}
	}}
	a := newStringAvro(t, newClockedRegistry(t, s.srv.URL, clock))
	_, err := a.DeserializeContext(ctx, "t", payload)
	if !errors.Is(err, serde.ErrRegistryUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want serde.ErrRegistryUnavailable and context.Canceled", err)
	}
	if n := s.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2 (none after the context ended)", n)
	}
}

// TestRegistryConcurrentOutage: many goroutines waiting out the same
// outage (run with -race) all fail with the outage when it outlasts the
// bound, and all succeed when it does not.
func TestRegistryConcurrentOutage(t *testing.T) {
	var up atomic.Bool
	s := newScripted(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		answerSchema(n, w, r)
	})
	reg, err := NewRegistry(s.srv.URL, WithLogger(slog.New(slog.DiscardHandler)), WithRetry(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	run := func() []error {
		errs := make([]error, 8)
		var wg sync.WaitGroup
		for g := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[g] = newStringAvro(t, reg).Deserialize("t", payload)
			}()
		}
		wg.Wait()
		return errs
	}
	for g, err := range run() {
		if !errors.Is(err, serde.ErrRegistryUnavailable) {
			t.Fatalf("goroutine %d during the outage: %v", g, err)
		}
	}
	up.Store(true)
	for g, err := range run() {
		if err != nil {
			t.Fatalf("goroutine %d after the outage: %v", g, err)
		}
	}
}
