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
	refused                                    atomic.Uint64 // streams accepted past a bound of maxInbound's, closed, and the oldest closed to make room
}

// maxInbound bounds the streams accepted and not closed yet, all
// together, in a cluster without a key. Each is read on its own goroutine,
// into a buffer that grows as its bytes come (streamin.go); one that is
// not a whole user message then goes to memberlist, which made the buffer
// of a user message as large as its header said (up to 20 MiB) before the
// bytes came, when it read them all: anyone who reaches the port could
// open streams that send a header and wait, each holding that much for
// TCPTimeout. It still can: a header in the form memberlist's encoder
// writes is read here, and the buffer grows with what comes, but
// memberlist's decoder takes others (another integer width, a map of more
// entries), which go to memberlist as soon as they are read, and it makes
// that buffer before the bytes come, for the rest of the TCPTimeout from
// the accept (found by review). Each holds a goroutine and a descriptor
// too. Past the bound, a new stream is
// closed at once (and counted): its sender retries, as after any failed
// stream. (Without a key anyone may join, and be a member: no address is
// trusted more than another.)
//
// With a key, a stream's ciphertext is read as it comes, so what a
// stream holds is what was sent, up to 20 MiB, and as much again for its
// plaintext as the keys are tried; one that no key opens then goes to
// memberlist, which reads it again (its copy and plaintext, as much
// again) and answers that it could not decrypt it. There the streams from addresses of no member are bounded by
// maxInboundUnknown together, and by maxInboundPerIP per address and per
// IPv6 /64; past maxInboundUnknown, the oldest of them is closed to make
// room (a joiner's exchange lasts milliseconds; streams left idle to fill
// the bound are the oldest), so that no one keeps a new member out by
// holding idle streams. The streams from a member's address (alive, or
// lost and not forgotten) count against none of these, only against
// maxInboundPerIP for their address, so that no one's idle streams keep
// the members' own out. (Without any bound, 100 streams from a process
// without the key held 250 MiB for TCPTimeout; a global one let idle
// streams keep a joiner out, refused 94,518 times in 8 s; a bound on the
// others without the oldest closed did too; and a bound per /64 alone
// let anyone in a member's IPv6 LAN: all found by review.)
const maxInbound = 64

// maxInboundPerIP bounds the streams accepted from one remote address,
// or one IPv6 /64 of no member's, and not closed yet, in a cluster with a
// key (see maxInbound). Members on one host (tests, a machine running
// several) share it.
const maxInboundPerIP = 64

// maxInboundUnknown bounds the streams accepted from addresses of no
// member and not closed yet, in a cluster with a key (see maxInbound):
// past it, the oldest is closed.
const maxInboundUnknown = 128

// countingTransport wraps memberlist's transport to count what it sends.
// It keeps the streams it dialed, so that Shutdown cuts the writes still
// waiting on a peer that stopped reading instead of waiting for their
// deadlines.
type countingTransport struct {
	memberlist.NodeAwareTransport
	stats    *wireStats
	streamCh chan net.Conn
	keyed    bool
	closing  chan struct{} // closed when Shutdown starts
	stopped  chan struct{} // closed when the inner transport has shut down
	once     sync.Once
	wg       sync.WaitGroup
	reader   atomic.Pointer[streamReader] // reads the streams accepted once set (streamin.go)
	packets  chan *memberlist.Packet      // nil: the inner transport's, unfiltered (see filterPackets)

	mu     sync.Mutex
	dialed map[*countingConn]struct{} // streams dialed and not closed; nil once shut down
	// Streams accepted and not closed: by remote address, or all of
	// them without a key; with one, of addresses of no member, by IPv6
	// /64, and in all, with when each was admitted.
	fromIP    map[netip.Addr]int
	fromNet   map[netip.Prefix]int
	strangers map[*countingConn]uint64
	admitted  uint64                     // streams admitted so far: strangers' order
	all       int                        // without a key
	members   map[netip.Addr]int         // the members' addresses, with how many members known at each (addMember)
	accepted  map[*countingConn]struct{} // accepted and not closed; nil once shut down
}

// newCountingTransport wraps t; keyed says the cluster has a key (see
// maxInbound).
func newCountingTransport(t memberlist.NodeAwareTransport, s *wireStats, keyed bool) *countingTransport {
	c := &countingTransport{
		NodeAwareTransport: t, stats: s, streamCh: make(chan net.Conn),
		closing: make(chan struct{}), stopped: make(chan struct{}),
		dialed: map[*countingConn]struct{}{}, keyed: keyed, accepted: map[*countingConn]struct{}{},
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
			cc := &countingConn{Conn: conn, stats: c.stats, owner: c}
			var from netip.Addr // the zero address of a stream of no IP (a test's in-memory network): one place for all
			if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
				from = bare(ap.Addr())
			}
			oldest, ok := c.admit(cc, from)
			if oldest != nil {
				c.stats.refused.Add(1)
				oldest.Close() // memberlist's reader of it fails
			}
			if !ok {
				c.stats.refused.Add(1)
				conn.Close()
				continue
			}
			if !c.track(&c.accepted, cc) {
				cc.Close()
				continue
			}
			if sr := c.reader.Load(); sr != nil {
				c.wg.Add(1)
				go c.read(sr, cc)
				continue
			}
			c.handOver(cc)
		case <-c.stopped:
			return
		}
	}
}

