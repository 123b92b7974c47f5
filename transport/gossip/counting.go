package gossip

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// wireStats counts what a member puts on the wire: every datagram and every
// byte written to a stream, memberlist's own traffic included.
type wireStats struct {
	packets, packetBytes, streams, streamBytes atomic.Uint64
	largest                                    atomic.Uint64 // the longest datagram sent
	refused                                    atomic.Uint64 // streams accepted past maxInbound, closed
}

// maxInbound bounds the streams accepted and not closed yet, in a cluster
// without a key. memberlist reads each on its own goroutine and, without
// encryption, makes the buffer of a user message as large as its header
// says (up to 20 MiB) before the bytes come: anyone who reaches the port
// could open streams that send a header and wait, each holding that much
// for TCPTimeout. Past the bound, a new stream is closed at once (and
// counted): its sender retries, as after any failed stream. With a key,
// memberlist reads a stream's ciphertext as it comes, so what a stream
// holds is what was sent, up to 20 MiB, before the check that fails it;
// there the bound is per remote address (maxInboundPerIP), since anyone
// who can reach the port, key or not, could take all of a bound for
// every address with idle streams and keep the members' own out (without
// any, 100 streams from a process without the key held 250 MiB for
// TCPTimeout: found by review).
const maxInbound = 64

// maxInboundPerIP bounds the streams accepted from one remote address and
// not closed yet, in a cluster with a key (see maxInbound). Members on
// one host (tests, a machine running several) share it.
const maxInboundPerIP = 64

// countingTransport wraps memberlist's transport to count what it sends.
// It keeps the streams it dialed, so that Shutdown cuts the writes still
// waiting on a peer that stopped reading instead of waiting for their
// deadlines.
type countingTransport struct {
	memberlist.NodeAwareTransport
	stats    *wireStats
	streamCh chan net.Conn
	inbound  chan struct{} // a token per stream accepted and not closed (maxInbound); nil: a bound per address
	closing  chan struct{} // closed when Shutdown starts
	stopped  chan struct{} // closed when the inner transport has shut down
	once     sync.Once
	wg       sync.WaitGroup

	mu     sync.Mutex
	dialed map[*countingConn]struct{} // streams dialed and not closed; nil once shut down
	fromIP map[netip.Addr]int         // streams accepted and not closed, by remote address, without inbound
}

// newCountingTransport wraps t; bounded says to bound the streams
// accepted (see maxInbound).
func newCountingTransport(t memberlist.NodeAwareTransport, s *wireStats, bounded bool) *countingTransport {
	c := &countingTransport{
		NodeAwareTransport: t, stats: s, streamCh: make(chan net.Conn),
		closing: make(chan struct{}), stopped: make(chan struct{}),
		dialed: map[*countingConn]struct{}{},
	}
	if bounded {
		c.inbound = make(chan struct{}, maxInbound)
	}
	c.wg.Add(1)
	go c.forwardStreams()
	return c
}

// forwardStreams wraps every accepted stream so that replies are counted.
// Once Shutdown has started nobody reads StreamCh any more, so it closes
// what the inner transport still accepts instead: the inner transport's
// Shutdown waits for its accept loop, which would otherwise block forever
// handing over a connection.
func (c *countingTransport) forwardStreams() {
	defer c.wg.Done()
	in := c.NodeAwareTransport.StreamCh()
	for {
		select {
		case conn := <-in:
			cc := &countingConn{Conn: conn, stats: c.stats, accepted: c.inbound}
			admitted := true
			if c.inbound != nil {
				select {
				case c.inbound <- struct{}{}:
				default:
					admitted = false
				}
			} else if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
				cc.from, cc.owner = ap.Addr().Unmap(), c
				admitted = c.admit(cc.from)
			}
			if !admitted {
				c.stats.refused.Add(1)
				conn.Close()
				continue
			}
			select {
			case c.streamCh <- cc:
			case <-c.closing:
				cc.Close()
			}
		case <-c.stopped:
			return
		}
	}
}

