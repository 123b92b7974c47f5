package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// maxDatagram is the largest datagram read; larger ones are truncated by
// the kernel and then refused by memberlist's checks.
const maxDatagram = 65536

// udpReadBuffer is the socket receive buffer asked for, so that bursts of
// deltas wait in the kernel, not dropped, while the reader catches up:
// it is a bound, not an allocation (the kernel holds only what is
// queued). At 200,000 writes a second on three members, each a process
// on the same two cores, members with 4 MiB dropped datagrams in two runs
// of three (25,842 and 51,623, and 1.3-1.7 s before anti-entropy had
// repaired them), with 16 MiB in none of three (0.15-0.37 s of lag); in a
// slower hour, 14,000-38,000 against 1,600-11,300. Linux caps it at
// net.core.rmem_max; macOS and the BSDs refuse more than their limit
// (kern.ipc.maxsockbuf), so the member asks for less until it is given
// (setReadBuffer). On Linux, a member given less asks again with
// SO_RCVBUFFORCE, which a process with CAP_NET_ADMIN is granted past the
// cap (forceReadBufferPast). It logs a warning when it still gets less
// (Stats.ReadBuffer says what it got). A variable for tests.
var udpReadBuffer = 16 << 20

// forceReadBuffer is forceReadBufferPast; tests replace it to see a
// member that is refused.
var forceReadBuffer = forceReadBufferPast

// netTransport is a memberlist.NodeAwareTransport over one UDP socket and
// one TCP listener on the same address. Unlike memberlist's own, it reads
// datagrams into one reused buffer and hands memberlist an exact-size copy:
// memberlist's allocates 64 KiB per datagram and its queues keep that
// alive, which at thousands of deltas a second is most of the process's
// garbage. Once the replicator has set direct, the reader opens
// datagrams itself and hands bcache's frames straight to the protocol
// (see direct.go). It is safe for concurrent use.
type netTransport struct {
	udp      *net.UDPConn
	tcp      *net.TCPListener
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	shutdown atomic.Bool
	done     chan struct{}
	wg       sync.WaitGroup
	// direct, once set, takes the user messages the reader can open
	// itself (see direct.go).
	direct atomic.Pointer[direct]
	// readBuffer is the UDP socket's receive buffer, as the kernel
	// reports it (0 where it is not read).
	readBuffer int
}

// listen binds host:port for UDP and TCP; with port 0 the kernel picks a
// TCP port and UDP takes the same, retried a few times in case it is taken.
func listen(host string, port int) (*netTransport, error) {
	ip := net.ParseIP(host)
	if host != "" && ip == nil {
		a, err := net.ResolveIPAddr("ip", host)
		if err != nil {
			return nil, fmt.Errorf("gossip: bind host %q: %w", host, err)
		}
		ip = a.IP
	}
	var err error
	for range 10 {
		var t *netTransport
		if t, err = listenOnce(ip, port); err == nil {
			return t, nil
		}
		if port != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, fmt.Errorf("gossip: listen on %s: %w", net.JoinHostPort(host, fmt.Sprint(port)), err)
}

func listenOnce(ip net.IP, port int) (*netTransport, error) {
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: tcp.Addr().(*net.TCPAddr).Port})
	if err != nil {
		tcp.Close()
		return nil, err
	}
	setReadBuffer(udp, udpReadBuffer)
	if readBufferShort(readBufferOf(udp), udpReadBuffer) {
		forceReadBuffer(udp, udpReadBuffer) // best effort: refused unless privileged
	}
	t := &netTransport{
		udp: udp, tcp: tcp, readBuffer: readBufferOf(udp),
		packetCh: make(chan *memberlist.Packet), streamCh: make(chan net.Conn),
		done: make(chan struct{}),
	}
	t.wg.Add(2)
	go t.readPackets()
	go t.accept()
	return t, nil
}

// setReadBuffer asks for a receive buffer of size, best effort: Linux caps
// the request at its limit, while macOS and the BSDs refuse one above it,
// so a refused request is made again for half as much, down to 256 KiB.
func setReadBuffer(conn interface{ SetReadBuffer(int) error }, size int) {
	for ; size >= 256<<10; size /= 2 {
		if conn.SetReadBuffer(size) == nil {
			return
		}
	}
}