// place is what an accepted stream counts against.
type place struct {
	ip     netip.Addr
	member bool         // from a member's address: no bound but ip's (with a key)
	net    netip.Prefix // for one of no member's, its /64 (IPv6, keyed), or invalid
}

// bare is ip as addresses are compared here: IPv4 unmapped, and without a
// zone (a link-local stream's remote address carries its interface, a
// member's advertised one does not: found by review).
func bare(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }

// admit takes a place for cc, a stream accepted from ip, if one is left
// (see maxInbound). With a key, a stream of no member's past
// maxInboundUnknown takes the place of the oldest such stream, which the
// caller closes.
func (c *countingTransport) admit(cc *countingConn, ip netip.Addr) (oldest *countingConn, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := place{ip: ip, member: c.keyed && c.members[ip] > 0}
	if !p.member && c.keyed && ip.Is6() {
		p.net, _ = ip.Prefix(64)
	}
	switch {
	case !c.keyed && c.all >= maxInbound,
		c.fromIP[ip] >= maxInboundPerIP,
		p.net.IsValid() && c.fromNet[p.net] >= maxInboundPerIP:
		return nil, false
	case c.keyed && !p.member && len(c.strangers) >= maxInboundUnknown:
		oldest = c.oldestStranger()
		c.releaseLocked(oldest) // its Close gives back nothing more
	}
	if c.fromIP == nil {
		c.fromIP, c.fromNet, c.strangers = map[netip.Addr]int{}, map[netip.Prefix]int{}, map[*countingConn]uint64{}
	}
	c.fromIP[ip]++
	c.all++
	if c.keyed && !p.member {
		c.admitted++
		c.strangers[cc] = c.admitted
	}
	if p.net.IsValid() {
		c.fromNet[p.net]++
	}
	cc.place, cc.held = p, true
	return oldest, true
}

// oldestStranger returns the stream of no member's admitted first. Called
// with c.mu held, with at least one.
func (c *countingTransport) oldestStranger() *countingConn {
	var oldest *countingConn
	for cc, n := range c.strangers {
		if oldest == nil || n < c.strangers[oldest] {
			oldest = cc
		}
	}
	return oldest
}

// release gives back the place cc holds, if it holds one.
func (c *countingTransport) release(cc *countingConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(cc)
	delete(c.accepted, cc)
}

func (c *countingTransport) releaseLocked(cc *countingConn) {
	if !cc.held {
		return
	}
	cc.held = false
	p := cc.place
	if c.fromIP[p.ip]--; c.fromIP[p.ip] <= 0 {
		delete(c.fromIP, p.ip)
	}
	c.all--
	delete(c.strangers, cc)
	if p.net.IsValid() {
		if c.fromNet[p.net]--; c.fromNet[p.net] <= 0 {
			delete(c.fromNet, p.net)
		}
	}
}

// addMember counts d more members known at ip (d < 0: fewer). The
// Replicator tells each change of its members' addresses as it happens:
// the whole set, rebuilt at each change, cost a pass over every member
// known, and a member holding the key that announced thousands took
// minutes of memberlist's lock to take them in (found by review).
func (c *countingTransport) addMember(ip netip.Addr, d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members == nil {
		c.members = map[netip.Addr]int{}
	}
	if c.members[ip] += d; c.members[ip] <= 0 {
		delete(c.members, ip)
	}
}

func (c *countingTransport) count(b []byte) { c.stats.count(b) }

// count counts a datagram sent: handed to the network (written without
// an error).
func (s *wireStats) count(b []byte) {
	s.packets.Add(1)
	s.packetBytes.Add(uint64(len(b)))
	for n := uint64(len(b)); ; {
		if cur := s.largest.Load(); n <= cur || s.largest.CompareAndSwap(cur, n) {
			break
		}
	}
}

// WriteTo implements memberlist.Transport. A datagram is counted once
// written: one the transport failed to write was counted as sent (found
// by review, TestFailedDatagramsAreNotCountedAsSent).
func (c *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t, err := c.NodeAwareTransport.WriteTo(b, addr)
	if err == nil {
		c.count(b)
	}
	return t, err
}

