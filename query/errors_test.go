package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// unstartedQueryHandler is the query handler of an App that has not
// started: every store answer is then a 503.
func unstartedQueryHandler(t *testing.T, opts ...query.Option) http.Handler {
	t.Helper()
	app, err := topology.NewApp(countTopology(t, "in", "out"), topology.Config{ApplicationID: "q", Brokers: []string{"127.0.0.1:1"}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return app.QueryHandler(opts...)
}

// checkJSONError checks that an answer is an error in the handler's one
// shape: Content-Type application/json and a body that is exactly
// {"error": "<non-empty>"} (plus "restoring" on some 503s).
func checkJSONError(t *testing.T, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: %d with Content-Type %q: %q", what, rec.Code, ct, rec.Body.String())
		return
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Errorf("%s: %d body is not JSON: %q", what, rec.Code, rec.Body.String())
		return
	}
	var msg string
	if err := json.Unmarshal(body["error"], &msg); err != nil || msg == "" {
		t.Errorf("%s: %d body has no error message: %s", what, rec.Code, rec.Body.String())
	}
	for k := range body {
		if k != "error" && k != "restoring" {
			t.Errorf("%s: error body has field %q: %s", what, k, rec.Body.String())
		}
	}
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// TestQueryErrorsAreJSON checks that every error answer of the query
// handler is JSON in the handler's error shape, including the answers a
// router gives by itself: every route with every other method (405 with
// Allow), unknown and non-canonical paths (404, never a redirect to
// another path or key), and malformed URLs.
func TestQueryErrorsAreJSON(t *testing.T) {
	h := unstartedQueryHandler(t)
	routes := []string{"/health", "/ready", "/caught-up", "/instances", "/stores", "/stores/counts",
		"/stores/counts/keys/a", "/stores/counts/range", "/stores/counts/metadata?key=a"}
	methods := []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodOptions, http.MethodTrace, http.MethodConnect, "PROPFIND"}
	for _, p := range routes {
		for _, m := range methods {
			r := httptest.NewRequest(m, p, strings.NewReader("x"))
			rec := serve(h, r)
			what := m + " " + p
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s: %d %q; want 405", what, rec.Code, rec.Body.String())
			}
			if a := rec.Header().Get("Allow"); a != "GET, HEAD" {
				t.Errorf("%s: Allow %q; want \"GET, HEAD\"", what, a)
			}
			checkJSONError(t, what, rec)
		}
		// HEAD is GET without a body: routed, not refused.
		if rec := serve(h, httptest.NewRequest(http.MethodHead, p, nil)); rec.Code == http.StatusMethodNotAllowed || rec.Code == http.StatusNotFound {
			t.Errorf("HEAD %s: %d", p, rec.Code)
		}
	}

	for _, p := range []string{"/", "/nope", "/health/", "/stores/", "/stores//range", "//stores",
		"/stores/counts/", "/stores/counts/keys", "/stores/counts/range/", "/stores/counts/nope",
		"/stores/counts/metadata/x", "/instances/x", "/../stores", "/./stores", "/stores/../stores",
		"/STORES"} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			rec := serve(h, httptest.NewRequest(m, p, nil))
			if rec.Code != http.StatusNotFound {
				t.Errorf("%s %s: %d %q (Location %q); want 404", m, p, rec.Code, rec.Body.String(), rec.Header().Get("Location"))
			}
			checkJSONError(t, m+" "+p, rec)
		}
	}

	// A route's path with an unknown store: 404 for GET, 405 for others
	// (the method is checked first, as for any route).
	for _, p := range []string{"/stores/nope", "/stores/nope/keys/a", "/stores/nope/range", "/stores/nope/metadata?key=a"} {
		rec := serve(h, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d %q; want 404", p, rec.Code, rec.Body.String())
		}
		checkJSONError(t, "GET "+p, rec)
		rec = serve(h, httptest.NewRequest(http.MethodPost, p, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d %q; want 405", p, rec.Code, rec.Body.String())
		}
		checkJSONError(t, "POST "+p, rec)
	}

	// A key path is taken as it is: "a//b", "." and ".." are keys, not
	// paths to clean (a redirect would answer for another key). The App
	// has not started, so a routed key query is a 503.
	for _, p := range []string{"/stores/counts/keys/a//b", "/stores/counts/keys/.", "/stores/counts/keys/..",
		"/stores/counts/keys/a/../b", "/stores/counts/keys/a/./b", "/stores/counts/keys//", "/stores/counts/keys/"} {
		rec := serve(h, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("GET %s: %d %q (Location %q); want 503", p, rec.Code, rec.Body.String(), rec.Header().Get("Location"))
		}
		checkJSONError(t, "GET "+p, rec)
	}

	// Malformed URLs that reach the handler: paths without a leading
	// slash, the "*" of OPTIONS *, escapes that decode to odd bytes,
	// broken query strings.
	for _, c := range []struct {
		u    *url.URL
		want int
	}{
		{&url.URL{Path: ""}, http.StatusNotFound},
		{&url.URL{Path: "stores"}, http.StatusNotFound},
		{&url.URL{Path: "*"}, http.StatusNotFound},
		{&url.URL{Path: "/stores/%zz"}, http.StatusNotFound},
		{&url.URL{Path: "/stores/\x00/keys/a"}, http.StatusNotFound},
		{&url.URL{Path: "/stores/counts/range", RawQuery: "limit=%zz"}, http.StatusBadRequest},
		{&url.URL{Path: "/stores/counts/range", RawQuery: "from=a;to=b"}, http.StatusBadRequest},
		{&url.URL{Path: "/stores/counts/metadata", RawQuery: "key=%"}, http.StatusBadRequest},
		{&url.URL{Path: "/" + strings.Repeat("a", 20000)}, http.StatusRequestURITooLong},
	} {
		r := &http.Request{Method: http.MethodGet, URL: c.u, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "x", Body: http.NoBody}
		rec := serve(h, r)
		what := "GET " + c.u.String()
		if rec.Code != c.want {
			t.Errorf("%.80s: %d %q; want %d", what, rec.Code, rec.Body.String(), c.want)
		}
		checkJSONError(t, what[:min(len(what), 80)], rec)
	}

	// The handler's own errors keep their shape (a 503 of a store that
	// has no assignment yet, a 400 of a bad limit).
	for _, p := range []string{"/stores/counts/keys/a", "/stores/counts/range?limit=x", "/ready", "/instances"} {
		rec := serve(h, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code < 400 {
			t.Errorf("GET %s: %d", p, rec.Code)
		}
		checkJSONError(t, "GET "+p, rec)
	}
}

// TestQueryBearerScheme checks that the Authorization scheme is matched
// case-insensitively (RFC 9110 §11.1) and the token exactly, and that
// the 401 answer is JSON with a WWW-Authenticate challenge.
func TestQueryBearerScheme(t *testing.T) {
	h := unstartedQueryHandler(t, query.WithBearerToken("s3cret"))
	for _, c := range []struct {
		authz string
		ok    bool
	}{
		{"Bearer s3cret", true},
		{"bearer s3cret", true},
		{"BEARER s3cret", true},
		{"bEaReR s3cret", true},
		{"Bearer  s3cret", true}, // 1*SP
		{"", false},
		{"s3cret", false},
		{"Bearer", false},
		{"Bearer ", false},
		{"Bearers3cret", false},
		{"Bearer s3cret2", false},
		{"Bearer s3cre", false},
		{"Bearer S3CRET", false}, // the token is case-sensitive
		{"Bearer s3cret x", false},
		{"Basic s3cret", false},
		{"Token s3cret", false},
		{"Bearer\ts3cret", false},
		{"XBearer s3cret", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/stores", nil)
		if c.authz != "" {
			r.Header.Set("Authorization", c.authz)
		}
		rec := serve(h, r)
		if c.ok && rec.Code != http.StatusOK {
			t.Errorf("Authorization %q: %d %s; want 200", c.authz, rec.Code, rec.Body.String())
		}
		if !c.ok {
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("Authorization %q: %d; want 401", c.authz, rec.Code)
			}
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("Authorization %q: WWW-Authenticate %q", c.authz, rec.Header().Get("WWW-Authenticate"))
			}
			checkJSONError(t, "Authorization "+c.authz, rec)
		}
	}
}

