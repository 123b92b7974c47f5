package gossip

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bcache-go/bcache/transport/wire"
	"github.com/hashicorp/memberlist"
)

// Anti-entropy frames a little larger than a datagram (a digest level
// with a few dozen differing parents, a repair of a few dozen records) go
// as fragments: call frames of kind callFragment, each a datagram, that
// the receiver puts back together. Over a stream such a frame waits on a
// TCP connection of its own (memberlist dials one per message), which
// under packet loss stalls for a second or more on a lost SYN, and holds
// up the peer's later frames behind it; a lost fragment costs the session
// one retry instead, which it makes by itself after an eighth of its
// timeout (a request of its own; an initiator's Repair, which awaits no
// answer, is not sent again: the responder then does not complete the
// session, and the next one repairs what it lacks). Deltas, which nothing resends but anti-entropy, keep the
// stream, as do frames of more than maxFragments datagrams (a far-behind
// member's repairs), which want TCP's flow control.
//
// Every fragment goes twice, the second round after the first: a frame
// of k fragments then arrives whole with probability (1-p²)^k under a
// loss rate p instead of (1-p)^k (at 20% loss and 3 fragments, 0.88
// against 0.51), for twice the bytes of these few mid-size frames; steady
// anti-entropy, whose steps fit a datagram, is not touched. A fragment's
// payload is its index, the count, and its part of the frame. The
// receiver holds at most maxPartial frames in pieces and maxPartialBytes
// of them, from all senders together, each for at most partialTTL, and
// the ids of the last doneEach frames it made whole of each of at most
// doneSenders senders (under 256 KiB, names of 255 bytes): what it
// takes is bounded whatever peers send.
const (
	callFragment = 3
	maxFragments = 16
	maxPartial   = 64
	// maxPartialBytes bounds the fragments held: 16 frames of the
	// largest fragments, 64 of the default PacketSize's.
	maxPartialBytes = 16 << 20
	partialTTL      = 2 * time.Second
	// doneEach and doneSenders bound the frames made whole that are
	// remembered, so that their copies do not make them again (see
	// doneFrames).
	doneEach    = 64
	doneSenders = 256
)

// fragmentable reports whether frames of kind may go as fragments.
func fragmentable(kind wire.Kind) bool {
	switch kind {
	case wire.KindDigest, wire.KindVersions, wire.KindRepair, wire.KindReject:
		return true
	}
	return false
}

// fragmentSize is the share of a frame one fragment carries: what a
// datagram of this member's packet size holds, but no more than one of
// the default's (at least minPacketRoom, the least PacketSize leaves). A
// larger PacketSize (LoopbackPacketSize, jumbo frames) sends larger
// single datagrams, not larger fragments: a frame sent in fragments stays
// within maxFragments of the default's datagrams (about 21 KiB, sent
// twice), which a stock Linux socket buffer of 208 KiB holds with room
// to spare (16 fragments of 8 KiB, twice, filled most of it: found by
// review), and which members of releases before 2026-12-01, which refuse
// a fragment larger than their own packet size, still take. Larger
// anti-entropy frames go over a stream, as before.
func (r *Replicator) fragmentSize() int {
	own := r.datagramRoom() - fragmentHead(r.cfg.Name)
	std := r.cfg.roomAt(defaultPacketSize) - fragmentHead(r.cfg.Name)
	return min(own, max(std, minPacketRoom))
}

// fragmentHead is what a fragment of the member named name adds to its
// share of a frame: the call's header (see appendCall) and the
// fragment's number and count.
func fragmentHead(name string) int { return (2 + len(name) + 1 + 8) + 2 }

// sendFragments sends frame to peer as fragments, if it is an
// anti-entropy frame of at most maxFragments datagrams; false if not.
func (r *Replicator) sendFragments(to *memberlist.Node, kind wire.Kind, frame []byte) bool {
	size := r.fragmentSize()
	count := (len(frame) + size - 1) / size
	if !fragmentable(kind) || count > maxFragments {
		return false
	}
	id := randomSeed() // see reassembly
	frags := make([][]byte, count)
	for i := range frags {
		part := frame[i*size : min((i+1)*size, len(frame))]
		frags[i] = appendCall(nil, r.cfg.Name, callFragment, id, append([]byte{byte(i), byte(count)}, part...))
	}
	// One send error for the frame, if a fragment of it went in neither
	// copy: counted per datagram that failed, a frame of 16 fragments
	// that did not go counted 32, and one whose every fragment went on
	// its second copy counted some (found by review).
	sent := make([]bool, count)
	for range 2 {
		for i, f := range frags {
			if err := r.sendPacket(to, f); err == nil {
				sent[i] = true
			}
		}
	}
	if slices.Contains(sent, false) {
		r.counters.sendErrors.Add(1)
	}
	r.counters.fragmentedFrames.Add(1)
	return true
}

