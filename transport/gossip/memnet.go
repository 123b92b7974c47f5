package gossip

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// In-memory network for real memberlist instances: MemNetwork hands out
// MemTransports that reach each other without sockets, and injects the
// faults memberlist's own MockNetwork cannot (partitions, directional loss,
// delay). Streams are memConn pairs, defined at the end of the file.

const (
	memFirstPort   = 10000
	memPacketQueue = 4096
	memHost        = "127.0.0.1"
)

// MemStats counts what a MemNetwork did with the packets and streams it was
// given. Every packet sent by a live transport ends in exactly one of
// Delivered or a Dropped counter, or is still InFlight (delayed). It is a
// plain value, safe to copy.
type MemStats struct {
	PacketsSent      uint64 // WriteTo calls by a transport not shut down
	Delivered        uint64 // packets placed on a receiver's PacketCh
	DroppedLoss      uint64 // dropped by SetLoss
	DroppedPartition uint64 // sender and receiver in different groups
	DroppedQueue     uint64 // receiver's queue full, or receiver shut down
	DroppedNoRoute   uint64 // no transport has the address
	InFlight         uint64 // delayed by SetDelay, not yet delivered or dropped
	BytesDelivered   uint64 // sum of delivered packet sizes
	StreamsOpened    uint64 // dials handed to the target's StreamCh
	StreamsRefused   uint64 // dials failed: partition, unknown or shut down target
	StreamsReset     uint64 // streams cut by Partition or Shutdown (open or being dialed)
}

// MemNetwork is an in-memory network of MemTransports with fault
// injection: partitions, directional packet loss and delay. Loss is drawn
// from a generator seeded by NewMemNetwork, so a run that sends the same
// packets in the same order drops the same ones. It is safe for concurrent
// use; the zero value is not usable, call NewMemNetwork.
type MemNetwork struct {
	mu       sync.Mutex
	rng      *rand.Rand
	nextPort int
	byName   map[string]*MemTransport
	byAddr   map[string]*MemTransport
	group    map[string]int // partition group by member name; absent: the rest
	loss     map[[2]string]float64
	delay    time.Duration
	pairs    map[*memPair]struct{}
	stats    MemStats
}

// NewMemNetwork returns an empty network without faults; seed drives every
// random choice it makes. It is safe for concurrent use.
func NewMemNetwork(seed uint64) *MemNetwork {
	return &MemNetwork{
		rng:      rand.New(rand.NewPCG(seed, 0x6d656d6e6574)),
		nextPort: memFirstPort,
		byName:   make(map[string]*MemTransport),
		byAddr:   make(map[string]*MemTransport),
		loss:     make(map[[2]string]float64),
		pairs:    make(map[*memPair]struct{}),
	}
}

