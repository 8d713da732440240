// Package integration_test runs the serde package against the real schema
// registry (SCHEMA_REGISTRY_URL). It lives apart from serde's own tests so
// that those depend on nothing but serde itself.
package integration_test

import (
	"github.com/brookstream/brook/serde/avro"
	"log/slog"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newTestRegistry(t testing.TB, url string) *avro.Registry {
	t.Helper()
	reg, err := avro.NewRegistry(url, avro.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}
