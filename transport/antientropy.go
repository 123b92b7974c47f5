package transport

import (
	"cmp"
	"math/bits"
	"slices"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// antiEntropy is the initiator side of sessions; the responder side keeps
// no state (see the package doc).
type antiEntropy struct {
	next    int64 // when to start the next session
	active  bool
	s       session
	turn    int // offset on the ring of the next peer
	counter uint64
}

type session struct {
	id       uint64
	peer     string
	start    int64 // physical time the session started
	echo     int64 // the responder's start time
	deadline int64
	leaves   []uint32 // differing leaves not yet reconciled
	chunk    int      // how many of leaves the step in flight covers
}

// depth returns the number of digest levels below the root.
func (n *Node) depth() int { return n.cfg.Replica.DigestBits() / crdt.FanoutBits }

func (n *Node) tickAntiEntropy(out []Envelope, now int64) []Envelope {
	if n.ae.active && now >= n.ae.s.deadline {
		n.stats.SessionsTimedOut++
		n.ae.active = false
	}
	if n.ae.active || now < n.ae.next {
		return out
	}
	n.ae.next = now + int64(n.cfg.AntiEntropyInterval)
	peer := n.ring.after(n.cfg.Name, peerOffset(n.ae.turn, n.ring.size()))
	n.ae.turn++
	if peer == "" {
		return out
	}
	return n.startSession(out, peer, now)
}

// StartSession starts an anti-entropy session with peer now, abandoning the
// session in flight if there is one. The node starts sessions by itself on
// Tick; tests and tools call this to pick the peer and the moment.
func (n *Node) StartSession(peer string, now int64) []Envelope {
	if n.ae.active {
		n.stats.SessionsTimedOut++
	}
	return n.startSession(nil, peer, now)
}

// peerOffset chooses the peer of session number turn in a cluster of n
// members, as a distance along the ring (0 is the next member). Distances
// run through 1, 2, 4, ... up to the cluster's size, as in a hypercube: a
// difference held by one member reaches all of them in about log2(n)
// sessions each. After each pass the distances shift by one, so over time
// every member meets every other.
func peerOffset(turn, n int) int {
	if n < 3 {
		return 0
	}
	levels := bits.Len(uint(n - 2))
	return (1 << (turn % levels)) - 1 + turn/levels
}

// startSession sends the first digest level. The initiator starts at level
// 1 or 0 so that it is the one to receive the leaf level and learn which
// leaves differ.
func (n *Node) startSession(out []Envelope, peer string, now int64) []Envelope {
	n.ae.counter++
	n.ae.active = true
	n.ae.s = session{
		id:       crdt.RecordHash(uint64(n.cfg.Clock.Node()), crdt.Timestamp{Wall: int64(n.ae.counter)}, false),
		peer:     peer,
		start:    now,
		deadline: now + int64(n.cfg.SessionTimeout),
	}
	n.stats.SessionsStarted++
	m := &wire.Digest{Session: n.ae.s.id, Level: uint8((n.depth() + 1) % 2)}
	if m.Level == 1 {
		m.Parents = []uint32{0}
	}
	m.Hashes = n.cfg.Replica.AppendHashes(nil, int(m.Level), m.Parents)
	return n.send(out, m, peer)
}

// mine reports whether m belongs to this node's session in flight.
func (n *Node) mine(from string, session uint64) bool {
	return n.ae.active && n.ae.s.id == session && n.ae.s.peer == from
}

// finish ends the session in flight as completed.
func (n *Node) finish() {
	n.cfg.Replica.MarkSynced(n.ae.s.start)
	n.stats.SessionsCompleted++
	n.ae.active = false
}

// receiveDigest compares the peer's nodes with ours and answers with our
// children of those that differ, or learns the differing leaves.
func (n *Node) receiveDigest(from string, m *wire.Digest, now int64) []Envelope {
	initiator := n.mine(from, m.Session)
	echo := m.Echo
	if initiator {
		n.ae.s.echo, n.ae.s.deadline = m.Echo, now+int64(n.cfg.SessionTimeout)
	} else if echo == 0 {
		echo = now
	}
	if len(m.Hashes) == 0 { // the peer found nothing different
		n.synced(initiator, echo)
		return nil
	}
	diff, ok := n.diffHashes(m)
	if !ok {
		n.stats.Stray++
		return nil
	}
	switch {
	case len(diff) == 0:
		n.synced(initiator, echo)
		return n.send(nil, &wire.Digest{Session: m.Session, Echo: echo, Level: m.Level + 1}, from)
	case int(m.Level) < n.depth():
		hashes := n.cfg.Replica.AppendHashes(nil, int(m.Level)+1, diff)
		return n.send(nil, &wire.Digest{Session: m.Session, Echo: echo, Level: m.Level + 1, Parents: diff, Hashes: hashes}, from)
	case initiator:
		n.ae.s.leaves = diff
		return n.sendVersions(nil)
	}
	n.stats.Stray++ // only the initiator may receive the leaf level
	return nil
}

// synced marks the replica synced at the end of a session without
// differences.
func (n *Node) synced(initiator bool, echo int64) {
	if initiator {
		n.finish()
	} else {
		n.cfg.Replica.MarkSynced(echo)
	}
}

// diffHashes returns the nodes at m.Level whose hashes differ from ours; ok
// is false when m does not fit our tree.
func (n *Node) diffHashes(m *wire.Digest) (diff []uint32, ok bool) {
	level := int(m.Level)
	if level > n.depth() {
		return nil, false
	}
	width := uint32(1) << (crdt.FanoutBits * max(level-1, 0))
	for _, p := range m.Parents {
		if p >= width {
			return nil, false
		}
	}
	mine := n.cfg.Replica.AppendHashes(nil, level, m.Parents)
	if len(mine) != len(m.Hashes) {
		return nil, false
	}
	for i, h := range mine {
		if h == m.Hashes[i] {
			continue
		}
		if level == 0 {
			diff = append(diff, 0)
		} else {
			diff = append(diff, m.Parents[i/crdt.Fanout]*crdt.Fanout+uint32(i%crdt.Fanout))
		}
	}
	return diff, true
}

// sendVersions sends our versions in the next chunk of differing leaves.
func (n *Node) sendVersions(out []Envelope) []Envelope {
	s := &n.ae.s
	s.chunk = min(len(s.leaves), n.cfg.LeavesPerStep)
	m := &wire.Versions{Session: s.id, Echo: s.echo, Leaves: s.leaves[:s.chunk]}
	var vs []crdt.Version
	for _, leaf := range m.Leaves {
		vs = n.cfg.Replica.AppendVersions(vs[:0], leaf)
		m.Counts = append(m.Counts, uint32(len(vs)))
		m.Versions = appendKeyVersions(m.Versions, vs)
	}
	return n.send(out, m, s.peer)
}

// appendKeyVersions appends vs as key-hash versions sorted by key hash.
func appendKeyVersions(dst []wire.KeyVersion, vs []crdt.Version) []wire.KeyVersion {
	start := len(dst)
	for _, v := range vs {
		dst = append(dst, wire.KeyVersion{KeyHash: crdt.HashKey(v.Key), Time: v.Time, Tombstone: v.Tombstone})
	}
	slices.SortFunc(dst[start:], func(a, b wire.KeyVersion) int { return cmp.Compare(a.KeyHash, b.KeyHash) })
	return dst
}

// receiveVersions (responder) compares the initiator's versions with ours
// and answers with our newer records and the key hashes we want.
func (n *Node) receiveVersions(from string, m *wire.Versions, now int64) []Envelope {
	leaves := uint32(1) << n.cfg.Replica.DigestBits()
	reply := &wire.Repair{Session: m.Session, Echo: m.Echo}
	var send map[uint64]bool
	var vs []crdt.Version
	var mine []wire.KeyVersion
	off := 0
	for i, leaf := range m.Leaves {
		if leaf >= leaves {
			n.stats.Stray++
			return nil
		}
		theirs := m.Versions[off : off+int(m.Counts[i])]
		off += int(m.Counts[i])
		vs = n.cfg.Replica.AppendVersions(vs[:0], leaf)
		mine = appendKeyVersions(mine[:0], vs)
		newer, wants := compareVersions(mine, theirs)
		reply.Wants = append(reply.Wants, wants...)
		if len(newer) > 0 {
			if send == nil {
				send = map[uint64]bool{}
			}
			for _, h := range newer {
				send[h] = true
			}
			reply.Records = n.appendLeafRecords(reply.Records, leaf, send)
		}
	}
	reply.Records, reply.Truncated = n.cut(reply.Records)
	n.stats.RepairRecordsSent += uint64(len(reply.Records))
	return n.send(nil, reply, from)
}

// compareVersions walks two key-hash-sorted version lists of one leaf and
// returns the key hashes where mine is newer or theirs lacks the key, and
// those where theirs is newer or mine lacks it.
func compareVersions(mine, theirs []wire.KeyVersion) (newer, wants []uint64) {
	i, j := 0, 0
	for i < len(mine) || j < len(theirs) {
		switch {
		case j == len(theirs) || (i < len(mine) && mine[i].KeyHash < theirs[j].KeyHash):
			newer = append(newer, mine[i].KeyHash)
			i++
		case i == len(mine) || theirs[j].KeyHash < mine[i].KeyHash:
			wants = append(wants, theirs[j].KeyHash)
			j++
		default:
			switch c := mine[i].Time.Compare(theirs[j].Time); {
			case c > 0:
				newer = append(newer, mine[i].KeyHash)
			case c < 0:
				wants = append(wants, theirs[j].KeyHash)
			}
			i, j = i+1, j+1
		}
	}
	return newer, wants
}

// appendLeafRecords appends the records of leaf whose key hashes are in
// want.
func (n *Node) appendLeafRecords(dst []crdt.Record, leaf uint32, want map[uint64]bool) []crdt.Record {
	start := len(dst)
	dst = n.cfg.Replica.AppendRecords(dst, leaf)
	kept := dst[:start]
	for _, r := range dst[start:] {
		if want[crdt.HashKey(r.Key)] {
			kept = append(kept, r)
		}
	}
	return kept
}

// cut sorts records by timestamp and cuts them at MaxRepairBytes, keeping at
// least one.
func (n *Node) cut(recs []crdt.Record) ([]crdt.Record, bool) {
	slices.SortFunc(recs, func(a, b crdt.Record) int { return a.Time.Compare(b.Time) })
	size := 0
	for i := range recs {
		size += wire.RecordSize(&recs[i])
		if i > 0 && size > n.cfg.MaxRepairBytes {
			return recs[:i], true
		}
	}
	return recs, false
}

// receiveRepair applies a repair. For the initiator it answers with the
// records the responder wants and moves the session on; for the responder
// it reports rejections and, on the final repair, marks the replica synced.
func (n *Node) receiveRepair(from string, m *wire.Repair, now int64) []Envelope {
	var rejected []crdt.Version
	for _, r := range m.Records {
		n.stats.RepairRecordsReceived++
		if n.receiveRecord(r, false, now) == crdt.Rejected {
			rejected = append(rejected, r.Version())
		}
	}
	n.forget(m.Rejected, now)
	if !n.mine(from, m.Session) {
		if m.Final && m.Echo != 0 {
			n.cfg.Replica.MarkSynced(m.Echo)
		}
		if len(rejected) == 0 {
			return nil
		}
		return n.send(nil, &wire.Reject{Session: m.Session, Versions: rejected}, from)
	}
	return n.answerRepair(m, rejected, now)
}

// answerRepair (initiator) sends the wanted records and the rejections, then
// the next step or the end of the session.
func (n *Node) answerRepair(m *wire.Repair, rejected []crdt.Version, now int64) []Envelope {
	s := &n.ae.s
	s.deadline = now + int64(n.cfg.SessionTimeout)
	recs, truncated := n.cut(n.wanted(m.Wants))
	done := !m.Truncated && !truncated
	if done {
		s.leaves = s.leaves[s.chunk:]
	}
	final := done && len(s.leaves) == 0
	n.stats.RepairRecordsSent += uint64(len(recs))
	out := n.send(nil, &wire.Repair{Session: s.id, Echo: s.echo, Records: recs, Rejected: rejected, Final: final, Truncated: truncated}, s.peer)
	if final {
		n.finish()
		return out
	}
	return n.sendVersions(out)
}

// wanted returns our records with the given key hashes.
func (n *Node) wanted(wants []uint64) []crdt.Record {
	if len(wants) == 0 {
		return nil
	}
	bits := n.cfg.Replica.DigestBits()
	byLeaf := map[uint32]map[uint64]bool{}
	for _, h := range wants {
		leaf := crdt.LeafIndex(h, 0, bits)
		if byLeaf[leaf] == nil {
			byLeaf[leaf] = map[uint64]bool{}
		}
		byLeaf[leaf][h] = true
	}
	var recs []crdt.Record
	for leaf, want := range byLeaf {
		recs = n.appendLeafRecords(recs, leaf, want)
	}
	return recs
}
