package query_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/topology"
)

// unstartedWindowApp is an App of windowCountTopology that has not
// started: it has no assignment.
func unstartedWindowApp(t *testing.T) *topology.App {
	t.Helper()
	app, err := topology.NewApp(windowCountTopology(t, "in", "out"), topology.Config{ApplicationID: "q", Brokers: []string{"127.0.0.1:1"}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// TestWindowViewErrors checks the errors of query.Window and
// topology.QueryWindow: an unknown store, a key-value store asked as a
// window store and a window store asked as a key-value store, other
// types, a nil App; and *NotReadyError from every read before the first
// assignment.
func TestWindowViewErrors(t *testing.T) {
	app := unstartedWindowApp(t)
	_, err := query.Window[string, int64](app, "nope")
	var us *processor.UnknownStoreError
	if !errors.As(err, &us) || us.Store != "nope" || us.Node != "" || !slices.Equal(us.Connected, []string{"totals", "win"}) {
		t.Fatalf("unknown store: %#v", err)
	}
	var te *processor.StoreTypeError
	for _, tc := range []struct {
		err       error
		store     string
		want, got string
	}{
		{second(query.Window[string, int64](app, "totals")), "totals", "store.WindowStore[string,int64]", "key-value store of string to int64"},
		{second(topology.QueryWindow[string, int64](app, "totals")), "totals", "store.WindowStore[string,int64]", "key-value store of string to int64"},
		{second(query.KeyValue[string, int64](app, "win")), "win", "store.KeyValueStore[string,int64]", "window store of string to int64"},
		{second(topology.QueryKeyValue[string, int64](app, "win")), "win", "store.KeyValueStore[string,int64]", "window store of string to int64"},
		{second(query.Window[string, string](app, "win")), "win", "store.WindowStore[string,string]", "window store of string to int64"},
		{second(query.Window[int64, int64](app, "win")), "win", "store.WindowStore[int64,int64]", "window store of string to int64"},
	} {
		if !errors.As(tc.err, &te) || te.Store != tc.store || te.Want != tc.want || te.Got != tc.got {
			t.Errorf("got %#v (%v); want a StoreTypeError for %s wanting %s, got %s", tc.err, tc.err, tc.store, tc.want, tc.got)
		}
	}
	if _, err := topology.QueryWindow[string, int64](nil, "win"); err == nil {
		t.Fatal("a nil *topology.App gave a view")
	}
	if _, err := query.Window[string, int64](nil, "win"); err == nil {
		t.Fatal("a nil query.App gave a view")
	}

	v, err := query.Window[string, int64](app, "win")
	if err != nil || v.Name() != "win" || v.WindowSize() != winSize {
		t.Fatalf("view: %v, %v", v, err)
	}
	var nr *query.NotReadyError
	t0 := time.UnixMilli(0)
	if _, _, err := v.Fetch("a", t0); !errors.As(err, &nr) || nr.Store != "win" || nr.Task != "" {
		t.Errorf("Fetch: %v", err)
	}
	if _, err := v.FetchRange("a", t0, t0); !errors.As(err, &nr) {
		t.Errorf("FetchRange: %v", err)
	}
	if _, err := v.FetchAll(t0, t0); !errors.As(err, &nr) {
		t.Errorf("FetchAll: %v", err)
	}
	if _, err := v.Metadata("a"); !errors.As(err, &nr) {
		t.Errorf("Metadata: %v", err)
	}
	if st := v.Status(); st.Kind != "window" || st.WindowSizeMs != 60_000 || len(st.Tasks) != 0 {
		t.Errorf("Status: %+v", st)
	}
}

func second[T any](_ T, err error) error { return err }

// TestWindowHandlerErrors checks the window routes' answers that need no
// running App: a store of the other kind on either kind's routes (404
// naming the right routes), an unknown store, bad time bounds, limits,
// tokens and parameters (400 naming the parameter), and 503 before the
// first assignment for well-formed requests; every one JSON in the
// handler's error shape.
func TestWindowHandlerErrors(t *testing.T) {
	h := unstartedWindowApp(t).QueryHandler()
	for _, tc := range []struct {
		path   string
		status int
		says   string
	}{
		{"/stores/win/keys/a", 404, `store "win" is a window store, not a key-value store; read it at /stores/win/windows/{key} and /stores/win/windows`},
		{"/stores/win/range", 404, "is a window store, not a key-value store"},
		{"/stores/win/range?from=a&to=b", 404, "is a window store, not a key-value store"},
		{"/stores/totals/windows/a", 404, `store "totals" is a key-value store, not a window store; read it at /stores/totals/keys/{key} and /stores/totals/range`},
		{"/stores/totals/windows", 404, "is a key-value store, not a window store"},
		{"/stores/nope/windows", 404, `no store "nope"`},
		{"/stores/nope/windows/a", 404, `no store "nope"`},
		{"/stores/win/windows/a?from=yesterday", 400, `from="yesterday" is neither RFC 3339`},
		{"/stores/win/windows?to=2024-05-01", 400, `to="2024-05-01" is neither RFC 3339`},
		{"/stores/win/windows?from=2024-05-01T12:00:00.0005Z", 400, "from=2024-05-01T12:00:00.0005Z is finer than a millisecond"},
		{"/stores/win/windows/a?to=99999999999999999999", 400, "to=99999999999999999999: epoch milliseconds out of range"},
		{"/stores/win/windows/a?from=", 400, "from=\"\" is neither"},
		{"/stores/win/windows?limit=0", 400, "limit must be a positive integer"},
		{"/stores/win/windows/a?limit=x", 400, "limit must be a positive integer"},
		{"/stores/win/windows?token=1.AAAA", 400, "bad continuation token"},
		{"/stores/win/windows?token=x.y", 400, "bad continuation token"},
		{"/stores/win/windows?prefix=a", 400, "not prefix"},
		{"/stores/win/windows?scope=everywhere", 400, "scope must be empty or local"},
		{"/stores/win/windows/a?%zz", 400, "bad query string"},
		// Well-formed: no assignment yet.
		{"/stores/win/windows/a", 503, "no assignment yet"},
		{"/stores/win/windows/a?from=0&to=1714564800000&limit=5", 503, "no assignment yet"},
		{"/stores/win/windows/a?from=2024-05-01T14:00:00+02:00", 503, "no assignment yet"}, // an unescaped +
		{"/stores/win/windows/a?from=2024-05-01T14:00:00%2B02:00&to=2024-05-01T12:00:00.250Z", 503, "no assignment yet"},
		{"/stores/win/windows?from=-5&to=5", 503, "no assignment yet"},
		{"/stores/win/metadata?key=a", 503, "no assignment yet"},
	} {
		rec := serve(h, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), jsonQuoted(tc.says)) {
			t.Errorf("%s: %d %s; want %d saying %q", tc.path, rec.Code, rec.Body, tc.status, tc.says)
		}
		if tc.status == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", tc.path)
		}
		checkJSONError(t, tc.path, rec)
	}
	// An empty time range needs no instance.
	rec := serve(h, httptest.NewRequest(http.MethodGet, "/stores/win/windows?from=5&to=4", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != `{"store":"win","entries":[],"more":false}`+"\n" {
		t.Errorf("empty range: %d %s", rec.Code, rec.Body)
	}
	// The listing reports each store's kind, and the window size.
	rec = serve(h, httptest.NewRequest(http.MethodGet, "/stores", nil))
	if body := rec.Body.String(); rec.Code != http.StatusOK ||
		!strings.Contains(body, `"store":"totals","kind":"key-value","key_type":"string","value_type":"int64","key_format":"string","sub_topology"`) ||
		!strings.Contains(body, `"store":"win","kind":"window","key_type":"string","value_type":"int64","key_format":"string","window_size_ms":60000,"sub_topology"`) {
		t.Errorf("/stores: %d %s", rec.Code, body)
	}
	for _, p := range []string{"/stores/win/windows", "/stores/win/windows/a"} {
		rec := serve(h, httptest.NewRequest(http.MethodPost, p, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d", p, rec.Code)
		}
	}
}

// jsonQuoted is s as it appears inside a JSON string.
func jsonQuoted(s string) string {
	return strings.NewReplacer(`"`, `\"`).Replace(s)
}
