package topology_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// joinFaults is a sarama dialer (Net.Proxy.Dialer) whose connections
// tamper with the JoinGroup requests (API key 11) the client sends: each
// is held back for hold before it reaches the broker (as a coordinator
// that answers late, waiting for other members, looks to the client), and
// the first drop of them are not sent at all: the connection is closed
// instead (a connection lost in the middle of a rebalance). Other
// requests pass unchanged, in order.
type joinFaults struct {
	hold time.Duration

	mu    sync.Mutex
	drop  int
	joins int
}

func (f *joinFaults) Dial(network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 10 * time.Second}).Dial(network, addr)
	if err != nil {
		return nil, err
	}
	fc := &faultConn{Conn: c, f: f, frames: make(chan heldFrame, 64), done: make(chan struct{})}
	go fc.send()
	return fc, nil
}

// join counts a JoinGroup request and tells whether to drop it.
func (f *joinFaults) join() (drop bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joins++
	if f.drop > 0 {
		f.drop--
		return true
	}
	return false
}

func (f *joinFaults) joinCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joins
}

type heldFrame struct {
	b    []byte
	hold time.Duration
}

// faultConn forwards the request frames written to it from a goroutine
// of its own, so that holding one back does not hold the writer: the
// client waits for the answer with its read deadline running, as with a
// slow broker.
type faultConn struct {
	net.Conn
	f       *joinFaults
	partial []byte
	frames  chan heldFrame
	done    chan struct{}
	once    sync.Once
}

func (c *faultConn) Write(p []byte) (int, error) {
	c.partial = append(c.partial, p...)
	for len(c.partial) >= 6 {
		size := int(binary.BigEndian.Uint32(c.partial))
		if len(c.partial) < 4+size {
			break
		}
		frame := append([]byte(nil), c.partial[:4+size]...)
		c.partial = c.partial[4+size:]
		var hold time.Duration
		if apiKey := int16(binary.BigEndian.Uint16(frame[4:])); apiKey == 11 {
			if c.f.join() {
				c.Close()
				return len(p), nil
			}
			hold = c.f.hold
		}
		select {
		case c.frames <- heldFrame{frame, hold}:
		case <-c.done:
			return 0, net.ErrClosed
		}
	}
	return len(p), nil
}

func (c *faultConn) send() {
	for {
		select {
		case <-c.done:
			return
		case fr := <-c.frames:
			if fr.hold > 0 {
				select {
				case <-c.done:
					return
				case <-time.After(fr.hold):
				}
			}
			if _, err := c.Conn.Write(fr.b); err != nil {
				c.Close()
				return
			}
		}
	}
}

func (c *faultConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// TestAppSurvivesSlowAndBrokenGroupJoins: a rebalance that takes long, or
// meets a network failure, is not a reason for an instance to stop.
//
//   - The coordinator may hold a JoinGroup until every member has
//     rejoined, up to the rebalance time-out, but sarama reads every
//     answer within Net.ReadTimeout (by default 30s, less than the 60s
//     default rebalance time-out): here each join is answered 5s late with
//     a read time-out of 3s and a rebalance time-out of 20s. Before, the
//     join failed with "i/o timeout" and Run returned it.
//   - The connection to the coordinator is lost during the join, twice.
//     Before, Run returned the network error; a transient failure while
//     rebalancing must be retried.
//
// Either way the instance must join and process everything while Run
// keeps running.
func TestAppSurvivesSlowAndBrokenGroupJoins(t *testing.T) {
	cases := []struct {
		name   string
		faults *joinFaults
	}{
		{"join answered after the read time-out", &joinFaults{hold: 5 * time.Second}},
		{"connection lost during the join", &joinFaults{drop: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := testutil.NewBroker(t)
			in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
			b.CreateTopic(t, in, 2, nil)
			b.CreateTopic(t, out, 2, nil)
			var msgs []*sarama.ProducerMessage
			for i := 0; i < 20; i++ {
				msgs = append(msgs, &sarama.ProducerMessage{
					Key: sarama.StringEncoder(fmt.Sprintf("key-%d", i%4)), Value: sarama.StringEncoder("x"), Partition: int32(i % 2),
				})
			}
			b.Produce(t, in, msgs...)
			topo, err := buildCountTopology(in, out)
			if err != nil {
				t.Fatal(err)
			}
			cfg := topology.Config{
				ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(),
				CommitInterval: 100 * time.Millisecond,
				ConfigureSarama: func(sc *sarama.Config) {
					sc.Net.Proxy.Enable = true
					sc.Net.Proxy.Dialer = c.faults
					sc.Net.ReadTimeout = 3 * time.Second
					sc.Consumer.Group.Rebalance.Timeout = 20 * time.Second
					sc.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
				},
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			app, done := startApp(t, ctx, topo, cfg)
			deadline := time.Now().Add(90 * time.Second)
			for {
				select {
				case err := <-done:
					t.Fatalf("Run returned %v after %d JoinGroup requests, want it to keep running", err, c.faults.joinCount())
				default:
				}
				if counts := lastCounts(t, b, out); len(counts) == 4 && allAtLeast(counts, 5) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the app counted nothing within 90s (state %v, %d JoinGroup requests)", app.State(), c.faults.joinCount())
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Logf("%d JoinGroup requests", c.faults.joinCount())
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

func allAtLeast(m map[string]int64, n int64) bool {
	for _, v := range m {
		if v < n {
			return false
		}
	}
	return true
}