// receivedFragment takes a fragment from peer from and hands the frame on
// once it is whole.
func (r *Replicator) receivedFragment(from string, id uint64, payload []byte) {
	// A fragment is a datagram's worth, also one a peer sent over a stream:
	// at most the largest datagram read, whatever this member's own
	// PacketSize (a peer may send larger ones: see Config.PacketSize).
	if len(payload) < 3 || len(payload) > maxDatagram || payload[1] > maxFragments || payload[0] >= payload[1] {
		r.counters.badFrames.Add(1)
		return
	}
	frame, dropped, refused := r.frags.add(from, id, int(payload[0]), int(payload[1]), payload[2:], time.Now())
	r.counters.fragmentsDropped.Add(uint64(dropped))
	if refused {
		r.counters.badFrames.Add(1)
	}
	if frame == nil {
		// Held: a loop waiting past partialTTL (none held when it began
		// to wait) is kicked, once, to sweep it in time. Without it, a
		// partial frame of a sender gone stayed held until the loop's
		// next event, an anti-entropy interval away on an idle member
		// (found as a flaky test).
		if r.frags.holding() && r.sweepArmed.CompareAndSwap(false, true) {
			select {
			case r.kick <- struct{}{}:
			default:
			}
		}
		return
	}
	if frame[0] == callMarker { // only protocol frames go in fragments
		r.counters.badFrames.Add(1)
		return
	}
	r.received(frame)
}

// expire drops the partial frames older than partialTTL and returns how
// many were unfinished. Called with a.mu held.
func (a *reassembly) expire(now time.Time) (dropped int) {
	for len(a.partials) > 0 && now.Sub(a.partials[0].born) > partialTTL {
		if a.dropOldest() {
			dropped++
		}
	}
	return dropped
}

// dropOldest drops the oldest partial frame and reports whether it was
// unfinished. Called with a.mu held.
func (a *reassembly) dropOldest() bool {
	p := a.partials[0]
	for _, b := range p.parts {
		a.bytes -= len(b)
	}
	a.partials[0] = nil
	a.partials = a.partials[1:]
	return p.parts != nil
}

// dropAt drops the partial frame at i and reports whether it was
// unfinished. Called with a.mu held.
func (a *reassembly) dropAt(i int) bool {
	p := a.partials[i]
	for _, b := range p.parts {
		a.bytes -= len(b)
	}
	a.partials = slices.Delete(a.partials, i, i+1)
	return p.parts != nil
}

// victim returns the index of the partial frame to drop for room: the
// oldest of the sender holding the most frames (byBytes false) or bytes
// (true), counting extra more for from, the sender of the fragment being
// added, and, by bytes, one that holds some, not skip; -1 if there is
// none. So one sender's new frames push out its own, not the others'
// (from all senders together, a member sending a datagram per new frame
// pushed every other member's partial frames out: found by review).
// Called with a.mu held.
func (a *reassembly) victim(from string, extra int, byBytes bool, skip *partial) int {
	held := map[string]int{from: extra}
	for _, q := range a.partials {
		if byBytes {
			held[q.from] += q.size()
		} else {
			held[q.from]++
		}
	}
	most := from
	for i := len(a.partials) - 1; i >= 0; i-- { // ties: the oldest's sender
		if q := a.partials[i]; held[q.from] >= held[most] {
			most = q.from
		}
	}
	for i, q := range a.partials {
		if q.from == most && q != skip && (!byBytes || q.size() > 0) {
			return i
		}
	}
	return -1
}

// holding reports whether partial frames are held.
func (a *reassembly) holding() bool {
	_, ok := a.oldest()
	return ok
}

// oldest returns when the oldest partial frame held arrived, false if
// none is held.
func (a *reassembly) oldest() (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.partials) == 0 {
		return time.Time{}, false
	}
	return a.partials[0].born, true
}

// sweep drops the partial frames past partialTTL, fragments arriving or
// not (they were dropped only when another came: the fragments of
// senders gone stayed held, up to 16 MiB, found by review), counting the
// unfinished ones.
func (r *Replicator) sweepFragments(now time.Time) {
	r.frags.mu.Lock()
	dropped := r.frags.expire(now)
	r.frags.mu.Unlock()
	r.counters.fragmentsDropped.Add(uint64(dropped))
}

// size is the bytes of p's parts held.
func (p *partial) size() (n int) {
	for _, b := range p.parts {
		n += len(b)
	}
	return n
}

// reassembly holds the frames being put back together, oldest first. A
// partial frame is known by its sender's name and the frame's id, which
// the sender draws at random for each frame: a member that saw one of a
// peer's ids could name the next ones while they came from a counter,
// and one datagram of its own under the peer's name, with the next id
// and another count, had every fragment of the peer's real frame refused
// (found by review). Random, a restart's first frames do not meet the
// ids of its last process's either.
type reassembly struct {
	mu       sync.Mutex
	partials []*partial
	bytes    int // held in partials' parts, at most maxPartialBytes
	done     map[string]*doneFrames
}

