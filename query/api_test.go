package query_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/topology"
)

// TestViewErrors checks the errors of query.KeyValue: an unknown store is
// brook's one *processor.UnknownStoreError (no Node: a query asked) naming
// the stores there are, wrong types are a *processor.StoreTypeError, and
// a nil App is an error, not a panic. topology.QueryKeyValue answers the
// same.
func TestViewErrors(t *testing.T) {
	app, err := topology.NewApp(countTopology(t, "in", "out"), topology.Config{ApplicationID: "q", Brokers: []string{"127.0.0.1:1"}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = query.KeyValue[string, int64](app, "nope")
	var us *processor.UnknownStoreError
	if !errors.As(err, &us) || us.Store != "nope" || us.Node != "" || !slices.Equal(us.Connected, []string{"counts"}) {
		t.Fatalf("unknown store: %#v", err)
	}
	_, err = topology.QueryKeyValue[string, string](app, "counts")
	var te *processor.StoreTypeError
	if !errors.As(err, &te) || te.Store != "counts" {
		t.Fatalf("wrong value type: %#v", err)
	}
	if v, err := query.KeyValue[string, int64](app, "counts"); err != nil || v.Name() != "counts" {
		t.Fatalf("view: %v, %v", v, err)
	}
	if _, err := topology.QueryKeyValue[string, int64](nil, "counts"); err == nil {
		t.Fatal("a nil *topology.App gave a view")
	}
	if _, err := query.KeyValue[string, int64](nil, "counts"); err == nil {
		t.Fatal("a nil query.App gave a view")
	}
	if _, _, ok := query.Instances(nil); ok {
		t.Fatal("Instances of a nil App")
	}
}

// TestNilAppHandler checks that the handler of a nil App answers every
// request with a JSON 500 instead of panicking.
func TestNilAppHandler(t *testing.T) {
	h := query.NewHandler(nil)
	for _, path := range []string{"/health", "/stores", "/stores/counts/keys/a"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body)
		}
		checkJSONError(t, path, rec)
	}
}
