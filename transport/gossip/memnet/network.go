// Package memnet is an in-memory network for real memberlist instances: a
// [Network] hands out [Transport]s that reach each other without sockets,
// and injects the faults memberlist's own MockNetwork cannot: partitions,
// directional loss and delay. Tests and demos run whole bcache clusters on
// it in one process; production code never imports it.
//
// The network and its faults are in network.go, a member's transport (its
// packets and dials) in transport.go, and the streams, pairs of in-memory
// connections with deadlines, in conn.go.
package memnet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

const (
	memFirstPort   = 10000
	memPacketQueue = 4096
	memHost        = "127.0.0.1"
)

// Stats counts what a Network did with the packets and streams it was
// given. Every packet sent by a live transport ends in exactly one of
// Delivered or a Dropped counter, or is still InFlight (delayed). It is a
// plain value, safe to copy.
type Stats struct {
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

// Network is an in-memory network of Transports with fault
// injection: partitions, directional packet loss and delay. Loss is drawn
// from a generator seeded by NewNetwork, so a run that sends the same
// packets in the same order drops the same ones. It is safe for concurrent
// use; the zero value is not usable, call NewNetwork.
type Network struct {
	mu       sync.Mutex
	rng      *rand.Rand
	nextPort int
	byName   map[string]*Transport
	byAddr   map[string]*Transport
	group    map[string]int // partition group by member name; absent: the rest
	loss     map[[2]string]float64
	delay    time.Duration
	pairs    map[*memPair]struct{}
	stats    Stats
}

// NewNetwork returns an empty network without faults; seed drives every
// random choice it makes. It is safe for concurrent use.
func NewNetwork(seed uint64) *Network {
	return &Network{
		rng:      rand.New(rand.NewPCG(seed, 0x6d656d6e6574)),
		nextPort: memFirstPort,
		byName:   make(map[string]*Transport),
		byAddr:   make(map[string]*Transport),
		loss:     make(map[[2]string]float64),
		pairs:    make(map[*memPair]struct{}),
	}
}

// NewTransport attaches a member called name to the network and returns its
// transport, addressed 127.0.0.1:<port> with ports from 10000 up (no socket
// is opened). A name already held by a live transport is an error; the name
// of a transport that was shut down is taken over, address included, as a
// restarted process would. It is safe for concurrent use.
func (n *Network) NewTransport(name string) (*Transport, error) {
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
	t := newTransport(n, name, addr)
	n.byName[name] = t
	n.byAddr[addr] = t
	return t, nil
}

// Partition splits the members into the given groups, by name, replacing
// any earlier partition; the members not named (including ones created
// later) form one more group together. A name listed twice ends in its last
// group. Packets across groups are dropped, dials across groups are refused
// and open streams across groups are reset. A packet sent before the call
// and held back by SetDelay is in flight already: it arrives, as on a real
// network. It is safe for concurrent use.
func (n *Network) Partition(groups ...[]string) {
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
func (n *Network) Heal() {
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
func (n *Network) SetLoss(from, to string, rate float64) {
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
func (n *Network) SetDelay(d time.Duration) {
	n.mu.Lock()
	n.delay = max(d, 0)
	n.mu.Unlock()
}

// Stats returns a snapshot of the network's counters. It is safe for
// concurrent use.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// partitionedLocked reports whether members a and b are in different
// groups. n.mu must be held.
func (n *Network) partitionedLocked(a, b string) bool {
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
func (n *Network) lossRateLocked(a, b string) float64 {
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
func (n *Network) routePacket(src *Transport, addr string) (*Transport, time.Duration) {
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
func (n *Network) deliver(dst *Transport, p *memberlist.Packet, delayed bool) {
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
func (n *Network) routeStream(src *Transport, addr string) (*Transport, time.Duration, error) {
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
func (n *Network) openPair(p *memPair) error {
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
func (n *Network) dialed(p *memPair, opened bool) {
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
func (n *Network) forgetPair(p *memPair) {
	n.mu.Lock()
	delete(n.pairs, p)
	n.mu.Unlock()
}

// resetStreamsOf resets every open stream with an end on t.
func (n *Network) resetStreamsOf(t *Transport) {
	n.mu.Lock()
	cut := n.cutStreamsLocked(func(p *memPair) bool { return p.src == t || p.dst == t })
	n.mu.Unlock()
	for _, p := range cut {
		p.reset()
	}
}

// cutStreamsLocked forgets, and counts as reset, the open streams that
// match; the caller resets them once it has released the lock.
func (n *Network) cutStreamsLocked(match func(*memPair) bool) []*memPair {
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
