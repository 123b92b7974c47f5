// Package sim is a step-driven simulated network for the sync protocol. It
// has no goroutines, no timers and no randomness of its own: frames wait in
// flight until the caller decides to deliver, drop, duplicate or reorder
// them, and the caller partitions and heals the members. Frames are the
// encoded bytes the protocol produced, so every message passes through the
// real codec on its way.
//
// A Network is not safe for concurrent use.
package sim

import (
	"fmt"
	"slices"

	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/wire"
)

// Packet is one frame in flight.
type Packet struct {
	// ID numbers packets in the order they were sent (duplicates get new
	// ids).
	ID       uint64
	From, To string
	Kind     wire.Kind
	Payload  []byte
	// Anonymous is the envelope's (transport.Envelope.Anonymous): the
	// frame reaches its receiver without From, as a real member's does.
	Anonymous bool
}

// Sender is the sender's name as the receiver learns it: From, or none
// for an anonymous frame.
func (p Packet) Sender() string {
	if p.Anonymous {
		return ""
	}
	return p.From
}

// Stats counts what happened to packets.
type Stats struct {
	Sent, Delivered, Dropped, Duplicated, Cut uint64
	// Bytes counts payload bytes sent.
	Bytes uint64
}

// Network holds the packets in flight and the current partition.
type Network struct {
	// OnCut, if set, is called with every packet in flight that a
	// partition or a member going down cut as it was taken for delivery
	// (a trace hooks in here: such packets went unseen otherwise). Those
	// cut as they were sent are the sender's to tell (Send).
	OnCut    func(Packet)
	inflight []Packet
	bytes    uint64         // payload bytes in flight
	spare    []Packet       // the slice TakeAll returned last, at its full length
	group    map[string]int // partition group of each member; absent means 0
	down     map[string]bool
	nextID   uint64
	stats    Stats
	sentBy   map[string][2]uint64 // frames and bytes sent, by sender
}

// New returns an empty, fully connected network.
func New() *Network {
	return &Network{group: map[string]int{}, down: map[string]bool{}, sentBy: map[string][2]uint64{}}
}

// Stats returns the counters.
func (n *Network) Stats() Stats { return n.stats }

// Connected reports whether a frame from a to b would get through now.
func (n *Network) Connected(a, b string) bool {
	return n.group[a] == n.group[b] && !n.down[a] && !n.down[b]
}

// Send puts the envelopes from one member in flight. Frames to members that
// cannot be reached right now are cut at once.
func (n *Network) Send(from string, envs []transport.Envelope) {
	by := n.sentBy[from]
	for _, e := range envs {
		n.stats.Sent++
		n.stats.Bytes += uint64(len(e.Payload))
		by[0]++
		by[1] += uint64(len(e.Payload))
		if !n.Connected(from, e.To) {
			n.stats.Cut++
			continue
		}
		n.nextID++
		n.bytes += uint64(len(e.Payload))
		n.inflight = append(n.inflight, Packet{ID: n.nextID, From: from, To: e.To, Kind: e.Kind, Payload: e.Payload, Anonymous: e.Anonymous})
	}
	if len(envs) > 0 {
		n.sentBy[from] = by
	}
}

// SentBy returns the frames and bytes member has sent (cut ones included).
func (n *Network) SentBy(member string) (frames, bytes uint64) {
	by := n.sentBy[member]
	return by[0], by[1]
}

// Len returns the number of packets in flight.
func (n *Network) Len() int { return len(n.inflight) }

// Bytes returns the payload bytes of the packets in flight: a harness
// bounds them, as it bounds their number, so that a replica whose frames
// grow with every hop fails its run rather than the machine's memory.
func (n *Network) Bytes() uint64 { return n.bytes }

// InFlight returns the packets in flight, oldest first. The slice belongs to
// the network and is valid until its next change.
func (n *Network) InFlight() []Packet { return n.inflight }

func (n *Network) check(i int) error {
	if i < 0 || i >= len(n.inflight) {
		return fmt.Errorf("sim: no packet %d (%d in flight)", i, len(n.inflight))
	}
	return nil
}

