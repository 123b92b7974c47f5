package memnet

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// Transport is one member's attachment to a Network; it implements
// memberlist.NodeAwareTransport, so a memberlist.Config can use it as its
// Transport. It is safe for concurrent use.
type Transport struct {
	net      *Network
	name     string
	addr     string
	ip       net.IP
	port     int
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	mu     sync.Mutex // guards closed and sends on packetCh
	closed bool
	done   chan struct{} // closed by Shutdown
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

func newTransport(n *Network, name, addr string) *Transport {
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	return &Transport{
		net:      n,
		name:     name,
		addr:     addr,
		ip:       net.ParseIP(host).To4(),
		port:     port,
		packetCh: make(chan *memberlist.Packet, memPacketQueue),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
}

// Name returns the member name the transport was created with. It is safe
// for concurrent use.
func (t *Transport) Name() string { return t.name }

// Addr returns the transport's host:port address, the one to Join. It is
// safe for concurrent use.
func (t *Transport) Addr() string { return t.addr }

// FinalAdvertiseAddr returns the transport's own address whatever it is
// given: a member can only be reached at the address the network assigned.
// It is safe for concurrent use.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.ip, t.port, nil
}

// WriteTo sends b as a packet to addr; see WriteToAddress. It is safe for
// concurrent use.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a copy of b as a packet to a.Addr, like UDP: it
// never blocks, and a packet to an unknown address, across a partition,
// lost, or arriving at a full or shut down receiver is dropped without an
// error. It fails only once t is shut down. It is safe for concurrent use.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	if t.isShutdown() {
		return now, &net.OpError{Op: "write", Net: "udp", Source: t.udpAddr(), Err: net.ErrClosed}
	}
	dst, delay := t.net.routePacket(t, a.Addr)
	if dst == nil {
		return now, nil
	}
	p := &memberlist.Packet{Buf: bytes.Clone(b), From: t.udpAddr()}
	if delay == 0 {
		t.net.deliver(dst, p, false)
		return now, nil
	}
	time.AfterFunc(delay, func() { t.net.deliver(dst, p, true) })
	return now, nil
}

// PacketCh returns the channel of packets received; it is never closed.
// It is safe for concurrent use.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh returns the channel of streams accepted; it is never closed.
// It is safe for concurrent use.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// DialTimeout opens a stream to addr; see DialAddressTimeout. It is safe
// for concurrent use.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to a.Addr and returns the client end,
// after the network's delay; the server end is handed to the target's
// StreamCh. A target that is unknown, shut down or across a partition
// refuses at once; a target whose StreamCh is not read within timeout
// makes it time out (timeout 0 means no limit). It is safe for concurrent
// use.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Source: t.tcpAddr(), Addr: memAddr(a.Addr), Err: err}
	}
	if t.isShutdown() {
		return nil, opErr(net.ErrClosed)
	}
	if timeout < 0 {
		return nil, opErr(os.ErrDeadlineExceeded)
	}
	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	dst, delay, err := t.net.routeStream(t, a.Addr)
	if err != nil {
		return nil, opErr(err)
	}
	if err := t.wait(delay, expired); err != nil {
		return nil, opErr(err)
	}
	p := newMemPair(t, dst)
	if err := t.net.openPair(p); err != nil {
		return nil, opErr(err)
	}
	if err := t.handOff(p, expired); err != nil {
		return nil, opErr(err)
	}
	return p.client, nil
}

// wait waits for d, unless the dial expires or t is shut down first.
func (t *Transport) wait(d time.Duration, expired <-chan time.Time) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-expired:
		return os.ErrDeadlineExceeded
	case <-t.done:
		return net.ErrClosed
	}
}

// handOff gives p's server end to the target's StreamCh, or resets p if
// the target shuts down, the dial expires or t shuts down first.
func (t *Transport) handOff(p *memPair, expired <-chan time.Time) error {
	var err error
	select {
	case p.dst.streamCh <- p.server:
		t.net.dialed(p, true)
		return nil
	case <-p.dst.done:
		err = syscall.ECONNREFUSED
	case <-expired:
		err = os.ErrDeadlineExceeded
	case <-t.done:
		err = net.ErrClosed
	}
	t.net.dialed(p, false)
	p.reset()
	return err
}

// Shutdown detaches the transport: nothing more is delivered to it, dials
// to it are refused, and its open streams are reset. Calling it again does
// nothing. It is safe for concurrent use and always returns nil.
func (t *Transport) Shutdown() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	t.mu.Unlock()
	t.net.resetStreamsOf(t)
	return nil
}

func (t *Transport) isShutdown() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// enqueue puts p on the packet queue without blocking; false if the queue
// is full or t is shut down.
func (t *Transport) enqueue(p *memberlist.Packet) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	select {
	case t.packetCh <- p:
		return true
	default:
		return false
	}
}

func (t *Transport) udpAddr() *net.UDPAddr { return &net.UDPAddr{IP: t.ip, Port: t.port} }
func (t *Transport) tcpAddr() *net.TCPAddr { return &net.TCPAddr{IP: t.ip, Port: t.port} }
