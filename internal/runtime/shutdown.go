package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// DefaultShutdownTimeout is the bound on stopping when
// Config.ShutdownTimeout is not set.
const DefaultShutdownTimeout = 30 * time.Second

// ShutdownTimeoutError reports that stopping the runtime (the final commit
// of its tasks and the closing of its clients) took longer than
// Config.ShutdownTimeout, so the runtime cut its connections to the
// cluster, which made whatever still waited for a broker fail at once.
type ShutdownTimeoutError struct {
	// Timeout is the bound that was reached.
	Timeout time.Duration
	// Uncommitted are the tasks ("<sub-topology>_<partition>", sorted)
	// whose final commit did not complete: their work since their last
	// commit is not committed and is processed again after a restart.
	Uncommitted []string
	// Err is the error that stopped the runtime (a failure of the final
	// commit is one); nil when none did.
	Err error
}

func (e *ShutdownTimeoutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "brook: stopping did not finish within Config.ShutdownTimeout (%v), so brook closed its connections to the cluster", e.Timeout)
	if len(e.Uncommitted) > 0 {
		fmt.Fprintf(&b, "; the final commit of task(s) %s did not complete: their work since their last commit was not committed and is processed again after a restart",
			strings.Join(e.Uncommitted, ", "))
	} else {
		b.WriteString("; every task's work was committed")
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the error that stopped the runtime or failed its final
// commit.
func (e *ShutdownTimeoutError) Unwrap() error { return e.Err }

// errNetworkCut is what every connection attempt returns once the
// shutdown bound was reached.
var errNetworkCut = errors.New("brook: connections to the cluster closed: Config.ShutdownTimeout reached while stopping")

// netCutter makes every connection of the runtime's sarama clients (it is
// their Net.Proxy dialer, wrapping the one the configuration had) and can
// cut them all: cut closes every open connection, abandons dials in
// progress (when the wrapped dialer takes a context, as the default one
// does) and makes later dials fail at once; it also zeroes the clients'
// retry backoffs. Whatever a client was waiting for then fails within
// moments, however long its timeouts and retries are.
type netCutter struct {
	inner netDialer
	ctx   context.Context // cancelled by cut: abandons dials in progress
	stop  context.CancelFunc

	mu    sync.Mutex
	conns map[*cutConn]struct{}
	cut   bool
}

// installNetCutter makes sc's clients dial through a new netCutter and
// back off from retries only until it cuts.
func installNetCutter(sc *sarama.Config) *netCutter {
	var inner netDialer = &net.Dialer{Timeout: sc.Net.DialTimeout, KeepAlive: sc.Net.KeepAlive, LocalAddr: sc.Net.LocalAddr}
	if sc.Net.Proxy.Enable && sc.Net.Proxy.Dialer != nil {
		inner = sc.Net.Proxy.Dialer
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &netCutter{inner: inner, ctx: ctx, stop: stop, conns: map[*cutConn]struct{}{}}
	sc.Net.Proxy.Enable = true
	sc.Net.Proxy.Dialer = c
	sc.Metadata.Retry.BackoffFunc = c.backoff(sc.Metadata.Retry.BackoffFunc, sc.Metadata.Retry.Backoff)
	sc.Producer.Retry.BackoffFunc = c.backoff(sc.Producer.Retry.BackoffFunc, sc.Producer.Retry.Backoff)
	sc.Producer.Transaction.Retry.BackoffFunc = c.backoff(sc.Producer.Transaction.Retry.BackoffFunc, sc.Producer.Transaction.Retry.Backoff)
	consumerBackoff, consumerFunc := sc.Consumer.Retry.Backoff, sc.Consumer.Retry.BackoffFunc
	sc.Consumer.Retry.BackoffFunc = func(retries int) time.Duration {
		switch {
		case c.isCut():
			return 0
		case consumerFunc != nil:
			return consumerFunc(retries)
		}
		return consumerBackoff
	}
	return c
}

// backoff wraps a retry backoff of sarama's configuration: unchanged until
// the cut, zero after it.
func (c *netCutter) backoff(f func(retries, maxRetries int) time.Duration, fixed time.Duration) func(int, int) time.Duration {
	return func(retries, maxRetries int) time.Duration {
		switch {
		case c.isCut():
			return 0
		case f != nil:
			return f(retries, maxRetries)
		}
		return fixed
	}
}

// Dial connects through the wrapped dialer unless the cutter has cut.
func (c *netCutter) Dial(network, addr string) (net.Conn, error) {
	return c.dial(c.ctx, network, addr)
}

// DialContext is Dial abandoned when ctx ends too (the start-up guard,
// guard.go, wraps the cutter and dials with its context).
func (c *netCutter) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()
	return c.dial(ctx, network, addr)
}

func (c *netCutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.isCut() {
		return nil, errNetworkCut
	}
	var conn net.Conn
	var err error
	if cd, ok := c.inner.(contextDialer); ok {
		conn, err = cd.DialContext(ctx, network, addr)
	} else {
		conn, err = c.inner.Dial(network, addr)
	}
	if err != nil {
		if c.isCut() {
			return nil, errNetworkCut
		}
		return nil, err
	}
	cc := &cutConn{Conn: conn, c: c}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		_ = conn.Close()
		return nil, errNetworkCut
	}
	c.conns[cc] = struct{}{}
	return cc, nil
}

