package runtime

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestTransientGroupError: network failures and a moving or busy
// coordinator are retried by joining again; other errors stop Run.
func TestTransientGroupError(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{timeout, true},
		{fmt.Errorf("join: %w", io.EOF), true},
		{&net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{fmt.Errorf("set tcp: %w", net.ErrClosed), true},
		{sarama.ErrOutOfBrokers, true},
		{sarama.ErrNotConnected, true},
		{sarama.ErrConsumerCoordinatorNotAvailable, true},
		{sarama.ErrNotCoordinatorForConsumer, true},
		{sarama.ErrRebalanceInProgress, true},
		{sarama.ErrRequestTimedOut, true},
		{sarama.ErrGroupAuthorizationFailed, false},
		{sarama.ErrInvalidSessionTimeout, false},
		{sarama.ErrFencedInstancedId, false},
		{errors.New("no topics provided"), false},
	} {
		if got := transientGroupError(c.err); got != c.want {
			t.Errorf("transientGroupError(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestRejoinOutageBound: transient failures are retried for rejoinBound
// from the first of a run; a session in between starts the count over.
func TestRejoinOutageBound(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var o rejoinOutage
	if d, ok := o.retry(t0); !ok || d != 0 {
		t.Fatalf("first failure: %v %v, want 0 true", d, ok)
	}
	if d, ok := o.retry(t0.Add(rejoinBound - time.Second)); !ok || d != rejoinBound-time.Second {
		t.Fatalf("failure within the bound: %v %v", d, ok)
	}
	if d, ok := o.retry(t0.Add(rejoinBound)); ok || d != rejoinBound {
		t.Fatalf("failure at the bound: %v %v, want %v false", d, ok, rejoinBound)
	}
	o.reset()
	if d, ok := o.retry(t0.Add(10 * rejoinBound)); !ok || d != 0 {
		t.Fatalf("first failure after a session: %v %v, want 0 true", d, ok)
	}
}
