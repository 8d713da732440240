package testutil_test

import (
	"errors"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/brookstream/brook/testutil"
)

// TestRegistryProxyModes walks the proxy through every mode and checks
// what a client sees in each: answers when up, 503, a refused connection,
// a request that times out, and answers again after each outage.
func TestRegistryProxyModes(t *testing.T) {
	reg := testutil.StartRegistry(t)
	p := testutil.NewRegistryProxy(t, reg.URL())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 300 * time.Millisecond}
	get := func() (int, error) {
		resp, err := c.Get(p.URL() + "/config")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	set := func(m testutil.OutageMode) {
		t.Helper()
		if err := p.Set(m); err != nil {
			t.Fatal(err)
		}
		if p.Mode() != m {
			t.Fatalf("mode %v after Set(%v)", p.Mode(), m)
		}
	}
	up := func() {
		t.Helper()
		set(testutil.RegistryUp)
		if code, err := get(); err != nil || code != http.StatusOK {
			t.Fatalf("up: %d, %v", code, err)
		}
	}
	up()
	set(testutil.RegistryFailing)
	if code, err := get(); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("failing: %d, %v", code, err)
	}
	up()
	set(testutil.RegistryRefusing)
	if _, err := get(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("refusing: %v, want connection refused", err)
	}
	up()
	set(testutil.RegistryBlackholed)
	start := time.Now()
	_, err := get()
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("blackholed: %v after %v, want the client's time-out", err, time.Since(start))
	}
	up()
	if p.Forwarded() != 4 || p.Failed() != 2 {
		t.Fatalf("forwarded %d, failed %d; want 4 and 2", p.Forwarded(), p.Failed())
	}
}