type partial struct {
	from  string
	id    uint64
	parts [][]byte // nil once dropped as too large: its other fragments are ignored
	have  int
	born  time.Time
}

// doneFrames are the ids of the last doneEach frames a sender's
// fragments made whole, whose copies are ignored. A whole frame was kept
// among the partial frames, for partialTTL and only while others did not
// push it out (a finished frame went first, uncounted): its copies coming
// after that (the sender's second round held up, a network that
// duplicates) made it whole again, and the protocol received it twice,
// to decode it, take its lock and count it stray at best (found by
// review). Ids are random (see reassembly), so a sender's ids are
// remembered, not a mark below which they count as seen, and they are
// remembered however old: a sender's own frames alone push its ids out,
// and doneSenders bounds the senders remembered, the one whose last frame
// came whole longest ago forgotten first. A member holding the key can
// still replay a frame (or any datagram) under a name it fills with
// frames of its own, or once more than doneSenders names are in use:
// the protocol takes each session step once (transport's request and
// reply), whatever comes twice.
type doneFrames struct {
	ids  [doneEach]uint64
	n    int // ids held, the next one written at ids[n%doneEach]
	last time.Time
}

// has reports whether d holds id.
func (d *doneFrames) has(id uint64) bool {
	return slices.Contains(d.ids[:min(d.n, doneEach)], id)
}

// finished reports whether a frame id of from's was made whole (and
// not forgotten since). Called with a.mu held.
func (a *reassembly) finished(from string, id uint64) bool {
	d, ok := a.done[from]
	return ok && d.has(id)
}

// finish remembers that a frame id of from's was made whole at now, first
// forgetting the sender that made one whole longest ago if doneSenders
// are remembered. Called with a.mu held.
func (a *reassembly) finish(from string, id uint64, now time.Time) {
	d, ok := a.done[from]
	if !ok {
		if a.done == nil {
			a.done = map[string]*doneFrames{}
		}
		if len(a.done) >= doneSenders {
			var oldest *doneFrames
			var name string
			for n, o := range a.done {
				if oldest == nil || o.last.Before(oldest.last) {
					oldest, name = o, n
				}
			}
			delete(a.done, name)
		}
		d = &doneFrames{}
		a.done[strings.Clone(from)] = d
	}
	d.ids[d.n%doneEach] = id
	d.n++
	if d.n == 2*doneEach { // the same slot, and no overflow
		d.n = doneEach
	}
	d.last = now
}

// add stores a fragment (copying it: memberlist reuses its buffer) and
// returns the whole frame once every fragment has come, how many partial
// frames it dropped, unfinished, to make room or because they were too
// old, and whether it refused the fragment: its count is not that of the
// frame's first fragment (a forged one, sent first, made every fragment
// of the real frame go without a word: found by review).
func (a *reassembly) add(from string, id uint64, index, count int, part []byte, now time.Time) (frame []byte, dropped int, refused bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	dropped = a.expire(now)
	if a.finished(from, id) { // a copy of a frame made whole
		return nil, dropped, false
	}
	var p *partial
	for _, q := range a.partials {
		if q.from == from && q.id == id {
			p = q
			break
		}
	}
	if p == nil {
		if len(a.partials) >= maxPartial {
			if i := a.victim(from, 1, false, nil); i >= 0 && a.dropAt(i) {
				dropped++
			}
		}
		p = &partial{from: from, id: id, parts: make([][]byte, count), born: now}
		a.partials = append(a.partials, p)
	}
	if p.parts != nil && len(p.parts) != count { // inconsistent
		return nil, dropped, true
	}
	if p.parts == nil || p.parts[index] != nil { // whole already, or a copy
		return nil, dropped, false
	}
	for a.bytes+len(part) > maxPartialBytes {
		i := a.victim(from, len(part), true, p)
		if i < 0 {
			break
		}
		if a.dropAt(i) {
			dropped++
		}
	}
	if a.bytes+len(part) > maxPartialBytes { // its sender's other frames gone, p is too large: it goes
		a.bytes -= p.size()
		p.parts = nil
		return nil, dropped + 1, false
	}
	p.parts[index] = append([]byte(nil), part...)
	a.bytes += len(part)
	if p.have++; p.have < count {
		return nil, dropped, false
	}
	for _, b := range p.parts {
		frame = append(frame, b...)
	}
	// Its copies are ignored by its id (finish), not by its place here,
	// which other frames may take now.
	a.dropAt(slices.Index(a.partials, p))
	a.finish(from, id, now)
	return frame, dropped, false
}
