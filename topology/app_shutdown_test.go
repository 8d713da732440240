package topology_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// partitionNet is a network between an App and its brokers that the test
// can cut off without closing anything, as a network partition or a
// firewall that drops packets does: once frozen, bytes stop flowing both
// ways on every open connection (reads wait for their deadlines), and new
// connections hang until the dial times out. It is installed as sarama's
// dialer (Config.Net.Proxy) through ConfigureSarama, so it covers every
// client the App makes, whatever address the brokers advertise.
type partitionNet struct {
	mu     sync.Mutex
	frozen chan struct{} // closed while frozen; nil otherwise
	thawed chan struct{} // closed when thawed
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newPartitionNet(t *testing.T) *partitionNet {
	n := &partitionNet{thawed: make(chan struct{})}
	t.Cleanup(n.close)
	return n
}

// Dial implements sarama's proxy dialer.
func (n *partitionNet) Dial(network, addr string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, addr)
}

// DialContext connects to addr through a pipe whose bytes the partition
// can hold back.
func (n *partitionNet) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	frozen, thawed := n.frozen, n.thawed
	n.mu.Unlock()
	if frozen != nil {
		// A connect through a partition gets no answer.
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, fmt.Errorf("dial %s: i/o timeout (network partition)", addr)
		case <-thawed:
		}
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	remote, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	local, inner := net.Pipe()
	n.mu.Lock()
	n.conns = append(n.conns, remote, inner)
	n.mu.Unlock()
	n.wg.Add(2)
	go n.relay(remote, inner) // owned by n: ends when either side closes
	go n.relay(inner, remote) // likewise
	return local, nil
}

// relay copies src to dst, holding bytes back while the network is frozen.
func (n *partitionNet) relay(dst, src net.Conn) {
	defer n.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.waitThawed()
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: the relay ends with its connection
		}
	}
}

func (n *partitionNet) waitThawed() {
	n.mu.Lock()
	frozen, thawed := n.frozen, n.thawed
	n.mu.Unlock()
	if frozen != nil {
		<-thawed
	}
}

// freeze stops every byte from flowing.
func (n *partitionNet) freeze() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.frozen == nil {
		n.frozen = make(chan struct{})
		n.thawed = make(chan struct{})
	}
}

// thaw lets bytes flow again.
func (n *partitionNet) thaw() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.frozen != nil {
		n.frozen = nil
		close(n.thawed)
	}
}

// close thaws the network, closes every connection and waits for the relays.
func (n *partitionNet) close() {
	n.thaw()
	n.mu.Lock()
	for _, c := range n.conns {
		c.Close()
	}
	n.mu.Unlock()
	n.wg.Wait()
}

// TestAppShutdownBoundedWhenClusterUnreachable: the network to the cluster
// is cut while the App holds processed but uncommitted work (a 1h commit
// interval), and then the App is closed. Its final commit cannot reach the
// cluster; without a bound it waited for every request's timeout and
// retry, for minutes. Run must return within Config.ShutdownTimeout (plus
// a second for the connections to close) with a *topology.ShutdownTimeoutError
// naming the tasks whose work was not committed, and indeed nothing was
// committed for them.
func TestAppShutdownBoundedWhenClusterUnreachable(t *testing.T) {
	for _, g := range []topology.Guarantee{topology.AtLeastOnce, topology.ExactlyOnce} {
		name := "at-least-once"
		if g == topology.ExactlyOnce {
			name = "exactly-once"
		}
		t.Run(name, func(t *testing.T) { testShutdownBound(t, g) })
	}
}

func testShutdownBound(t *testing.T, g topology.Guarantee) {
	b := eosBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	appID := testutil.TopicName(t, "app")
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 20; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{
			Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)), Value: sarama.StringEncoder("v"), Partition: int32(i % 2),
		})
	}
	b.Produce(t, in, msgs...)
	topo, err := buildCountTopology(in, out)
	if err != nil {
		t.Fatal(err)
	}
	pn := newPartitionNet(t)
	const bound = 3 * time.Second
	cfg := topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), Guarantee: g,
		CommitInterval: time.Hour, ShutdownTimeout: bound, Logger: testLogger(t),
		ConfigureSarama: func(c *sarama.Config) {
			c.Net.Proxy.Enable = true
			c.Net.Proxy.Dialer = pn
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, done := startApp(t, ctx, topo, cfg)
	// Every record processed: its output is in the log (under exactly-once
	// in the open transaction), nothing is committed yet.
	b.WaitForRecords(t, out, 20, false, 60*time.Second)

	pn.freeze()
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- app.Close() }()
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(bound + 10*time.Second):
		pn.thaw() // let it finish, so that the test leaves nothing running
		<-done
		t.Fatalf("Run did not return within %v of Close with the cluster unreachable (Config.ShutdownTimeout %v)", time.Since(start), bound)
	}
	elapsed := time.Since(start)
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	t.Logf("Run returned %v after Close: %v", elapsed.Round(time.Millisecond), runErr)
	if elapsed > bound+time.Second {
		t.Errorf("Run returned %v after Close, want at most ShutdownTimeout %v plus a second", elapsed, bound)
	}
	var se *topology.ShutdownTimeoutError
	if !errors.As(runErr, &se) {
		t.Fatalf("Run returned %v, want a *topology.ShutdownTimeoutError", runErr)
	}
	if se.Timeout != bound || strings.Join(se.Uncommitted, ",") != "0_0,0_1" {
		t.Errorf("ShutdownTimeoutError %+v, want timeout %v and uncommitted tasks 0_0 and 0_1", se, bound)
	}
	if msg := runErr.Error(); !containsAll(msg, "0_0", "0_1", "not committed", "ShutdownTimeout") {
		t.Errorf("error %q does not say which tasks were not committed and which bound was reached", msg)
	}

	// The error told the truth: the group has no committed offset for the
	// tasks' partitions.
	pn.thaw()
	admin, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	offs, err := admin.ListConsumerGroupOffsets(appID, map[string][]int32{in: {0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	for p, blk := range offs.Blocks[in] {
		if blk.Offset >= 0 {
			t.Errorf("%s[%d] has committed offset %d, but the error said its task was not committed", in, p, blk.Offset)
		}
	}
}
