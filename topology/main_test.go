package topology_test

import (
	"os"
	"testing"

	"github.com/brookstream/brook/testutil"
)

func TestMain(m *testing.M) {
	// The kill tests re-run this test binary as application instances.
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	testutil.VerifyTestMain(m)
}
