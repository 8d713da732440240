package testutil

import "go.uber.org/goleak"

// LeakOptions are the goleak options every brook package's TestMain uses:
// they ignore only goroutines that third-party libraries keep for the life
// of the process (sarama's go-metrics meter ticker), never brook's own.
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.LeakOptions()...) }
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
	}
}
