package testutil

import (
	"os"
	"strings"
	"testing"
)

// RegistryURL returns the schema registry URL for tests, from
// SCHEMA_REGISTRY_URL. Without it the test is skipped with a message saying
// how to start one (scripts/registry start), and fails under CI=true.
func RegistryURL(t testing.TB) string {
	t.Helper()
	u := strings.TrimRight(os.Getenv("SCHEMA_REGISTRY_URL"), "/")
	if u == "" {
		needService(t, "schema registry (SCHEMA_REGISTRY_URL)",
			"run `eval $(scripts/registry start)` or use scripts/test, which starts it and exports SCHEMA_REGISTRY_URL")
	}
	return u
}
