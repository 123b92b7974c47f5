package gossip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// stalledDialer returns a counting transport whose streams to "stalled:1"
// accept no byte, shut down when the test ends.
func stalledDialer(t *testing.T) *countingTransport {
	t.Helper()
	tr, err := memnet.NewNetwork(1).NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	st := &stallingTransport{Transport: tr}
	st.stall("stalled:1")
	c := newCountingTransport(st, &wireStats{}, true)
	t.Cleanup(func() { c.Shutdown() })
	return c
}

// TestDialedStreamsHaveADeadline: memberlist sets no deadline on the
// streams of SendReliable, so a write to a peer that never reads must end
// by the deadline the transport gives every stream it dials.
func TestDialedStreamsHaveADeadline(t *testing.T) {
	c := stalledDialer(t)
	conn, err := c.DialAddressTimeout(memberlist.Address{Addr: "stalled:1"}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	done := make(chan error, 1)
	go func() { _, err := conn.Write([]byte("frame")); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write to a stalled peer: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a write to a stalled peer still blocks 5 s after a 50 ms stream timeout")
	}
}

// TestShutdownCutsDialedStreams: Shutdown ends the writes still waiting on
// a stalled peer at once, and refuses new dials.
func TestShutdownCutsDialedStreams(t *testing.T) {
	c := stalledDialer(t)
	conn, err := c.DialAddressTimeout(memberlist.Address{Addr: "stalled:1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := conn.Write([]byte("frame")); done <- err }()
	c.Shutdown()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a write cut by Shutdown succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a write to a stalled peer still blocks 5 s after Shutdown")
	}
	if _, err := c.DialAddressTimeout(memberlist.Address{Addr: "stalled:1"}, time.Second); err == nil {
		t.Fatal("a dial after Shutdown succeeded")
	}
	conn.Close()
}

// stallingTransport wraps a member's transport so that the streams it
// opens to one address accept no byte: every write blocks until the
// stream's deadline, as to a peer whose process hangs with its receive
// window shut. Packets still flow, so memberlist keeps the peer alive.
type stallingTransport struct {
	Transport
	mu    sync.Mutex
	to    string         // the stalled peer's address, once stall is called
	conns []*stalledConn // the stalled streams it opened
}

// release ends the stall: streams opened from now on are not stalled, and
// those opened so far fail at once.
func (s *stallingTransport) release() {
	s.mu.Lock()
	s.to = ""
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// stall makes the streams opened from now on to addr stall.
func (s *stallingTransport) stall(addr string) {
	s.mu.Lock()
	s.to = addr
	s.mu.Unlock()
}

func (s *stallingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Addr == s.to {
		c := newStalledConn()
		s.conns = append(s.conns, c)
		return c, nil
	}
	return s.Transport.DialAddressTimeout(a, timeout)
}

func (s *stallingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return s.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// stalledConn is a stream whose reads and writes wait for the deadline.
type stalledConn struct {
	net.Conn // nil: only the methods below are called
	mu       sync.Mutex
	deadline time.Time
	closed   chan struct{}
	once     sync.Once
}

func newStalledConn() *stalledConn { return &stalledConn{closed: make(chan struct{})} }

func (c *stalledConn) wait() error {
	c.mu.Lock()
	d := c.deadline
	c.mu.Unlock()
	var expired <-chan time.Time
	if !d.IsZero() {
		timer := time.NewTimer(time.Until(d))
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-expired:
		return os.ErrDeadlineExceeded
	case <-c.closed:
		return net.ErrClosed
	}
}

func (c *stalledConn) Read([]byte) (int, error)  { return 0, c.wait() }
func (c *stalledConn) Write([]byte) (int, error) { return 0, c.wait() }
func (c *stalledConn) Close() error              { c.once.Do(func() { close(c.closed) }); return nil }
func (c *stalledConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	return nil
}
func (c *stalledConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *stalledConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }
func (c *stalledConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *stalledConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }

// TestInboundPlacesOfNonMembers: the streams accepted from addresses of no
// member are bounded together (maxInbound without a key, maxInboundUnknown
// with one) and, with a key, per IPv6 /64 (maxInboundPerIP); a member's
// address, in such a /64 too, counts against its own bound alone, so
// others' idle streams never keep the members' out; and a place given
// back is taken again.
func TestInboundPlacesOfNonMembers(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprint("keyed=", keyed), func(t *testing.T) {
			c := &countingTransport{unknowns: maxInbound}
			if keyed {
				c.unknowns = maxInboundUnknown
			}
			member := netip.MustParseAddr("2001:db8::1")
			c.setMembers(map[netip.Addr]bool{member: true})
			var taken []place
			admit := func(ip netip.Addr) bool {
				p, ok := c.admit(ip)
				if ok {
					taken = append(taken, p)
				}
				return ok
			}
			// Non-members in the member's /64, each address new.
			n := 0
			for ; n < 1000 && admit(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(n >> 8), 15: byte(n + 2)})); n++ {
			}
			if want := min(c.unknowns, maxInboundPerIP); !keyed && n != maxInbound || keyed && n != want {
				t.Fatalf("%d streams admitted from one /64 of no member's, want %d", n, want)
			}
			// Non-members elsewhere, IPv4 and other /64s, up to the bound
			// on all.
			for i := 0; i < 1000 && admit(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})); i++ {
				n++
			}
			if n != c.unknowns {
				t.Fatalf("%d streams admitted from addresses of no member, want %d", n, c.unknowns)
			}
			for i := range maxInboundPerIP {
				if !admit(member) {
					t.Fatalf("the member's stream %d refused while others' held the rest", i+1)
				}
			}
			if admit(member) {
				t.Fatalf("a member's stream %d admitted, past maxInboundPerIP", maxInboundPerIP+1)
			}
			stranger := netip.MustParseAddr("192.0.2.7")
			if admit(stranger) {
				t.Fatal("a stream of no member's admitted past the bound")
			}
			c.release(taken[0]) // one of no member's goes
			taken = taken[1:]
			if !admit(stranger) {
				t.Fatal("a place given back was not taken again")
			}
			for _, p := range taken {
				c.release(p)
			}
			if len(c.fromIP) != 0 || len(c.fromNet) != 0 || c.unknown != 0 {
				t.Fatalf("all released, still held: %v by address, %v by /64, %d of no member's", c.fromIP, c.fromNet, c.unknown)
			}
		})
	}
}
