package store

import (
	"testing"

	"go.uber.org/goleak"
)

// leakOptions ignore only goroutines third-party libraries keep after their
// owner was closed: goleveldb's mpoolDrain exits up to a second after
// DB.Close (an unclosed DB still shows up through its other goroutines),
// and sarama's go-metrics ticker lives for the process.
func leakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"),
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leakOptions()...) }
