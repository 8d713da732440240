package changelog_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/brookstream/brook/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.LeakOptions()...) }
