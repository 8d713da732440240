package processor_test

import (
	"testing"

	"github.com/brookstream/brook/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.LeakOptions()...) }
