package testutil

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// LeakOptions are the goleak options every brook package's TestMain uses:
// they ignore only goroutines of third-party libraries that outlive the
// clients that started them, never brook's own: sarama's go-metrics meter
// ticker (kept for the life of the process), and the timer of a sarama
// producer's circuit breaker, which sleeps 10s after the breaker opens
// (after repeated failed writes, as when the cluster is cut off) and then
// ends, holding nothing.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
		goleak.IgnoreAnyFunction("github.com/eapache/go-resiliency/breaker.(*Breaker).timer"),
	}
}

// VerifyTestMain runs the package's tests, then fails the run if any
// goroutine is left over. Unlike goleak.VerifyTestMain it waits up to five
// seconds for goroutines that are already ending: a closed LevelDB's pool
// drainer lingers for up to a second after Close.
//
//	func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := goleak.Find(LeakOptions()...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests: %v\n", err)
				code = 1
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	os.Exit(code)
}