// admit takes a place for a stream accepted from ip, if one is left
// (maxInboundPerIP).
func (c *countingTransport) admit(ip netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fromIP[ip] >= maxInboundPerIP {
		return false
	}
	if c.fromIP == nil {
		c.fromIP = map[netip.Addr]int{}
	}
	c.fromIP[ip]++
	return true
}

// release gives back the place of a stream from ip.
func (c *countingTransport) release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fromIP[ip]--; c.fromIP[ip] <= 0 {
		delete(c.fromIP, ip)
	}
}

func (c *countingTransport) count(b []byte) { c.stats.count(b) }

// count counts a datagram sent.
func (s *wireStats) count(b []byte) {
	s.packets.Add(1)
	s.packetBytes.Add(uint64(len(b)))
	for n := uint64(len(b)); ; {
		if cur := s.largest.Load(); n <= cur || s.largest.CompareAndSwap(cur, n) {
			break
		}
	}
}

// WriteTo implements memberlist.Transport.
func (c *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	c.count(b)
	return c.NodeAwareTransport.WriteTo(b, addr)
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (c *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	c.count(b)
	return c.NodeAwareTransport.WriteToAddress(b, a)
}

// DialTimeout implements memberlist.Transport.
func (c *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := c.NodeAwareTransport.DialTimeout(addr, timeout)
	return c.wrap(conn, err, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (c *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := c.NodeAwareTransport.DialAddressTimeout(a, timeout)
	return c.wrap(conn, err, timeout)
}

// wrap counts a stream just dialed and gives it a deadline, timeout (the
// TCPTimeout) from now. memberlist times only the dial of the streams that
// carry user messages (SendReliable), so without it a peer that stops
// reading would hold the sender forever; memberlist's own exchanges set
// their deadlines over this one.
func (c *countingTransport) wrap(conn net.Conn, err error, timeout time.Duration) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("gossip: stream deadline: %w", err)
		}
	}
	cc := &countingConn{Conn: conn, stats: c.stats, dialer: c}
	c.mu.Lock()
	shut := c.dialed == nil
	if !shut {
		c.dialed[cc] = struct{}{}
	}
	c.mu.Unlock()
	if shut {
		conn.Close()
		return nil, fmt.Errorf("gossip: dial: %w", net.ErrClosed)
	}
	c.stats.streams.Add(1)
	return cc, nil
}

// forget drops a dialed stream that was closed.
func (c *countingTransport) forget(cc *countingConn) {
	c.mu.Lock()
	delete(c.dialed, cc)
	c.mu.Unlock()
}

// cutDialed closes every stream dialed and not closed yet, and makes
// later dials fail.
func (c *countingTransport) cutDialed() {
	c.mu.Lock()
	dialed := c.dialed
	c.dialed = nil
	c.mu.Unlock()
	for cc := range dialed {
		cc.Conn.Close()
	}
}

// StreamCh implements memberlist.Transport.
func (c *countingTransport) StreamCh() <-chan net.Conn { return c.streamCh }

// Shutdown implements memberlist.Transport.
func (c *countingTransport) Shutdown() error {
	var err error
	c.once.Do(func() {
		close(c.closing)
		c.cutDialed()
		err = c.NodeAwareTransport.Shutdown()
		close(c.stopped)
		c.wg.Wait()
	})
	return err
}

// countingConn counts the bytes written to a stream.
type countingConn struct {
	net.Conn
	stats    *wireStats
	dialer   *countingTransport // nil for a stream accepted
	accepted chan struct{}      // for a stream accepted: its token is taken back at Close
	owner    *countingTransport // for a stream accepted under a bound per address: from's place is given back at Close
	from     netip.Addr
	closed   atomic.Bool
}

// Close closes the stream, and forgets it if it was dialed, or gives back
// its token if it was accepted.
func (c *countingConn) Close() error {
	if c.closed.Swap(true) {
		return c.Conn.Close()
	}
	if c.dialer != nil {
		c.dialer.forget(c)
	}
	if c.accepted != nil {
		<-c.accepted
	}
	if c.owner != nil {
		c.owner.release(c.from)
	}
	return c.Conn.Close()
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.stats.streamBytes.Add(uint64(n))
	return n, err
}
