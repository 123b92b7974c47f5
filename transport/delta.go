package transport

import (
	"hash/maphash"
	"math"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// deltaQueue is the bounded, per-key coalesced buffer of local writes not
// yet shipped.
type deltaQueue struct {
	recs  []crdt.Record
	index map[string]int // key -> position in recs
	bytes int            // estimated encoded size of recs (see estimate)
	due   int64          // when the queued records must be flushed
	last  int64          // when the queue was last flushed
	seq   uint64         // number of the last batch shipped
}

func (q *deltaQueue) init() {
	q.index = make(map[string]int)
	q.last = math.MinInt64
}

// reset empties the queue. It deletes the queued keys from the index one
// by one rather than clearing it: clearing a map costs its capacity, which
// a burst once grew, and with group commit a reset follows every small
// group.
func (q *deltaQueue) reset(now int64) {
	for i := range q.recs {
		delete(q.index, q.recs[i].Key)
	}
	clear(q.recs)
	q.recs = q.recs[:0]
	q.bytes = 0
	q.last = now
}

// refusedKept is how many batches passed on with refused records a node
// remembers (8 bytes each), so as not to pass them on again.
const refusedKept = 256

// refusedBatches remembers the last refusedKept batches this node passed
// on that held records it refused, by a hash of their frame under a seed
// of its own (no one can forge a batch that is taken for another). A
// refused record is held nowhere, so a copy of its batch is refused
// again, not taken for a copy, and was passed on again at each copy: a
// captured datagram replayed (no key needed), or a forged batch sent
// again, went down the origin's whole subtree at every replay while its
// stamps were ahead (TestReplayedRefusedBatchGoesNoFurther; found by
// review). Past refusedKept such batches the oldest is forgotten, and its
// copies go on once more.
type refusedBatches struct {
	seed maphash.Seed
	sums [refusedKept]uint64
	n    uint64 // batches remembered, the next at sums[n%refusedKept] (an int wrapped negative on 32 bits)
}

// again reports whether the batch of frame was remembered, and remembers
// it if not.
func (b *refusedBatches) again(frame []byte) bool {
	if b.n == 0 {
		b.seed = maphash.MakeSeed()
	}
	sum := maphash.Bytes(b.seed, frame)
	for _, s := range b.sums[:min(b.n, refusedKept)] {
		if s == sum {
			return true
		}
	}
	b.sums[b.n%refusedKept] = sum
	b.n++
	return false
}

// Write queues a record the replica has just applied locally and returns
// what to send; it is WriteGroup of one record. r.Value must not be
// modified afterwards.
func (n *Node) Write(r crdt.Record, now int64) []Envelope {
	return n.WriteGroup([]crdt.Record{r}, now)
}

// WriteGroup queues records the replica has just applied locally, in the
// order applied, and returns what to send: every full packet's worth as it
// fills, and the rest at once if the flush is due, otherwise nothing until
// it is (see NextDeadline). With no FlushInterval the flush is always due:
// a host that hands the node, as one group, every write that arrived while
// it was sending the last group (group commit) batches under load and
// sends an isolated write at once, with no timer. With a FlushInterval, a
// write that finds the node idle (nothing flushed for that long) is sent at
// once and later ones wait for the interval. The records' values must not
// be modified afterwards.
func (n *Node) WriteGroup(recs []crdt.Record, now int64) []Envelope {
	n.rebase(now)
	out := n.queueGroup(nil, recs, now)
	return n.flushDue(out, now)
}

// WriteGroups is WriteGroup of the records of every slice of groups, in
// order, as one group: a host that keeps its queued writes in chunks
// hands them over at once. (Handed over a chunk at a time, each was
// flushed on its own with no FlushInterval: a key written in two chunks
// left twice, and every chunk ended in a frame part full: found by
// review, TestWritesTakenAtOnceLeaveAsOneGroup in package gossip.)
func (n *Node) WriteGroups(groups [][]crdt.Record, now int64) []Envelope {
	return n.AppendWriteGroups(nil, groups, now)
}

// AppendWriteGroups is WriteGroups appending the envelopes to dst: a host
// that sends them before its next call reuses one slice for them. (Made
// anew at each call, the envelopes were a fifth of the bytes a writer of
// isolated writes allocated, each write its own group: 10,000 a second
// to four members.)
func (n *Node) AppendWriteGroups(dst []Envelope, groups [][]crdt.Record, now int64) []Envelope {
	n.rebase(now)
	out := dst
	for _, recs := range groups {
		out = n.queueGroup(out, recs, now)
	}
	return n.flushDue(out, now)
}

// Flush sends every write queued, its flush due or not: for a host about
// to leave, whose queued writes would otherwise go nowhere.
func (n *Node) Flush(now int64) []Envelope {
	n.rebase(now)
	if len(n.out.recs) == 0 {
		return nil
	}
	return n.flush(nil, now)
}

// queueGroup queues recs, appending to out every full packet's worth.
func (n *Node) queueGroup(out []Envelope, recs []crdt.Record, now int64) []Envelope {
	q := &n.out
	for i := range recs {
		var queued bool
		if out, queued = n.queue(out, &recs[i], now); !queued {
			continue
		}
		if wire.DeltaOverhead(n.cfg.Name, len(q.recs))+q.bytes >= n.budget() {
			out = n.flush(out, now)
		}
	}
	return out
}

// flushDue flushes the queue if its flush is due.
func (n *Node) flushDue(out []Envelope, now int64) []Envelope {
	if q := &n.out; len(q.recs) > 0 && now >= q.due {
		out = n.flush(out, now)
	}
	return out
}

// queue adds r to the outgoing buffer, coalesced with a queued record of
// its key, and reports whether the buffer changed. A record of a new key
// that would take the buffer past a packet's worth flushes the buffer
// first, to out, and starts the next packet. (Flushed once r was queued,
// past the budget, r went alone in a frame of its own after each full
// one, twice the frames under load: found by review,
// TestBusyWritesLeaveInFullPackets.)
func (n *Node) queue(out []Envelope, r *crdt.Record, now int64) ([]Envelope, bool) {
	q := &n.out
	size := n.estimate(r)
	if i, ok := q.index[r.Key]; ok {
		if !q.recs[i].Time.Less(r.Time) {
			return out, false
		}
		q.bytes += size - n.estimate(&q.recs[i])
		q.recs[i] = *r
		n.stats.DeltasCoalesced++
		return out, true
	}
	if len(q.recs) > 0 && wire.DeltaOverhead(n.cfg.Name, len(q.recs)+1)+q.bytes+size > n.budget() {
		out = n.flush(out, now)
	}
	if len(q.recs) >= n.cfg.MaxPending {
		n.stats.DeltasDropped++
		return out, false
	}
	q.index[r.Key] = len(q.recs)
	q.recs = append(q.recs, *r)
	q.bytes += size
	if len(q.recs) == 1 {
		q.due = max(now, crdt.AddSat(q.last, int64(n.cfg.FlushInterval))) // saturated: an interval of "forever" wrapped, and every write went at once (found by review)
	}
	return out, true
}

// budget is the size this node's delta batches are filled up to:
// PacketBudget, less, when they are relayed (the tree is deeper than one
// hop), the bytes by which the longest member name is longer than this
// node's. A relay sends the frame unchanged behind a header of its own,
// which carries its name as this node's Headroom carries this node's:
// filled to PacketBudget, a batch relayed by a member of a longer name
// was over that member's datagram, and went over a stream (found by
// review, TestARelayedDeltaFitsTheRelayersDatagram in package gossip).
//
// It is at most the codec's MaxFrame: a batch filled to a PacketBudget
// above it (a host sending its deltas over streams) failed to encode,
// and its writes left by no delta (found by review,
// TestABigBudgetBatchStaysWithinTheWireLimits).
func (n *Node) budget() int {
	budget := min(n.cfg.PacketBudget, n.codec.Limits().MaxFrame)
	if n.ring.size()-1 <= n.cfg.Fanout {
		return budget
	}
	return budget - max(n.ring.longest-len(n.cfg.Name), 0)
}

// estimate is the encoded size of r in a batch of this node's writes,
// counting its wall offset from the batch's first record as up to 5 bytes
// (writes less than about two seconds apart). It only decides when a full
// packet's worth is queued; flush splits batches exactly.
func (n *Node) estimate(r *crdt.Record) int {
	return wire.DeltaRecordSize(r, r.Time.Wall, n.cfg.Clock.Node()) + 4
}

// flush ships every queued record to this node's children in its own tree,
// in batches that fit the packet budget. When the tree is one hop deep
// (every other member is a child) the batches are direct sends, without the
// origin name and batch number that relaying needs.
func (n *Node) flush(out []Envelope, now int64) []Envelope {
	q := &n.out
	kids := n.ring.children(n.sendKids[:0], n.cfg.Name, n.cfg.Name, n.cfg.Fanout)
	n.sendKids = kids
	if len(kids) == 0 { // alone: anti-entropy will carry the writes later
		q.reset(now)
		return out
	}
	origin := n.cfg.Name
	if len(kids) == n.ring.size()-1 {
		origin = ""
	}
	id := n.cfg.Clock.Node()
	budget := n.budget()
	start, size := 0, 0
	for i := range q.recs {
		rs := wire.DeltaRecordSize(&q.recs[i], q.recs[start].Time.Wall, id)
		// At most wire.MaxRecords a batch, whatever the budget: a frame
		// of more fails to encode.
		if i > start && (i-start == wire.MaxRecords || wire.DeltaOverhead(origin, i-start+1)+size+rs > budget) {
			out = n.sendBatch(out, origin, q.recs[start:i], kids)
			start, size = i, 0
			rs = wire.DeltaRecordSize(&q.recs[i], q.recs[i].Time.Wall, id)
		}
		size += rs
	}
	out = n.sendBatch(out, origin, q.recs[start:], kids)
	q.reset(now)
	return out
}

func (n *Node) sendBatch(out []Envelope, origin string, recs []crdt.Record, kids []string) []Envelope {
	// The node's own messages, not new ones: Encode keeps nothing of
	// them, and they let go of the records once it has run.
	n.delta = wire.Delta{Origin: origin, OriginID: n.cfg.Clock.Node(), Records: recs}
	var m wire.Message = &n.delta
	switch {
	case origin != "":
		n.out.seq++
		n.delta.Seq = n.out.seq
	case n.useDirect:
		n.direct = wire.Direct{OriginID: n.cfg.Clock.Node(), Records: recs}
		m = &n.direct
	}
	n.stats.DeltaBatchesSent++
	n.stats.DeltaRecordsSent += uint64(len(recs))
	start := len(out)
	out = n.send(out, m, kids...)
	n.delta, n.direct = wire.Delta{}, wire.Direct{}
	if origin == "" { // a direct send: applied, not relayed or answered
		for i := start; i < len(out); i++ {
			out[i].Anonymous = true
		}
	}
	return out
}

// receiveDelta applies a batch and, if it brought something new here,
// relays the frame, unchanged, to this node's children in the origin's
// tree. A direct send (no origin name) is applied and not relayed.
//
// Whether a batch is new is told by what it does, not by its origin's id
// and batch number: anyone holding the cluster key can send a Delta under
// another member's id with the numbers that member will use next, and
// when those marked a batch as seen, its real batches were taken for
// copies, neither applied nor relayed, anywhere (found by review; a
// window of 64 numbers and a restart after 64 late batches in a row
// narrowed it, and a forged batch sent again now and then held the
// restart off). A batch goes on if a record of it was applied here, or
// refused (this member's clock behind the writer's by more than
// MaxClockDrift: the members below may take it; relayed only when
// applied, a member whose clock lagged cut its subtree off from every
// batch it refused, found by review), once: a copy of a batch passed on
// with refused records, which applies nothing, is a copy (see
// refusedBatches). Copies (Stale: held already, or a newer version),
// records older than the horizon (Late: they travel by anti-entropy) and
// records below a watermark (Rejected: known dead) go
// no further: a copy of an old batch, replayed by anyone who captured
// the datagram, went down the whole subtree at each replay once its
// records were Late (found by review). A copy costs one lookup per
// record, what any peer's frame may cost.
func (n *Node) receiveDelta(from string, m *wire.Delta, payload []byte, now int64) []Envelope {
	if m.OriginID == n.cfg.Clock.Node() {
		n.stats.DuplicateDeltas++
		return nil
	}
	applied, refused := false, false
	bound := n.cfg.Clock.UpdateAll(m.Records)
	for _, r := range m.Records {
		switch n.receiveRecord(r, true, now, bound) {
		case crdt.Applied:
			applied = true
		case crdt.Refused:
			refused = true
		}
	}
	// A batch that applied something is remembered too, if it held a
	// refused record: its copies apply nothing more. A direct send, passed
	// on by no one, is not.
	if again := refused && m.Origin != "" && n.refused.again(payload); !applied && (!refused || again) {
		// Not counted as received, its records neither: they were
		// counted at every copy, and DeltaRecordsReceived counts them
		// once (found by review; a direct send's copies too, found
		// again).
		n.stats.DuplicateDeltas++
		return nil
	}
	n.stats.DeltaRecordsReceived += uint64(len(m.Records))
	n.stats.DeltaBatchesReceived++
	if m.Origin == "" {
		n.noteWriter(from, m.OriginID) // sent by its writer
		return nil
	}
	n.noteWriter(m.Origin, m.OriginID)
	var out []Envelope
	frame := []byte(nil)
	o, ok := n.ring.pos[m.Origin]
	if !ok {
		return nil
	}
	n.kids = n.ring.childrenAt(n.kids[:0], o, n.self, n.cfg.Fanout)
	for _, kid := range n.kids {
		if kid == m.Origin || kid == from {
			continue
		}
		if frame == nil {
			frame = append(make([]byte, n.cfg.Headroom, n.cfg.Headroom+len(payload)), payload...)
			out = make([]Envelope, 0, len(n.kids))
		}
		out = append(out, n.envelope(kid, wire.KindDelta, frame))
		n.stats.countSent(wire.KindDelta, len(payload))
		n.stats.DeltasForwarded++
	}
	return out
}
