package testutil

import (
	"os"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true). There a test that
// needs a service that is not configured fails instead of skipping.
func InCI() bool { return os.Getenv("CI") == "true" }

// needService skips (or, under CI, fails) a test that needs a service which
// is not configured, saying how to run it.
func needService(t testing.TB, what, howto string) {
	t.Helper()
	msg := what + " is not configured: " + howto
	if InCI() {
		t.Fatal("CI=true: " + msg)
	}
	t.Skip(msg)
}