// TestQueryForwardedErrorsAreJSON runs two instances of which the second
// serves, at its query endpoint, something that is not brook's handler
// (plain-text answers): keys it owns and ranges must get a JSON 502 from
// the first, not the other server's answer relayed.
func TestQueryForwardedErrorsAreJSON(t *testing.T) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 4, nil)
	b.CreateTopic(t, out, 4, nil)
	const keys = 20
	produceKeysTB(t, b, in, 4, keys, 1)
	appID := testutil.TopicName(t, "app")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := func() topology.Config {
		return topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t)}
	}
	first := startQueryInstance(t, ctx, countTopology(t, in, out), cfg())

	// The second instance's endpoint answers like a misconfigured proxy.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "key-00") || strings.HasSuffix(r.URL.Path, "/range") {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>hello</html>"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = plain.Serve(ln) }()
	t.Cleanup(func() { _ = plain.Close() })
	c := cfg()
	c.QueryEndpoint = ln.Addr().String()
	second, secondDone := startApp(t, ctx, countTopology(t, in, out), c)
	t.Cleanup(func() { _ = second.Close() })

	eventually(t, 90*time.Second, func() error {
		ins, _, ok := first.app.Instances()
		if !ok || len(ins) != 2 || len(ins[0].Tasks) == 0 || len(ins[1].Tasks) == 0 {
			return fmt.Errorf("instances %+v", ins)
		}
		if a, err := httpGetErr(first.endpoint, "/ready", nil); err != nil || a.status != http.StatusOK {
			return fmt.Errorf("first not ready: %v %s", err, a.body)
		}
		return nil
	})
	forwarded := 0
	for k := 0; k < keys; k++ {
		key := fmt.Sprintf("key-%03d", k)
		md := httpGet(t, first.endpoint, "/stores/counts/metadata?key="+key, nil)
		var m struct {
			Local bool `json:"local"`
		}
		if err := json.Unmarshal(md.body, &m); err != nil || md.status != http.StatusOK {
			t.Fatalf("metadata %s: %d %s", key, md.status, md.body)
		}
		if m.Local {
			continue
		}
		forwarded++
		a := httpGet(t, first.endpoint, "/stores/counts/keys/"+key, nil)
		rec := httptest.NewRecorder()
		for k, v := range a.header {
			rec.Header()[k] = v
		}
		rec.Code = a.status
		rec.Body.Write(a.body)
		if a.status != http.StatusBadGateway {
			t.Errorf("%s owned by a non-brook endpoint: %d %s; want 502", key, a.status, a.body)
		}
		checkJSONError(t, key, rec)
	}
	if forwarded == 0 {
		t.Fatal("the second instance owns no key")
	}
	a := httpGet(t, first.endpoint, "/stores/counts/range", nil)
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", a.header.Get("Content-Type"))
	rec.Code = a.status
	rec.Body.Write(a.body)
	if a.status != http.StatusBadGateway || !strings.Contains(string(a.body), "not JSON") {
		t.Errorf("range: %d %s; want a 502 saying the instance's answer is not JSON", a.status, a.body)
	}
	checkJSONError(t, "range", rec)
	cancel()
	if err := <-first.done; err != nil {
		t.Fatal(err)
	}
	if err := <-secondDone; err != nil {
		t.Fatal(err)
	}
}