// NewTransport attaches a member called name to the network and returns its
// transport, addressed 127.0.0.1:<port> with ports from 10000 up (no socket
// is opened). A name already held by a live transport is an error; the name
// of a transport that was shut down is taken over, address included, as a
// restarted process would. It is safe for concurrent use.
func (n *MemNetwork) NewTransport(name string) (*MemTransport, error) {
	if name == "" || name == "*" {
		return nil, fmt.Errorf("memnet: new transport: invalid name %q", name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var addr string
	if old, ok := n.byName[name]; ok {
		if !old.isShutdown() {
			return nil, fmt.Errorf("memnet: new transport: name %q already in use", name)
		}
		addr = old.addr
	} else {
		if n.nextPort > math.MaxUint16 {
			return nil, fmt.Errorf("memnet: new transport: out of ports")
		}
		addr = net.JoinHostPort(memHost, strconv.Itoa(n.nextPort))
		n.nextPort++
	}
	t := newMemTransport(n, name, addr)
	n.byName[name] = t
	n.byAddr[addr] = t
	return t, nil
}

// Partition splits the members into the given groups, by name, replacing
// any earlier partition; the members not named (including ones created
// later) form one more group together. A name listed twice ends in its last
// group. Packets across groups are dropped, dials across groups are refused
// and open streams across groups are reset. It is safe for concurrent use.
func (n *MemNetwork) Partition(groups ...[]string) {
	n.mu.Lock()
	n.group = make(map[string]int)
	for i, g := range groups {
		for _, name := range g {
			n.group[name] = i
		}
	}
	cut := n.cutStreamsLocked(func(p *memPair) bool { return n.partitionedLocked(p.client.name, p.server.name) })
	n.mu.Unlock()
	for _, p := range cut {
		p.reset()
	}
}

// Heal removes every partition; loss and delay settings stay. It is safe
// for concurrent use.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	n.group = nil
	n.mu.Unlock()
}

// SetLoss sets the probability, clamped to 0..1, that a packet from member
// from to member to is dropped; it is directional, so b to a is unaffected.
// "*" as from or to matches any member; the most specific setting wins:
// (from, to), then (from, *), then (*, to), then (*, *). A rate of 0 is a
// setting like any other, so SetLoss("a", "b", 0) exempts a to b from a
// wildcard. Streams are not subject to loss. It is safe for concurrent use.
func (n *MemNetwork) SetLoss(from, to string, rate float64) {
	if math.IsNaN(rate) || rate < 0 {
		rate = 0
	}
	n.mu.Lock()
	n.loss[[2]string{from, to}] = min(rate, 1)
	n.mu.Unlock()
}

// SetDelay delays every packet sent and every stream dial made from now on
// by d; packets are then delivered asynchronously. 0 (or less) means no
// delay. It is safe for concurrent use.
func (n *MemNetwork) SetDelay(d time.Duration) {
	n.mu.Lock()
	n.delay = max(d, 0)
	n.mu.Unlock()
}

// Stats returns a snapshot of the network's counters. It is safe for
// concurrent use.
func (n *MemNetwork) Stats() MemStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// partitionedLocked reports whether members a and b are in different
// groups. n.mu must be held.
func (n *MemNetwork) partitionedLocked(a, b string) bool {
	if n.group == nil {
		return false
	}
	ga, ok := n.group[a]
	if !ok {
		ga = -1
	}
	gb, ok := n.group[b]
	if !ok {
		gb = -1
	}
	return ga != gb
}

// lossRateLocked returns the loss rate from a to b. n.mu must be held.
func (n *MemNetwork) lossRateLocked(a, b string) float64 {
	for _, k := range [...][2]string{{a, b}, {a, "*"}, {"*", b}, {"*", "*"}} {
		if r, ok := n.loss[k]; ok {
			return r
		}
	}
	return 0
}

// routePacket decides the fate of a packet from src to addr and counts
// it: it returns the receiver and the delay, or nil if the packet is
// dropped.
func (n *MemNetwork) routePacket(src *MemTransport, addr string) (*MemTransport, time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stats.PacketsSent++
	dst, ok := n.byAddr[addr]
	switch {
	case !ok:
		n.stats.DroppedNoRoute++
		return nil, 0
	case n.partitionedLocked(src.name, dst.name):
		n.stats.DroppedPartition++
		return nil, 0
	}
	// Draw only for a rate strictly between 0 and 1, so a test that only
	// uses 0 and 1 leaves the generator untouched.
	if r := n.lossRateLocked(src.name, dst.name); r >= 1 || (r > 0 && n.rng.Float64() < r) {
		n.stats.DroppedLoss++
		return nil, 0
	}
	if n.delay > 0 {
		n.stats.InFlight++
	}
	return dst, n.delay
}

// deliver hands p to dst and counts the outcome; delayed says whether the
// packet was counted in flight.
func (n *MemNetwork) deliver(dst *MemTransport, p *memberlist.Packet, delayed bool) {
	p.Timestamp = time.Now()
	ok := dst.enqueue(p)
	n.mu.Lock()
	defer n.mu.Unlock()
	if delayed {
		n.stats.InFlight--
	}
	if !ok {
		n.stats.DroppedQueue++
		return
	}
	n.stats.Delivered++
	n.stats.BytesDelivered += uint64(len(p.Buf))
}

// routeStream checks that src may open a stream to addr, and returns the
// target and the dial delay.
func (n *MemNetwork) routeStream(src *MemTransport, addr string) (*MemTransport, time.Duration, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	dst, ok := n.byAddr[addr]
	switch {
	case !ok || dst.isShutdown():
		n.stats.StreamsRefused++
		return nil, 0, syscall.ECONNREFUSED
	case n.partitionedLocked(src.name, dst.name):
		n.stats.StreamsRefused++
		return nil, 0, syscall.EHOSTUNREACH
	}
	return dst, n.delay, nil
}

// openPair registers a new stream pair, unless its ends are partitioned
// or shut down by now.
func (n *MemNetwork) openPair(p *memPair) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.partitionedLocked(p.client.name, p.server.name) {
		n.stats.StreamsRefused++
		return syscall.EHOSTUNREACH
	}
	if p.src.isShutdown() || p.dst.isShutdown() {
		n.stats.StreamsRefused++
		return syscall.ECONNREFUSED
	}
	n.pairs[p] = struct{}{}
	return nil
}

