package testutil

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// OutageMode is how a [RegistryProxy] treats requests.
type OutageMode int

const (
	// RegistryUp forwards every request to the registry.
	RegistryUp OutageMode = iota
	// RegistryRefusing closes the proxy's listener and every open
	// connection: clients get "connection refused", as from a registry
	// whose process is down.
	RegistryRefusing
	// RegistryFailing answers every request with HTTP 503 and a plain-text
	// body, as a load balancer in front of a registry with no healthy
	// instance does.
	RegistryFailing
	// RegistryBlackholed accepts connections and requests but never
	// answers: clients wait until their own time-out, as with a registry
	// behind a dropped route.
	RegistryBlackholed
)

// String names the mode.
func (m OutageMode) String() string {
	switch m {
	case RegistryUp:
		return "up"
	case RegistryRefusing:
		return "refusing connections"
	case RegistryFailing:
		return "answering 503"
	case RegistryBlackholed:
		return "blackholed"
	}
	return fmt.Sprintf("OutageMode(%d)", int(m))
}

// RegistryProxy is an HTTP proxy in front of a schema registry that a test
// can switch between up and several kinds of outage, to check what the
// code under test does while the registry is unavailable and after it is
// back. Point the code under test at URL; keep talking to the registry
// itself for set-up. Safe for concurrent use.
type RegistryProxy struct {
	addr      string
	proxy     *httputil.ReverseProxy
	transport *http.Transport

	mu      sync.Mutex
	mode    OutageMode
	srv     *http.Server
	served  chan struct{}
	release chan struct{} // closed when a blackhole ends
	closed  bool

	forwarded atomic.Int64
	failed    atomic.Int64
}

// NewRegistryProxy starts a proxy to the registry at target (a base URL)
// on a free local port, in mode RegistryUp. It stops at the end of the
// test.
func NewRegistryProxy(t testing.TB, target string) *RegistryProxy {
	t.Helper()
	p, err := newRegistryProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

func newRegistryProxy(target string) (*RegistryProxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("testutil: registry proxy: bad target %q", target)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = tr
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testutil: registry proxy: %w", err)
	}
	p := &RegistryProxy{addr: ln.Addr().String(), proxy: rp, transport: tr, release: make(chan struct{})}
	p.serve(ln)
	return p, nil
}

// serve starts an HTTP server on ln. Call with mu held (or before the
// proxy is shared).
func (p *RegistryProxy) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(p.handle), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { // owned by stop, which waits for it
		defer close(served)
		_ = srv.Serve(ln)
	}()
	p.srv, p.served = srv, served
}

// stop closes the server, its listener and connections, and waits for it.
// Call with mu held.
func (p *RegistryProxy) stop() {
	if p.srv == nil {
		return
	}
	_ = p.srv.Close()
	<-p.served
	p.srv, p.served = nil, nil
}

func (p *RegistryProxy) handle(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	mode, release := p.mode, p.release
	p.mu.Unlock()
	switch mode {
	case RegistryFailing:
		p.failed.Add(1)
		http.Error(w, "registry unavailable (testutil.RegistryProxy)", http.StatusServiceUnavailable)
	case RegistryBlackholed:
		p.failed.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
		// The client has given up, or the outage is over; either way the
		// request gets no answer (the connection is dropped).
		panic(http.ErrAbortHandler)
	default:
		p.forwarded.Add(1)
		p.proxy.ServeHTTP(w, r)
	}
}

// URL returns the proxy's base URL (it stays the same across outages).
func (p *RegistryProxy) URL() string { return "http://" + p.addr }

// Mode returns the current mode.
func (p *RegistryProxy) Mode() OutageMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Set switches the proxy to mode. Leaving RegistryRefusing listens on the
// same address again; entering it closes every open connection, so clients
// cannot keep using a pooled one.
func (p *RegistryProxy) Set(mode OutageMode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("testutil: registry proxy is closed")
	}
	if mode == p.mode {
		return nil
	}
	if p.mode == RegistryBlackholed {
		close(p.release)
		p.release = make(chan struct{})
	}
	switch {
	case mode == RegistryRefusing:
		p.stop()
	case p.mode == RegistryRefusing:
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("testutil: registry proxy: listen again on %s: %w", p.addr, err)
		}
		p.serve(ln)
	}
	p.mode = mode
	return nil
}

// Forwarded returns how many requests reached the registry.
func (p *RegistryProxy) Forwarded() int64 { return p.forwarded.Load() }

// Failed returns how many requests met a 503 or a blackhole. Connections
// refused in RegistryRefusing mode are not counted: they never reach the
// proxy.
func (p *RegistryProxy) Failed() int64 { return p.failed.Load() }

func (p *RegistryProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.mode == RegistryBlackholed {
		close(p.release)
	}
	p.stop()
	p.transport.CloseIdleConnections()
}
