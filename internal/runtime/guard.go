package runtime

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/IBM/sarama"
)

// netDialer is sarama's dialer interface (golang.org/x/net/proxy.Dialer).
type netDialer interface {
	Dial(network, addr string) (net.Conn, error)
}

// contextDialer is implemented by dialers that take a context
// (net.Dialer, golang.org/x/net/proxy.ContextDialer).
type contextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// dialGuard dials every broker connection of the runtime's sarama clients.
// sarama's blocking calls take no context (client bootstrap, metadata,
// CreateTopics, InitProducerId, JoinGroup); while the guard is armed with
// a context it dials with that context and, once the context ends, closes
// every connection it made since it was armed and refuses new ones, so
// those calls fail at once instead of waiting out their network
// time-outs. Disarmed, it dials like the dialer it wraps and leaves its
// connections alone.
type dialGuard struct {
	inner netDialer

	mu    sync.Mutex
	gen   int             // increases at every arm and disarm
	ctx   context.Context // nil when disarmed
	conns []net.Conn
	stop  chan struct{}
	wg    sync.WaitGroup
}

// guardSarama returns a copy of sc whose connections go through a new
// dialGuard wrapping sc's own dialer (its proxy dialer when one is set).
func guardSarama(sc *sarama.Config) (*sarama.Config, *dialGuard) {
	g := &dialGuard{}
	if sc.Net.Proxy.Enable && sc.Net.Proxy.Dialer != nil {
		g.inner = sc.Net.Proxy.Dialer
	} else {
		g.inner = &net.Dialer{Timeout: sc.Net.DialTimeout, KeepAlive: sc.Net.KeepAlive, LocalAddr: sc.Net.LocalAddr}
	}
	c := *sc
	c.Net.Proxy.Enable = true
	c.Net.Proxy.Dialer = g
	return &c, g
}

// arm makes ctx govern the connections dialed from now on, replacing the
// previous context (connections dialed under it are kept open).
func (g *dialGuard) arm(ctx context.Context) {
	g.disarm()
	g.mu.Lock()
	g.gen++
	gen, stop := g.gen, make(chan struct{})
	g.ctx, g.stop = ctx, stop
	g.mu.Unlock()
	g.wg.Add(1)
	go func() { // owned by the guard: ends at disarm or when ctx ends
		defer g.wg.Done()
		select {
		case <-stop:
		case <-ctx.Done():
			g.mu.Lock()
			var conns []net.Conn
			if g.gen == gen {
				conns, g.conns = g.conns, nil
			}
			g.mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		}
	}()
}

// disarm stops watching the current context; the connections stay open.
// It returns after the watching goroutine has exited.
func (g *dialGuard) disarm() {
	g.mu.Lock()
	if g.stop != nil {
		close(g.stop)
		g.stop = nil
	}
	g.gen++
	g.ctx, g.conns = nil, nil
	g.mu.Unlock()
	g.wg.Wait()
}

// Dial implements sarama's proxy dialer.
func (g *dialGuard) Dial(network, addr string) (net.Conn, error) {
	g.mu.Lock()
	ctx, gen := g.ctx, g.gen
	g.mu.Unlock()
	if ctx == nil {
		return g.inner.Dial(network, addr)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("brook: not connecting to %s: start-up stopped: %w", addr, context.Cause(ctx))
	}
	var conn net.Conn
	var err error
	if cd, ok := g.inner.(contextDialer); ok {
		conn, err = cd.DialContext(ctx, network, addr)
	} else {
		conn, err = g.inner.Dial(network, addr)
	}
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen == gen {
		if ctx.Err() != nil {
			conn.Close()
			return nil, fmt.Errorf("brook: not connecting to %s: start-up stopped: %w", addr, context.Cause(ctx))
		}
		g.conns = append(g.conns, conn)
	}
	return conn, nil
}
