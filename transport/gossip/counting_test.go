package gossip

import (
	"errors"
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

// TestInboundPlacesOfNonMembers: with a key, the streams accepted from
// addresses of no member are bounded per address and per IPv6 /64
// (maxInboundPerIP) and together (maxInboundUnknown: past it the oldest
// is closed to make room, so that idle streams keep no joiner out); a
// member's address, in such a /64 too, counts against its own bound
// alone; without a key, every stream counts against maxInbound. Places
// given back are taken again.
func TestInboundPlacesOfNonMembers(t *testing.T) {
	member := netip.MustParseAddr("2001:db8::1")
	v6 := func(n int) netip.Addr { // addresses of no member in member's /64
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(n >> 8), 15: byte(n + 2)})
	}
	v4 := func(n int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)}) }
	t.Run("keyed", func(t *testing.T) {
		c := &countingTransport{keyed: true}
		c.addMember(member, 1)
		var held []*countingConn
		admit := func(ip netip.Addr) (*countingConn, bool) {
			p, q := net.Pipe()
			t.Cleanup(func() { p.Close(); q.Close() })
			cc := &countingConn{Conn: p, owner: c}
			oldest, ok := c.admit(cc, ip)
			if ok {
				held = append(held, cc)
			}
			return oldest, ok
		}
		n := 0
		for ; n < 1000; n++ {
			if _, ok := admit(v6(n)); !ok {
				break
			}
		}
		if n != maxInboundPerIP {
			t.Fatalf("%d streams admitted from one /64 of no member's, want %d", n, maxInboundPerIP)
		}
		for i := range maxInboundUnknown - maxInboundPerIP {
			if oldest, ok := admit(v4(i)); !ok || oldest != nil {
				t.Fatalf("stream %d of no member's, under the bound: admitted %v, closing %v", n+i, ok, oldest)
			}
		}
		first := held[0]
		if oldest, ok := admit(v4(1000)); !ok || oldest != first {
			t.Fatalf("a stream of no member's past the bound: admitted %v, closing %p, want the oldest, %p", ok, oldest, first)
		}
		first.Close() // as its reader sees it fail
		if len(c.strangers) != maxInboundUnknown || first.held {
			t.Fatalf("%d streams of no member's held (the oldest's place still held: %v), want %d", len(c.strangers), first.held, maxInboundUnknown)
		}
		for i := range maxInboundPerIP {
			if oldest, ok := admit(member); !ok || oldest != nil {
				t.Fatalf("the member's stream %d: admitted %v, closing %v", i+1, ok, oldest)
			}
		}
		if _, ok := admit(member); ok {
			t.Fatalf("a member's stream %d admitted, past maxInboundPerIP", maxInboundPerIP+1)
		}
		one := netip.MustParseAddr("192.0.2.7")
		for range maxInboundPerIP {
			admit(one)
		}
		if _, ok := admit(one); ok {
			t.Fatalf("stream %d from one address of no member's admitted", maxInboundPerIP+1)
		}
		for _, cc := range held {
			c.release(cc)
		}
		if len(c.fromIP) != 0 || len(c.fromNet) != 0 || len(c.strangers) != 0 || c.all != 0 {
			t.Fatalf("all released, still held: %v by address, %v by /64, %d of no member's, %d in all", c.fromIP, c.fromNet, len(c.strangers), c.all)
		}
	})
	t.Run("unkeyed", func(t *testing.T) {
		c := &countingTransport{}
		c.addMember(member, 1)
		var held []*countingConn
		for i := range maxInbound {
			ip := v4(i)
			if i%2 == 0 {
				ip = member
			}
			cc := &countingConn{owner: c}
			if oldest, ok := c.admit(cc, ip); !ok || oldest != nil {
				t.Fatalf("stream %d: admitted %v, closing %v", i+1, ok, oldest)
			}
			held = append(held, cc)
		}
		for _, ip := range []netip.Addr{member, v4(999)} {
			if oldest, ok := c.admit(&countingConn{owner: c}, ip); ok || oldest != nil {
				t.Fatalf("a stream from %v past maxInbound in all: admitted %v, closing %v", ip, ok, oldest)
			}
		}
		c.release(held[0])
		if _, ok := c.admit(&countingConn{owner: c}, v4(999)); !ok {
			t.Fatal("a place given back was not taken again")
		}
	})
	t.Run("addresses", func(t *testing.T) {
		for in, want := range map[string]string{"fe80::2%eth0": "fe80::2", "::ffff:10.0.0.1": "10.0.0.1", "2001:db8::1": "2001:db8::1"} {
			if got := bare(netip.MustParseAddr(in)); got != netip.MustParseAddr(want) {
				t.Errorf("bare(%s) = %v, want %s", in, got, want)
			}
		}
	})
}