// port returns the bound port.
func (t *netTransport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

func (t *netTransport) readPackets() {
	defer t.wg.Done()
	// A datagram is read after directRoom bytes, in which the opener makes
	// a direct delta's frame in place.
	buf := make([]byte, directRoom+maxDatagram)
	var wait time.Duration // after failed reads in a row
	for {
		n, from, err := t.udp.ReadFromUDPAddrPort(buf[directRoom:])
		ts := time.Now()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			// A socket whose reads fail (one closed under the
			// transport, a kernel out of memory) fails at once, again:
			// retried at once, the loop took a whole CPU (last notes'
			// item). Back off as accept does.
			wait = min(max(2*wait, 5*time.Millisecond), time.Second)
			if !readPause(wait, t.done) {
				return
			}
			continue
		}
		wait = 0
		if n == 0 {
			continue
		}
		datagram := buf[directRoom : directRoom+n]
		if d := t.direct.Load(); d != nil {
			if msg, ok := d.open.userMessage(buf[:directRoom+n], directRoom); ok {
				d.deliver(msg) // nil, refused: counted as a frame that does not parse
				continue
			}
		}
		p := &memberlist.Packet{Buf: append([]byte(nil), datagram...), From: net.UDPAddrFromAddrPort(from), Timestamp: ts}
		select {
		case t.packetCh <- p:
		case <-t.done:
			return
		}
	}
}

func (t *netTransport) accept() {
	defer t.wg.Done()
	var wait time.Duration // after failed accepts in a row
	for {
		conn, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			// Out of file descriptors (EMFILE) an accept fails at once,
			// for as long as the connection waits: retried at once, the
			// loop took a whole CPU (found by review). Back off, 5 ms
			// doubling to a second, as net/http does.
			wait = min(max(2*wait, 5*time.Millisecond), time.Second)
			if !acceptPause(wait, t.done) {
				return
			}
			continue
		}
		wait = 0
		select {
		case t.streamCh <- conn:
		case <-t.done:
			conn.Close()
			return
		}
	}
}

// acceptPause waits d after a failed accept, and readPause after a
// failed datagram read; each reports false if done closed first.
// (Variables: tests record the waits.)
var acceptPause, readPause = pause, pause

func pause(d time.Duration, done <-chan struct{}) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-done:
		return false
	}
}

// FinalAdvertiseAddr implements memberlist.Transport: the configured
// address if any, else the bound one (which must then not be a wildcard).
func (t *netTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return nil, 0, fmt.Errorf("gossip: advertise address %q is not an IP address", ip)
		}
		if port == 0 {
			port = t.port()
		}
		return parsed, port, nil
	}
	bound := t.tcp.Addr().(*net.TCPAddr)
	if !bound.IP.IsUnspecified() {
		return bound.IP, bound.Port, nil
	}
	picked, err := interfaceIP()
	if err != nil {
		return nil, 0, fmt.Errorf("gossip: bound to %s and %w: set an advertise address", bound, err)
	}
	return picked, bound.Port, nil
}

// interfaceIP picks the address to advertise when bound to a wildcard: the
// first private IPv4 address of an interface that is up, else the first
// global one.
func interfaceIP() (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var global net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.To4() == nil || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		if n.IP.IsPrivate() {
			return n.IP, nil
		}
		if global == nil {
			global = n.IP
		}
	}
	if global == nil {
		return nil, errors.New("no interface has a usable IPv4 address")
	}
	return global, nil
}

// WriteTo implements memberlist.Transport.
func (t *netTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	// Members' addresses are IP:port: parsed without allocating, sent
	// without a net.UDPAddr (resolving the string took an allocation and
	// a parse for every datagram).
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		_, err = t.udp.WriteToUDPAddrPort(b, ap)
		return time.Now(), err
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, ua)
	return time.Now(), err
}

// writeToNode is WriteTo to a member's address, read from its node
// without the string Node.Address makes (two allocations a datagram,
// which WriteTo then parsed back). memberlist may hold an IPv4 address
// in net.IP's 16-byte form: unmapped, it is the address ParseAddrPort
// gave WriteTo.
func (t *netTransport) writeToNode(b []byte, to *memberlist.Node) error {
	if a, ok := netip.AddrFromSlice(to.Addr); ok {
		_, err := t.udp.WriteToUDPAddrPort(b, netip.AddrPortFrom(a.Unmap(), to.Port))
		return err
	}
	_, err := t.WriteTo(b, to.Address())
	return err
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *netTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh implements memberlist.Transport.
func (t *netTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport. Shutdown cancels a dial in
// progress: a join attempt to a member that does not answer (the other
// side of a partition) would otherwise hold up Close until its timeout.
func (t *netTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-t.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var d net.Dialer
	if ip := t.tcp.Addr().(*net.TCPAddr).IP; !ip.IsUnspecified() {
		// From the address the member is bound to, and advertises: the
		// peers admit its streams as a member's by their source (see
		// maxInbound). From another of the host's addresses, which the
		// kernel picked, they were anyone's, and closed to make room for
		// others' (found by review).
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return d.DialContext(ctx, "tcp", addr)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *netTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *netTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport. It is idempotent.
func (t *netTransport) Shutdown() error {
	if t.shutdown.Swap(true) {
		return nil
	}
	close(t.done)
	t.udp.Close()
	t.tcp.Close()
	t.wg.Wait()
	return nil
}