// Take removes packet i from flight for delivery. If its endpoints are no
// longer connected the packet is lost instead and ok is false.
func (n *Network) Take(i int) (p Packet, ok bool, err error) {
	if err := n.check(i); err != nil {
		return Packet{}, false, err
	}
	p = n.inflight[i]
	n.inflight = slices.Delete(n.inflight, i, i+1)
	n.bytes -= uint64(len(p.Payload))
	if !n.Connected(p.From, p.To) {
		n.stats.Cut++
		if n.OnCut != nil {
			n.OnCut(p)
		}
		return p, false, nil
	}
	n.stats.Delivered++
	return p, true, nil
}

// TakeAll removes every packet from flight, oldest first, for delivery.
// Packets whose endpoints are no longer connected are lost instead. The
// slice is valid until the next TakeAll, which reuses it for the packets
// sent meanwhile (a thousand simulated members send a hundred thousand a
// round: growing a new slice for them each round was a tenth of a run).
func (n *Network) TakeAll() []Packet {
	all := n.inflight
	clear(n.spare) // what was delivered last time is garbage
	n.inflight, n.spare = n.spare[:0], all
	n.bytes = 0
	kept := all[:0]
	for _, p := range all {
		if !n.Connected(p.From, p.To) {
			n.stats.Cut++
			if n.OnCut != nil {
				n.OnCut(p)
			}
			continue
		}
		n.stats.Delivered++
		kept = append(kept, p)
	}
	return kept
}

// Drop loses packet i.
func (n *Network) Drop(i int) error {
	if err := n.check(i); err != nil {
		return err
	}
	n.bytes -= uint64(len(n.inflight[i].Payload))
	n.inflight = slices.Delete(n.inflight, i, i+1)
	n.stats.Dropped++
	return nil
}

// Duplicate puts a copy of packet i in flight, at the end.
func (n *Network) Duplicate(i int) error {
	if err := n.check(i); err != nil {
		return err
	}
	p := n.inflight[i]
	n.nextID++
	p.ID = n.nextID
	n.bytes += uint64(len(p.Payload))
	n.inflight = append(n.inflight, p)
	n.stats.Duplicated++
	return nil
}

// Requeue puts p, a packet taken from flight (Take, TakeAll), back in
// flight at the end, to be taken again later: a copy of it (its new id
// counted as a duplicate) if dup, or the packet itself held back. A
// simulator that delivers a copy right behind its original only ever
// shows a receiver a copy of the frame it has just received. It returns
// the id the packet has in flight.
func (n *Network) Requeue(p Packet, dup bool) uint64 {
	if dup {
		n.nextID++
		p.ID = n.nextID
		n.stats.Duplicated++
	}
	n.bytes += uint64(len(p.Payload))
	n.inflight = append(n.inflight, p)
	return p.ID
}

// Reorder moves packet i to position j.
func (n *Network) Reorder(i, j int) error {
	if err := n.check(i); err != nil {
		return err
	}
	if err := n.check(j); err != nil {
		return err
	}
	p := n.inflight[i]
	n.inflight = slices.Insert(slices.Delete(n.inflight, i, i+1), j, p)
	return nil
}

// Partition splits the members into groups that cannot reach each other;
// members not named form one more group together. Packets already in flight
// across the cut are lost when taken.
func (n *Network) Partition(groups ...[]string) {
	clear(n.group)
	for g, members := range groups {
		for _, m := range members {
			n.group[m] = g + 1
		}
	}
}

// Heal removes every partition.
func (n *Network) Heal() { clear(n.group) }

// SetDown marks a member as crashed (true) or back (false). A crashed
// member's packets in flight, to and from it, are lost.
func (n *Network) SetDown(member string, down bool) {
	n.down[member] = down
	if !down {
		return
	}
	kept := n.inflight[:0]
	var cut []Packet
	for _, p := range n.inflight {
		if p.From == member || p.To == member {
			n.stats.Cut++
			n.bytes -= uint64(len(p.Payload))
			if n.OnCut != nil {
				cut = append(cut, p)
			}
			continue
		}
		kept = append(kept, p)
	}
	clear(n.inflight[len(kept):])
	n.inflight = kept
	// Told once the packets are compacted: told as they were, OnCut saw
	// them half done (packets twice, the cut ones among them), and a
	// packet it sent was lost to the compaction (found by review).
	for _, p := range cut {
		n.OnCut(p)
	}
}