func (c *netCutter) isCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

// cutNow closes every connection and refuses new ones.
func (c *netCutter) cutNow() {
	c.mu.Lock()
	c.cut = true
	conns := make([]*cutConn, 0, len(c.conns))
	for cc := range c.conns {
		conns = append(conns, cc)
	}
	c.mu.Unlock()
	c.stop()
	for _, cc := range conns {
		_ = cc.Conn.Close()
	}
}

// release frees the cutter's context when the runtime is done with it.
func (c *netCutter) release() { c.stop() }

// cutConn is a connection the cutter tracks until it closes.
type cutConn struct {
	net.Conn
	c *netCutter
}

func (cc *cutConn) Close() error {
	cc.c.mu.Lock()
	delete(cc.c.conns, cc)
	cc.c.mu.Unlock()
	return cc.Conn.Close()
}

// watchShutdown bounds stopping: once ctx ends (Run's context, which a
// fatal error cancels too), it gives the runtime ShutdownTimeout to
// finish, less a reserve for unwinding, and then cuts the network. The
// returned function ends the watch and reports whether it cut; Run calls
// it last, after every client it made is closed.
func (r *Runtime) watchShutdown(ctx context.Context) (done func() bool) {
	finished := make(chan struct{})
	var cut bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by Run: done waits for it
		defer wg.Done()
		select {
		case <-finished:
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(r.cutAfter())
		defer t.Stop()
		select {
		case <-finished:
		case <-t.C:
			r.log.Error("brook: stopping takes longer than Config.ShutdownTimeout: closing the connections to the cluster",
				"shutdown_timeout", r.cfg.ShutdownTimeout.String())
			cut = true
			r.net.cutNow()
		}
	}()
	return func() bool {
		close(finished)
		wg.Wait()
		r.net.release()
		return cut
	}
}

// cutAfter is how long after the stop begins the network is cut: the
// shutdown bound less a reserve for what the cut still has to unwind
// (failing requests, closing clients), a tenth of the bound and at most
// a second.
func (r *Runtime) cutAfter() time.Duration {
	reserve := min(r.cfg.ShutdownTimeout/10, time.Second)
	return r.cfg.ShutdownTimeout - reserve
}

// stopping reports whether the runtime is stopping (Run's context ended).
func (r *Runtime) stopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopCtx != nil && r.stopCtx.Err() != nil
}

// noteUncommitted records, at the stopping session's Cleanup, the tasks
// whose final commit did not complete.
func (r *Runtime) noteUncommitted(ids []string) {
	slices.Sort(ids)
	r.mu.Lock()
	r.uncommitted = ids
	r.mu.Unlock()
}

// shutdownError is Run's error after the network was cut while stopping.
func (r *Runtime) shutdownError(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &ShutdownTimeoutError{Timeout: r.cfg.ShutdownTimeout, Uncommitted: slices.Clone(r.uncommitted), Err: err}
}