// dialed counts how the dial of p ended, and forgets p if it failed.
func (n *MemNetwork) dialed(p *memPair, opened bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if opened {
		n.stats.StreamsOpened++
		return
	}
	n.stats.StreamsRefused++
	delete(n.pairs, p)
}

// forgetPair drops p from the open set once both of its ends are closed.
func (n *MemNetwork) forgetPair(p *memPair) {
	n.mu.Lock()
	delete(n.pairs, p)
	n.mu.Unlock()
}

// resetStreamsOf resets every open stream with an end on t.
func (n *MemNetwork) resetStreamsOf(t *MemTransport) {
	n.mu.Lock()
	cut := n.cutStreamsLocked(func(p *memPair) bool { return p.src == t || p.dst == t })
	n.mu.Unlock()
	for _, p := range cut {
		p.reset()
	}
}

// cutStreamsLocked forgets, and counts as reset, the open streams that
// match; the caller resets them once it has released the lock.
func (n *MemNetwork) cutStreamsLocked(match func(*memPair) bool) []*memPair {
	var cut []*memPair
	for p := range n.pairs {
		if match(p) {
			cut = append(cut, p)
			delete(n.pairs, p)
		}
	}
	n.stats.StreamsReset += uint64(len(cut))
	return cut
}

// MemTransport is one member's attachment to a MemNetwork; it implements
// memberlist.NodeAwareTransport, so a memberlist.Config can use it as its
// Transport. It is safe for concurrent use.
type MemTransport struct {
	net      *MemNetwork
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

var _ memberlist.NodeAwareTransport = (*MemTransport)(nil)

func newMemTransport(n *MemNetwork, name, addr string) *MemTransport {
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	return &MemTransport{
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
func (t *MemTransport) Name() string { return t.name }

// Addr returns the transport's host:port address, the one to Join. It is
// safe for concurrent use.
func (t *MemTransport) Addr() string { return t.addr }

// FinalAdvertiseAddr returns the transport's own address whatever it is
// given: a member can only be reached at the address the network assigned.
// It is safe for concurrent use.
func (t *MemTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.ip, t.port, nil
}

// WriteTo sends b as a packet to addr; see WriteToAddress. It is safe for
// concurrent use.
func (t *MemTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a copy of b as a packet to a.Addr, like UDP: it
// never blocks, and a packet to an unknown address, across a partition,
// lost, or arriving at a full or shut down receiver is dropped without an
// error. It fails only once t is shut down. It is safe for concurrent use.
func (t *MemTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
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
func (t *MemTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh returns the channel of streams accepted; it is never closed.
// It is safe for concurrent use.
func (t *MemTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// DialTimeout opens a stream to addr; see DialAddressTimeout. It is safe
// for concurrent use.
func (t *MemTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to a.Addr and returns the client end,
// after the network's delay; the server end is handed to the target's
// StreamCh. A target that is unknown, shut down or across a partition
// refuses at once; a target whose StreamCh is not read within timeout
// makes it time out (timeout 0 means no limit). It is safe for concurrent
// use.
func (t *MemTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
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
func (t *MemTransport) wait(d time.Duration, expired <-chan time.Time) error {
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
func (t *MemTransport) handOff(p *memPair, expired <-chan time.Time) error {
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
func (t *MemTransport) Shutdown() error {
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

func (t *MemTransport) isShutdown() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// enqueue puts p on the packet queue without blocking; false if the queue
// is full or t is shut down.
func (t *MemTransport) enqueue(p *memberlist.Packet) bool {
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

func (t *MemTransport) udpAddr() *net.UDPAddr { return &net.UDPAddr{IP: t.ip, Port: t.port} }
func (t *MemTransport) tcpAddr() *net.TCPAddr { return &net.TCPAddr{IP: t.ip, Port: t.port} }