// WriteToAddress implements memberlist.NodeAwareTransport, counting as
// WriteTo does.
func (c *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t, err := c.NodeAwareTransport.WriteToAddress(b, a)
	if err == nil {
		c.count(b)
	}
	return t, err
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
// TCPTimeout) from now. The streams that carry bcache's frames
// (reliable.go) have no other deadline, as memberlist's SendReliable set
// none, so without it a peer that stops reading would hold the sender
// forever; memberlist's own exchanges set their deadlines over this one.
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
	if !c.track(&c.dialed, cc) {
		conn.Close()
		return nil, fmt.Errorf("gossip: dial: %w", net.ErrClosed)
	}
	c.stats.streams.Add(1)
	if sr := c.reader.Load(); sr != nil {
		return &replyConn{countingConn: cc, sr: sr}, nil // see replyRefused
	}
	return cc, nil
}

// track adds cc to set (c.dialed or c.accepted) and reports true, or
// reports false once Shutdown has cut the streams (the set is nil).
func (c *countingTransport) track(set *map[*countingConn]struct{}, cc *countingConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *set == nil {
		return false
	}
	(*set)[cc] = struct{}{}
	return true
}

// forget drops a dialed stream that was closed.
func (c *countingTransport) forget(cc *countingConn) {
	c.mu.Lock()
	delete(c.dialed, cc)
	c.mu.Unlock()
}

// cutStreams closes every stream dialed or accepted and not closed yet,
// makes later dials fail and closes the streams accepted later. An
// accepted stream that sent nothing held memberlist's goroutine reading
// it, and its descriptor, for up to TCPTimeout after Close (found by
// review): memberlist's Shutdown does not close them.
func (c *countingTransport) cutStreams() {
	c.mu.Lock()
	dialed, accepted := c.dialed, c.accepted
	c.dialed, c.accepted = nil, nil
	c.mu.Unlock()
	for cc := range dialed {
		cc.Conn.Close()
	}
	for cc := range accepted {
		cc.Conn.Close()
	}
}

// read reads cc, a stream accepted, with sr, and hands memberlist what
// sr does not take.
func (c *countingTransport) read(sr *streamReader, cc *countingConn) {
	defer c.wg.Done()
	if rest := sr.take(cc); rest != nil {
		c.handOver(rest)
		return
	}
	cc.Close()
}

// handOver gives memberlist conn, a stream accepted, or closes it once
// Shutdown has started.
func (c *countingTransport) handOver(conn net.Conn) {
	select {
	case c.streamCh <- conn:
	case <-c.closing:
		conn.Close()
	}
}

// filterPackets makes memberlist get the inner transport's datagrams
// through open, which drops, and hands to refused, those memberlist would
// panic on (opener.crashes). The default transport's reader opens its
// datagrams itself (direct.go); a transport of the caller's
// (Config.Transport) did not, and one datagram of a holder of the key
// took the process down (found by review). It must be called before
// memberlist is created; open is used by one goroutine alone.
func (c *countingTransport) filterPackets(open opener, refused func([]byte)) {
	c.packets = make(chan *memberlist.Packet)
	in := c.NodeAwareTransport.PacketCh()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case p := <-in:
				if open.refuses(p.Buf) {
					refused(nil)
					continue
				}
				select {
				case c.packets <- p:
				case <-c.closing:
					return
				}
			case <-c.closing:
				return
			}
		}
	}()
}

// PacketCh implements memberlist.Transport.
func (c *countingTransport) PacketCh() <-chan *memberlist.Packet {
	if c.packets != nil {
		return c.packets
	}
	return c.NodeAwareTransport.PacketCh()
}

// StreamCh implements memberlist.Transport.
func (c *countingTransport) StreamCh() <-chan net.Conn { return c.streamCh }

// Shutdown implements memberlist.Transport.
func (c *countingTransport) Shutdown() error {
	var err error
	c.once.Do(func() {
		close(c.closing)
		c.cutStreams()
		err = c.NodeAwareTransport.Shutdown()
		close(c.stopped)
		c.wg.Wait()
	})
	return err
}

// countingConn counts the bytes written to a stream.
type countingConn struct {
	net.Conn
	stats  *wireStats
	dialer *countingTransport // nil for a stream accepted
	owner  *countingTransport // for a stream accepted: its place is given back at Close
	place  place              // guarded by owner.mu
	held   bool               // place is held: guarded by owner.mu
	closed atomic.Bool
}

// Close closes the stream, and forgets it if it was dialed, or gives back
// its place if it was accepted.
func (c *countingConn) Close() error {
	if c.closed.Swap(true) {
		return c.Conn.Close()
	}
	if c.dialer != nil {
		c.dialer.forget(c)
	}
	if c.owner != nil {
		c.owner.release(c)
	}
	return c.Conn.Close()
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.stats.streamBytes.Add(uint64(n))
	return n, err
}
