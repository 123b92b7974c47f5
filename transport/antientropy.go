package transport

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// antiEntropy is both sides of sessions: the one this node started, and
// one responder state per peer that started one with it.
type antiEntropy struct {
	next   int64 // when to start the next session
	active bool
	s      session
	last   session // the last session completed, whose Reject may still come
	turn   int     // offset on the ring of the next peer
	// arrived are members new to the view (joined, restarted, back from
	// the other side of a partition), oldest first: the next sessions go
	// to them, at once.
	arrived []string
	counter uint64
	// resp holds, by peer name, the responder state of a session whose
	// initiator has sent a step with its token; opening, those of the
	// last maxOpenings openings not followed by such a step yet, oldest
	// first. An opening carries no token and may come from anyone with
	// the key under any member's name: it never replaces a session that
	// has shown its token, nor the peer's own opening unless
	// maxOpenings more come before the peer's next step (one forged
	// datagram tore down a live session, and each one after it: found by
	// review). Both hold members of the view when they came, until
	// SessionTimeout passes without a step.
	resp    map[string]*responder
	opening map[string][]*responder
	// answered holds, by peer name, the responder state of the last
	// session each peer completed with this node, until SessionTimeout
	// after: the initiator's answers to this node's last Reject come
	// after the end (see receiveReject).
	answered map[string]*responder
	// joined is when each member of the view came into it (SetMembers):
	// an opening that has shown no token makes this node yield to its
	// sender only within arrivalYield of that (see yields).
	joined map[string]int64
	// fullOpenings counts, by member of the view, its openings answered
	// with the children of more than maxOpeningParents nodes since it
	// came into the view (see answersInFull).
	fullOpenings map[string]int
	// listing holds, by member of the view, its budget of listing work
	// on crowded leaves (see chargeListing).
	listing map[string]*listingBudget
	// root is whether a session opens with the digest's root alone
	// (OpenWithRoot); hurried whether the next was hurried (Hurry): one a
	// reader waits for opens as an arrival's does.
	root, hurried bool
	lastHurry     int64 // when Hurry last took effect
	// seq numbers the sessions this node starts; pulled holds, by peer in
	// the view, the number of the latest of them with that peer that
	// completed (see Pull).
	seq    uint64
	pulled map[string]uint64
	// unacked is the first sync held back until the responder has
	// acknowledged the records this node pushed in it (see finish); its
	// session is last's, and, with no acknowledgement, it is taken at
	// deadline.
	unacked struct {
		held            bool
		id              uint64
		step            uint32
		peer            string
		start, deadline int64
	}
}

// session is the initiator's side of an exchange.
type session struct {
	wire.Session // ID, the responder's Token once known, and the last Step sent
	peer         string
	seq          uint64 // its number among the sessions this node started
	start        int64  // physical time the session started: the synced mark on completion
	arrival      bool   // the peer had just arrived in the view
	full         bool   // opened at the level of the tree's parity, not with the root alone
	pull         bool   // started by Pull: its steps are sent again sooner (pullRetry)
	pullRTO      int64  // a pull's first retry of its next steps: pullRetry, doubled at each retry (see hasten)
	deadline     int64
	// awaits are the steps whose replies are awaited, oldest first: one
	// Digest, or up to versionsWindow Versions. Each request is sent
	// again (as a new step: the responder answers each step once) at
	// retry if no reply has come, every rto, doubled each time: a
	// datagram lost on the way, or its reply, costs a retry, not the
	// session.
	awaits     []awaited
	retry, rto int64
	leaves     []uint32       // differing leaves not yet asked about
	differing  int            // how many leaves the digests' walk found differing
	idle       int            // replies in a row that moved nothing (see answerRepair)
	reasked    map[uint32]int // how often each leaf was asked about again
	// parts holds the leaves listed in parts (their versions take more
	// than a frame): the first key hash of the part to list next, while
	// the leaf is left to ask about or its part is in flight (see
	// sendVersions).
	parts   map[uint32]uint64
	level   int    // the deepest digest level the responder has sent, -1 for none
	repairs uint64 // the Repairs sent, which the final one counts (see responder)
	pushed1 bool   // a Repair sent in the session carried records (see finish)
	// peerCut and peerCoverage are what the responder reported in its
	// first reply (hasCut says whether it passed the drift check).
	peerCut      crdt.Timestamp
	peerCoverage int64
	hasCut       bool
	// rejects are the steps whose Reject this node has answered (see
	// receiveReject): once each.
	rejects window
	// pushed holds, by leaf, the version of each record this node sent
	// in a Repair of a leaf it then asked about again, while the leaf is
	// asked about again (see answerRepair): at most the records of the
	// leaves of the steps in flight, by reference.
	pushed map[uint32]map[string]pushedRecord
	// closed holds the leaves asked about once more, at most once a
	// session, for records passed over at what was their last ask (see
	// answerRepair).
	closed map[uint32]bool
	// listed holds the versions of listedLeaf, listed for a chunk that
	// left the leaf out, until a later chunk takes them (see
	// sendVersions), once the steps in flight are answered: a listing
	// that old is as a write during the session, which the session
	// tolerates.
	listed     []crdt.Version
	listedLeaf uint32
}

// pushedRecord is a record of a session's pushed set: the version sent,
// how many asks that wanted it again have passed it over since, and how
// many may (see answerRepair).
type pushedRecord struct {
	v             crdt.Version
	skips, budget uint8
}

// maxPushedSkips bounds pushedRecord.budget, which doubles each time the
// record goes again.
const maxPushedSkips = 32

// awaited is a step of a session whose reply is awaited.
type awaited struct {
	step   uint32
	req    wire.Message
	leaves []uint32 // the differing leaves a Versions covers
	// earlier are the step numbers req was sent under before step (it
	// was sent again): a reply to any of them answers it.
	earlier []uint32
}

// answers reports whether a reply to step answers a.
func (a *awaited) answers(step uint32) bool {
	return a.step == step || slices.Contains(a.earlier, step)
}

// versionsWindow is how many Versions steps a session keeps in flight: the
// responder gathers the records of the next chunk of leaves while this
// node applies those of the last. One at a time, a member far behind
// moved a chunk per round trip with one core idle at each end in turn.
const versionsWindow = 2

// responder is the responder's side of an exchange a peer started: enough
// to answer each of the peer's steps once, to require the token it drew,
// and to mark the replica synced at its own time when the exchange
// completes. A peer has at most one that has shown its token, and a few
// openings (see antiEntropy.opening).
type responder struct {
	id       uint64 // the initiator's session id
	token    uint64
	start    int64 // this member's time at the initiator's first message
	deadline int64 // forgotten after SessionTimeout without a message
	seen     window
	// cut and coverage are what the initiator reported in its first
	// message (hasCut says whether it passed the drift check).
	cut      crdt.Timestamp
	coverage int64
	hasCut   bool
	// empty says the initiator's first message showed it holding nothing.
	empty bool
	// repairs counts the initiator's Repairs applied, its final one
	// aside; owed is how many its final one said it sent before it (-1
	// until the final one comes; those applied then, if it said nothing:
	// a release before the count). The session completes on this side
	// once it has them all: a Repair that the final one overtook (a large frame goes on a
	// stream, the small final one as a datagram) or that was lost would
	// otherwise be missing from a session taken as complete, and the
	// roster would take this member for holding records it lacks (found by
	// review: a tombstone collected early rejected a live write).
	repairs, owed int64
	// held are the key hashes this member asked for, in wants that went,
	// while it held a key of the hash (the initiator's version of it
	// newer), until a record of the hash comes: a record of another key is
	// a collision (see collisions), and this member's records of that hash
	// go back in a Reject. Held for every want before the wants' cut, the
	// set filled up on a member far behind, a later collision went unseen,
	// and the session completed without the record (found by review). At
	// most maxHeldWants.
	held map[uint64]struct{}
	// outlived says the initiator restarted after the session began (see
	// antiEntropy.outlived): its completion is no exchange with it.
	outlived bool
	// got says a Repair of the initiator's carried records: the
	// session's completion on this side is acknowledged (see finish),
	// under the final Repair's step, finalStep.
	got       bool
	finalStep uint32
	// answers are the answers of the Rejects sent for the session's
	// steps before the one that completes it, answerBytes their size,
	// while they fit a frame (answersLost once they did not): the
	// acknowledgement carries them again, so that one of those Rejects
	// lost, or overtaken, takes no first sync with the values it drops
	// still served (TestAFirstSyncWaitsForTheRejectsOfEveryRepair).
	answers     []crdt.Record
	answerBytes int
	answersLost bool
	// leavesSent says this member has sent its leaf level in the session:
	// an initiator lists leaves only after it received them. One that
	// lists them before has a tree of fewer levels (a DigestBits other
	// than ours: a node's hash at a level is the same at any depth), took
	// one of our inner levels for its leaves, and named leaves of its own
	// that are other key ranges here: answered, the session completed on
	// both sides with the differences left, each member marked synced
	// (found by review, TestAPeerOfMoreDigestBitsMarksNothingSynced).
	leavesSent bool
}

// maxHeldWants bounds responder.held.
const maxHeldWants = 4 * wire.MaxRecords

// depth returns the number of digest levels below the root.
func (n *Node) depth() int { return n.cfg.Replica.DigestBits() / crdt.FanoutBits }

// maxOpenings bounds the openings kept per peer (see antiEntropy.opening).
const maxOpenings = 4

// arrivalYield is how long after a member came into the view an opening
// of its that shows it empty, before its token has come back, makes this
// node yield to it (see yields).
const arrivalYield = int64(30 * time.Second)

func (n *Node) tickAntiEntropy(out []Envelope, now int64) []Envelope {
	if u := &n.ae.unacked; u.held && now >= u.deadline {
		n.takeUnacked(now, false)
	}
	for peer, r := range n.ae.resp {
		if now >= r.deadline {
			delete(n.ae.resp, peer)
		}
	}
	for peer, r := range n.ae.answered {
		if now >= r.deadline {
			delete(n.ae.answered, peer)
		}
	}
	for peer, rs := range n.ae.opening {
		if rs = slices.DeleteFunc(rs, func(r *responder) bool { return now >= r.deadline }); len(rs) == 0 {
			delete(n.ae.opening, peer)
		} else {
			n.ae.opening[peer] = rs
		}
	}
	if s := &n.ae.s; n.ae.active && (now >= s.deadline || crdt.SubSat(now, s.start) >= n.sessionLife()) {
		n.stats.SessionsTimedOut++
		n.ae.active = false
	}
	n.releaseScratch()
	if s := &n.ae.s; n.ae.active && len(s.awaits) > 0 && now >= s.retry {
		return n.retry(out, now)
	}
	if n.ae.active || (now < n.ae.next && len(n.ae.arrived) == 0) {
		return out
	}
	n.ae.next = crdt.AddSat(now, int64(n.cfg.AntiEntropyInterval))
	hurried := n.ae.hurried
	n.ae.hurried = false
	var peer string
	arrival := len(n.ae.arrived) > 0
	if arrival {
		peer, n.ae.arrived = n.ae.arrived[0], n.ae.arrived[1:]
	} else {
		peer = n.ring.after(n.cfg.Name, peerOffset(n.ae.turn, n.ring.size()))
		n.ae.turn++
	}
	if peer == "" {
		return out
	}
	if n.yields(peer, now) {
		n.stats.SessionsYielded++
		return out
	}
	return n.startSession(out, peer, arrival, arrival || hurried, now)
}

// Hurry makes the next session start at the next Tick, unless one is in
// flight or the last Hurry took effect less than a quarter of the
// interval ago: a host with a reader waiting for a write that has not
// come calls it to pull rather than wait for the interval. (Unbounded,
// readers waiting for a write no member has, with a token forged or of
// another cluster, had a member start an exchange every 20 ms each,
// found by review.)
func (n *Node) Hurry(now int64) {
	n.rebase(now)
	if !n.ae.active && now >= crdt.AddSat(n.ae.lastHurry, int64(n.cfg.AntiEntropyInterval)/4) {
		n.ae.next = min(n.ae.next, now)
		n.ae.hurried = true
		n.ae.lastHurry = now
	}
}

// OpenWithRoot sets whether this node opens its periodic sessions with the
// digest's root alone: a host sets it while every member it knows
// answers such an opening (members of this release; see startSession).
func (n *Node) OpenWithRoot(ok bool) { n.ae.root = ok }

// StartSession starts an anti-entropy session with peer now, abandoning the
// session in flight if there is one. The node starts sessions by itself on
// Tick; tests and tools call this to pick the peer and the moment.
func (n *Node) StartSession(peer string, now int64) []Envelope {
	n.rebase(now)
	if n.ae.active {
		n.stats.SessionsTimedOut++
	}
	return n.startSession(nil, peer, false, false, now)
}

// Pull starts a session with peer now, as StartSession does, and returns
// its number, which Pulled reports on: a host that must know when this
// node holds what peer wrote up to now (a member that leaves asks a peer
// to pull from it: package transport/gossip) starts one and waits.
//
// A pull's steps are sent again after pullRetry, not the session
// timeout's eighth: its host waits a second or two for it, and one
// datagram lost on the way spent half of that (500 ms with the LAN
// timings) before it went again.
func (n *Node) Pull(peer string, now int64) ([]Envelope, uint64) {
	out := n.StartSession(peer, now)
	s := &n.ae.s
	s.pull, s.pullRTO = true, int64(pullRetry)
	s.hasten(now)
	return out, n.ae.seq
}

// pullRetry is the first retry of a pull's steps (see Pull), doubled at
// each retry as every session's is: a pull whose replies take longer to
// gather (a large repair) costs a few copies of a step, not more.
const pullRetry = 100 * time.Millisecond

// hasten brings the retry of a pull's awaited steps down to pullRTO
// after now, if it was later; other sessions keep theirs. pullRTO starts
// at pullRetry and doubles at each retry of the session, for its later
// steps too: reset at each step, a responder whose replies took longer
// than pullRetry (a large repair, a busy leaver) had every step sent
// again, each copy gathered again behind the others, its replies later
// still (TestAPullWithSlowRepliesSendsEachStepAFewTimesAtMost).
func (s *session) hasten(now int64) {
	if s.pull && s.rto > s.pullRTO {
		s.rto = s.pullRTO
		s.retry = crdt.AddSat(now, s.rto)
	}
}

// Pulled reports whether the session Pull numbered seq, or a later one
// this node started with peer, has completed: this node then holds every
// record peer wrote below its clock's reading as it answered that
// session's opening (its cut). False once peer has left the view.
func (n *Node) Pulled(peer string, seq uint64) bool {
	done, ok := n.ae.pulled[peer]
	return ok && done >= seq
}

// Pulling reports whether the session Pull numbered seq is still in
// flight with peer: one that is neither in flight nor Pulled was
// abandoned (a session started since, a yield, a restart) or timed out.
func (n *Node) Pulling(peer string, seq uint64) bool {
	return n.ae.active && n.ae.s.peer == peer && n.ae.s.seq == seq
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

// secret returns an unpredictable 64-bit value, never zero: the n-th of
// this node's session ids and tokens, derived from the host's Seed by
// SipHash-2-4, a keyed function: a peer sees many of a node's ids and
// tokens in its own sessions with it, and they were the record hash of
// a counter, a multiply-fold with the seed in the clear as an operand,
// from which a member holding the key might have worked the seed out,
// and so the ids and tokens of its sessions with others, and answered
// for them (found by review; not shown to be done).
func (n *Node) secret() uint64 {
	for {
		n.ae.counter++
		v := sipWords(n.cfg.Seed, ^n.cfg.Seed, n.ae.counter, uint64(n.cfg.Clock.Node()))
		if v != 0 {
			return v
		}
	}
}

// startSession sends the first digest level. The initiator starts at level
// 1 or 0 so that it is the one to receive the leaf level and learn which
// leaves differ.
//
// With OpenWithRoot, a periodic session opens with the root alone (eight
// bytes of hashes where level 1 took 128) whatever the tree's depth: most
// find nothing different, and the responder's empty answer ends them
// (the responder, to which an opening proves nothing, counts it and no
// more: see receiveDigest). When
// the depth is even, the responder answers a root that differs with its
// own root, at level 0 again (receiveDigest), and the initiator goes on
// from level 1 as it would have opened: one round trip more for a session
// that finds something, so a session with an arrival, which differs,
// opens at level 1 as before (full), and so does one a reader waits for.
func (n *Node) startSession(out []Envelope, peer string, arrival, full bool, now int64) []Envelope {
	n.ae.active = true
	n.ae.seq++
	n.ae.s = session{Session: wire.Session{ID: n.secret()}, seq: n.ae.seq, peer: peer, start: now, arrival: arrival, full: full, level: -1}
	n.stats.SessionsStarted++
	level := uint8((n.depth() + 1) % 2)
	if n.ae.root && !full {
		level = 0
	}
	var parents []uint32
	if level == 1 {
		parents = []uint32{0}
	}
	// The cut is read before the hashes, as the responder reads its own:
	// a write stamped below the cut is then in the hashes unless it was
	// applied after them, more than StableMargin after it was stamped
	// (read after them, a write stamped and applied between the two was
	// left out with no stall at all, and only the margin covered it).
	cut := n.reportCut()
	out = n.ask(out, &wire.Digest{Level: level, Parents: parents, Hashes: n.cfg.Replica.AppendHashes(nil, int(level), parents),
		Cut: cut, Coverage: n.roster.coverage(now)}, nil, now)
	if s := &n.ae.s; arrival && s.rto > int64(arrivalRetry) {
		s.rto = int64(arrivalRetry)
		s.retry = crdt.AddSat(now, s.rto)
	}
	return out
}

// A session ends, counted as timed out, after maxIdleReplies replies in a
// row that moved nothing, when a leaf is asked about again more than
// maxReasks times, or maxSessionLife session timeouts after it
// started however its replies come (a far-behind member's catch-up that
// takes longer goes on in the next session, from where this one left it).
const (
	maxIdleReplies = 3
	maxReasks      = 64
	maxSessionLife = 64
)

// sessionLife is the longest a session lasts, maxSessionLife timeouts
// (saturated: a timeout of years must not wrap it below zero).
func (n *Node) sessionLife() int64 {
	if t := int64(n.cfg.SessionTimeout); t <= math.MaxInt64/maxSessionLife {
		return t * maxSessionLife
	}
	return math.MaxInt64
}

// arrivalRetry is when the opening message of a session with a member
// that just arrived is first sent again: that member often does not see
// this one in its view yet when the message comes, and drops it (in two
// runs of 36, a member joining a cluster of 10,000 keys waited the usual
// first retry, 500 ms with LAN timings, for what otherwise took 0.1 s).
// Later steps, and other sessions, keep firstRetry: their replies may
// take longer than this to gather.
const arrivalRetry = 50 * time.Millisecond

// peerCut checks a cut a peer reported: it passes the clock's drift check
// (and moves the clock past it) or is not counted.
func (n *Node) peerCut(cut crdt.Timestamp) bool {
	return cut.Node != 0 && n.cfg.Clock.Update(cut) == nil
}

// ask sends the next step of the session in flight, one that awaits a
// reply (a Digest, or a Versions covering leaves).
func (n *Node) ask(out []Envelope, m wire.Message, leaves []uint32, now int64) []Envelope {
	s := &n.ae.s
	s.awaits = append(s.awaits, awaited{step: n.nextStep(m), req: m, leaves: leaves})
	s.deadline = crdt.AddSat(now, int64(n.cfg.SessionTimeout))
	s.rto = firstRetry(n.cfg.SessionTimeout)
	s.retry = crdt.AddSat(now, s.rto)
	s.hasten(now)
	return n.send(out, m, s.peer)
}

// firstRetry is how long a step waits for its reply before it is sent
// again: an eighth of the session timeout, from 1 ms to 500 ms. The ceiling
// matters with long intervals (an hour's gives a 4-hour timeout): a
// member's first session with one that just arrived often reaches it
// before it sees the sender in its view, and is dropped there. There is
// no floor to speak of: one of 50 ms, past the timeout of 20 ms the scale simulator
// runs (and past a third of any below 150 ms), had no step sent again
// before its session timed out, and every frame lost cost the session,
// walked again from the root at the next; at 50% loss 5 members took
// 15,000 rounds to agree, at 70% none agreed (found by review,
// TestSimulatorAgreesUnderHeavyLoss).
func firstRetry(timeout time.Duration) int64 {
	return int64(max(min(timeout/8, 500*time.Millisecond), time.Millisecond)) // a millisecond at least: a timeout of a few nanoseconds retried at every tick
}

// backoff returns the wait before the next retry of steps last waited
// for rto: twice as long, or, for a Digest (a digest level, whose answer
// gathers hashes alone, at most a frame's), at most firstRetry, so that
// one is sent up to eight times before the timeout rather than four.
// Each digest level is a step a session under loss must get through, its
// chance the product of theirs: at 70% loss a round trip arrives 9
// times in 100, and a level 31 in 100 with four tries, 53 with eight.
// Versions and pulls keep doubling: their answers gather records, and a
// responder slow to gather them had every copy gathered again.
func (n *Node) backoff(rto int64, req wire.Message) int64 {
	next := crdt.AddSat(rto, rto) // saturated, as every time sum
	if _, digest := req.(*wire.Digest); digest && !n.ae.s.pull {
		next = max(min(next, firstRetry(n.cfg.SessionTimeout)), rto)
	}
	return next
}

// retry sends the awaited steps' requests again, each as a new step (a
// reply to the earlier one still answers it); the opening message (step
// 1, which only a token of zero may carry) starts a new session instead.
// The session's deadline stays: retries only fill it.
func (n *Node) retry(out []Envelope, now int64) []Envelope {
	s := &n.ae.s
	n.stats.StepsRetried++
	if s.awaits[0].step == 1 {
		deadline, rto, pull, seq := s.deadline, s.rto, s.pull, s.seq
		n.stats.SessionsStarted-- // the same session, in effect
		out = n.startSession(out, s.peer, s.arrival, s.full, now)
		s = &n.ae.s
		// Its number too: a pull's host waiting on Pulling took the
		// opening sent again for its session abandoned, and started
		// another.
		s.deadline, s.rto, s.pull, s.seq = deadline, n.backoff(rto, s.awaits[0].req), pull, seq
		s.pullRTO = s.rto
		s.retry = crdt.AddSat(now, s.rto)
		return out
	}
	s.rto = n.backoff(s.rto, s.awaits[0].req)
	s.retry = crdt.AddSat(now, s.rto)
	if s.pull {
		s.pullRTO = max(s.pullRTO, s.rto)
	}
	for i := range s.awaits {
		a := &s.awaits[i]
		a.earlier = append(a.earlier, a.step)
		a.step = n.nextStep(a.req)
		if v, ok := a.req.(*wire.Versions); ok && v.Prints && !n.ListsPrints(s.peer) {
			// The host said since the first copy that the peer takes no
			// prints (a member of a release before, under its name): the
			// copy goes without them, which it would refuse as malformed.
			v.Prints = false
			for i := range v.Versions {
				v.Versions[i].Print = 0
			}
		}
		out = n.send(out, a.req, s.peer)
	}
	return out
}

// nextStep stamps m with the session and its next step number.
func (n *Node) nextStep(m wire.Message) uint32 {
	s := &n.ae.s
	s.Step++
	switch m := m.(type) {
	case *wire.Digest:
		m.Session = s.Session
	case *wire.Versions:
		m.Session = s.Session
	case *wire.Repair:
		m.Session = s.Session
	}
	return s.Step
}

// reply reports whether m, from peer from, answers an awaited step of
// this node's session in flight, and returns that step, no longer
// awaited; the first reply also brings the responder's token. A
// duplicate, late or stray reply is counted and ignored.
func (n *Node) reply(from string, m wire.Session, now int64) (awaited, bool) {
	s := &n.ae.s
	i := n.awaitedBy(from, m)
	if i < 0 {
		n.stats.Stray++
		return awaited{}, false
	}
	a := s.awaits[i]
	s.awaits = slices.Delete(s.awaits, i, i+1)
	s.Token = m.Token
	s.deadline = crdt.AddSat(now, int64(n.cfg.SessionTimeout))
	if len(s.awaits) > 0 {
		// The steps still awaited go again from here as a step asked now
		// would (ask): their retry, doubled at each copy, stayed where it
		// was, and at 8 first retries (a timeout of 4 s or less) a step
		// refused by the responder's listing budget right after it
		// answered this one went again at the new deadline, too late,
		// and the session timed out (found by review,
		// TestTheLastStepRefusedByTheBudgetIsSentAgainInTime). From here,
		// one copy comes past listingPause and before the timeout.
		s.rto = firstRetry(n.cfg.SessionTimeout)
		s.retry = crdt.AddSat(now, s.rto)
		s.hasten(now)
	}
	return a, true
}

// awaitedBy returns the index in the session's awaits of the step that m,
// from peer from, answers, or -1 if it answers none (see reply).
func (n *Node) awaitedBy(from string, m wire.Session) int {
	s := &n.ae.s
	i := slices.IndexFunc(s.awaits, func(a awaited) bool { return a.answers(m.Step) })
	if !n.ae.active || s.peer != from || s.ID != m.ID || i < 0 ||
		m.Token == 0 || (s.Token != 0 && m.Token != s.Token) {
		return -1
	}
	return i
}

// finish ends the session in flight as completed: the replica is synced
// at the session's start, and the roster learns the responder's cut. The
// responder's Reject of the final answer may still come: the session is
// kept as the last one until its deadline.
//
// A first sync in which this node pushed records waits for that Reject:
// the responder may reject the records (values whose deletes it
// collected, held by a member restored from a snapshot older than the
// horizon), and its answers, the deletes, come in the Reject. Taken as
// the session ended, a restored member was synced (WaitSynced returned,
// ready) while it served those values, for a round trip, or, the Reject
// lost, until its next session (found by review,
// TestARestoredMemberServesNoCollectedDeleteOnceSynced). A responder
// acknowledges a final Repair of a session that carried records with a
// Reject, carrying again the answers of the session's earlier Repairs
// (a Reject of one of them lost, or overtaken by the acknowledgement,
// left the values it drops served once synced:
// TestAFirstSyncWaitsForTheRejectsOfEveryRepair), empty if it rejects
// nothing (one of an earlier release sends
// none: the first sync is then taken at the session's deadline, as it is
// when the acknowledgement is lost).
func (n *Node) finish(now int64) {
	s := &n.ae.s
	n.cfg.Replica.MarkSynced(s.start)
	if s.hasCut {
		n.roster.completed(s.peer, s.peerCut, s.peerCoverage, s.start, now)
	}
	n.stats.SessionsCompleted++
	n.stats.countDiffering(s.differing)
	n.ae.active = false
	s.pushed = nil // only the session in flight reads it
	n.ae.last = *s
	if s.pushed1 && n.firstSync == 0 {
		n.ae.unacked.held = true
		n.ae.unacked.id, n.ae.unacked.step, n.ae.unacked.peer = s.ID, s.Step, s.peer
		n.ae.unacked.start, n.ae.unacked.deadline = s.start, s.deadline
	} else {
		n.exchanged(s.peer, s.start, now)
	}
	if _, ok := n.ring.pos[s.peer]; ok {
		if n.ae.pulled == nil {
			n.ae.pulled = map[string]uint64{}
		}
		n.ae.pulled[s.peer] = s.seq
	}
}

// takeUnacked takes the first sync held back (see finish), acknowledged
// or at its deadline.
func (n *Node) takeUnacked(now int64, acked bool) {
	u := &n.ae.unacked
	u.held = false
	first := n.firstSync == 0
	n.exchanged(u.peer, u.start, now)
	if first && n.firstSync != 0 {
		n.firstUnacked = !acked
	}
}

// abandon ends the session in flight as abandoned, for a reply that
// cannot be its answer: counted with the timed out (Started is Completed,
// TimedOut and those Yielded after they started; three such endings were
// counted nowhere: found by review).
func (n *Node) abandon() {
	n.stats.Stray++
	n.stats.SessionsTimedOut++
	n.ae.active = false
}

// responded ends a session a peer started with this node as completed,
// on this side.
func (n *Node) responded(from string, r *responder, now int64) {
	n.cfg.Replica.MarkSynced(r.start)
	if r.hasCut {
		n.roster.completed(from, r.cut, r.coverage, r.start, now)
	}
	delete(n.ae.resp, from)
	r.held = nil // what is kept is for receiveReject's checks
	r.deadline = crdt.AddSat(now, int64(n.cfg.SessionTimeout))
	n.ae.answered[from] = r // for the initiator's answers to this node's last Reject (see receiveReject)
	n.stats.SessionsResponded++
	if !r.outlived {
		n.exchanged(from, r.start, now)
	}
}

// request reports whether m, from peer from, is a new step of an exchange
// that peer started, and returns its responder state. A peer's first
// message (a Digest with token zero, step 1: opens says so) opens one,
// replacing any other opening of that peer's, but not its session that
// has shown its token (see antiEntropy.opening); every later one must
// carry the token drawn then and a step not answered yet. The first such
// step makes its session the peer's, in place of the one before. Peers
// outside the membership view are not answered.
func (n *Node) request(from string, m wire.Session, opens bool, now int64) (*responder, bool) {
	if _, member := n.ring.pos[from]; !member || from == n.cfg.Name {
		n.stats.Stray++
		return nil, false
	}
	var r *responder
	cur, opened := n.ae.resp[from], n.ae.opening[from]
	i := slices.IndexFunc(opened, func(o *responder) bool { return o.id == m.ID })
	switch {
	case opens && m.Token == 0 && m.Step == 1:
		if cur != nil && cur.id == m.ID || i >= 0 {
			n.stats.Stray++ // the first message again
			return nil, false
		}
		r = &responder{id: m.ID, token: n.secret(), start: now, owed: -1}
		if len(opened) == maxOpenings {
			opened = opened[1:]
		}
		n.ae.opening[from] = append(opened, r)
	case cur != nil && cur.id == m.ID && cur.token == m.Token:
		r = cur
	case i >= 0 && opened[i].token == m.Token:
		r = opened[i]
		// The openings before it are older, or not the peer's; one after
		// it may be the peer's next (a late step of a session the peer
		// gave up on, overtaken by its next opening: dropped, that session
		// waited for its timeout, found by review).
		if rest := opened[i+1:]; len(rest) > 0 {
			n.ae.opening[from] = rest
		} else {
			delete(n.ae.opening, from)
		}
		n.ae.resp[from] = r
	default:
		n.stats.Stray++
		return nil, false
	}
	if !r.seen.first(uint64(m.Step)) {
		n.stats.Stray++
		return nil, false
	}
	r.deadline = crdt.AddSat(now, int64(n.cfg.SessionTimeout))
	return r, true
}

// outlived marks the sessions peer started with this node as begun
// before peer restarted (Restarted) or left the view (SetMembers): each
// may be an old process's, whose late frame (a stream's bytes delivered
// after it died) completed it once the new process was in the view, and
// LastSyncs and FirstSync showed an exchange with the new process, which
// had exchanged nothing (found by review,
// TestOldProcessSessionIsNoExchangeWithTheNew). They go on (one may be
// the new process's, opened before the host learned of the restart:
// dropped, its steps were stray and it waited for its timeout) and their
// records count, but their completion is no exchange with the member.
func (ae *antiEntropy) outlived(peer string) {
	if r := ae.resp[peer]; r != nil {
		r.outlived = true
	}
	for _, r := range ae.opening[peer] {
		r.outlived = true
	}
}

// dropOpening forgets r, an opening of peer's.
func (n *Node) dropOpening(peer string, r *responder) {
	if rest := slices.DeleteFunc(n.ae.opening[peer], func(o *responder) bool { return o == r }); len(rest) > 0 {
		n.ae.opening[peer] = rest
	} else {
		delete(n.ae.opening, peer)
	}
}

// answer stamps a reply to step of the responder's session.
func answer(r *responder, step uint32) wire.Session {
	return wire.Session{ID: r.id, Token: r.token, Step: step}
}

// yields reports whether this node leaves the exchange with peer to the
// session peer has in progress with it: peer held nothing when it
// started, and this node holds something. Such a session moves every
// record of ours, each gathered once while the peer applies the last
// chunk; a second one, ours, started as both saw the other arrive, moved
// most of them again (a joiner received 1.4 to 1.7 records per key). The
// empty side never yields, so one of the two always proceeds. An opening
// counts before its token has come back (yielding on its next step came
// too late, once the digests were compared), but only within
// arrivalYield of the peer's coming into the view (joined, restarted,
// back): an empty member is one that just came. Past that, only a session
// that has shown its token counts: a member with the key that forged
// empty openings under every peer's name, one per peer and session
// timeout, stopped every session this node started, and, since a session
// found in step at its opening marks nothing on its responder, froze this
// node's stable bound and every other's (found by review). Within the
// window, such forgeries still stop this node's sessions with the peer
// that just came, for that window.
func (n *Node) yields(peer string, now int64) bool {
	r := n.ae.resp[peer]
	if opened := n.ae.opening[peer]; len(opened) > 0 && crdt.SubSat(now, n.ae.joined[peer]) < arrivalYield {
		r = opened[len(opened)-1] // the peer's latest, though it has shown no token yet
	}
	return !n.noYield && r != nil && r.empty && now < r.deadline &&
		n.cfg.Replica.AppendHashes(nil, 0, nil)[0] != emptyLeaf
}

// receiveDigest compares the peer's nodes with ours and answers with our
// children of those that differ, or learns the differing leaves.
func (n *Node) receiveDigest(from string, m *wire.Digest, now int64) []Envelope {
	if n.ae.active && n.ae.s.peer == from && n.ae.s.ID == m.ID {
		return n.initiatorDigest(m, now)
	}
	if m.Token == 0 && n.ae.active && n.ae.s.peer == from && n.ae.s.differing > 0 {
		// Our own session with this peer has found what differs and is
		// moving it, both ways: a second one now would move it again. A
		// member that joined a holder of a million keys, its opening lost
		// or late while the holder's session went past its digests,
		// received 1.34 records a key, and took twice as long. The peer
		// sends its opening again later, its retries backing off, and
		// finds little to do once ours has ended.
		n.stats.OpeningsDeferred++
		return nil
	}
	if m.Token == 0 && (m.Level > 1 || m.Level == 1 && !slices.Equal(m.Parents, []uint32{0})) {
		// An opening is the root, or level 1 under it (startSession): one
		// deeper, which needs no token, had the whole leaf level sent to
		// the member it names, 16 times its own size (found by review).
		n.stats.Stray++
		return nil
	}
	r, ok := n.request(from, m.Session, true, now)
	if !ok {
		return nil
	}
	reply := &wire.Digest{Session: answer(r, m.Step), Level: m.Level + 1}
	opening := m.Token == 0
	if opening {
		r.cut, r.coverage, r.hasCut = m.Cut, m.Coverage, n.peerCut(m.Cut)
		reply.Cut, reply.Coverage = n.reportCut(), n.roster.coverage(now)
		r.empty = len(m.Hashes) > 0 && !slices.ContainsFunc(m.Hashes, func(h uint64) bool { return h != emptyLeaf })
		if s := &n.ae.s; n.ae.active && s.peer == from && s.differing == 0 && n.yields(from, now) {
			n.stats.SessionsYielded++ // still comparing digests: nothing moved yet
			n.ae.active = false
		}
	}
	if len(m.Hashes) == 0 { // the initiator found nothing different in our reply
		if opening { // there was no reply: an empty opening proves nothing
			n.stats.Stray++
			n.dropOpening(from, r)
			return nil
		}
		n.responded(from, r, now)
		return nil
	}
	diff, ok := n.diffHashes(m)
	switch {
	case !ok, int(m.Level) >= n.depth(): // only the initiator may receive the leaf level
		n.stats.Stray++
		return nil
	case len(diff) == 0 && opening:
		// In step, but an opening carries no token: anyone with the key
		// who knows our root (a member in step with us, or one that asked
		// us for it in a session of its own) may have sent it under
		// another's name. It completes here as a count alone: completed
		// as a session, it marked this member synced, took its cut for
		// the named member's (moving the stable bound) and its time for
		// an exchange with it (found by review). This member's own
		// sessions do those; the initiator finishes on our empty reply.
		n.stats.SessionsResponded++
		n.dropOpening(from, r)
	case len(diff) == 0:
		n.responded(from, r, now)
	case opening && m.Level == 0 && n.depth()%2 == 0,
		opening && m.Level == 1 && len(diff) > maxOpeningParents && !n.answersInFull(from, now):
		// A root alone where the initiator would have opened at level 1
		// (startSession): our root, at level 0 again, so that the
		// initiator goes on from level 1 and receives the leaf level.
		//
		// So too a level-1 opening that differs under more than
		// maxOpeningParents nodes: it carries no token, and anyone with
		// the key may send one under any member's name, whose children
		// of every node (256 hashes, 2,164 bytes) went to the member it
		// named for its 16 hashes (173 bytes; 147 at least), 12.5 to 15
		// times its size (found by review). Our root goes instead, and
		// the initiator goes on from level 1 with the token, a round trip
		// more, as a root opening does; at most maxOpeningParents nodes'
		// children are at most 3.9 times the least opening. Except for
		// the first arrivalOpenings such openings of a member that came
		// into the view within arrivalYield (see answersInFull): an
		// arrival's session, which differs everywhere, opens at level 1
		// to save that round trip.
		reply.Level, reply.Hashes = 0, n.cfg.Replica.AppendHashes(nil, 0, nil)
	default:
		if opening && len(diff) > maxOpeningParents {
			n.ae.fullOpenings[from]++ // an arrival's (see answersInFull)
		}
		reply.Parents = diff
		reply.Hashes = n.cfg.Replica.AppendHashes(nil, int(m.Level)+1, diff)
		r.leavesSent = r.leavesSent || int(reply.Level) == n.depth()
	}
	return n.send(nil, reply, from)
}

// maxOpeningParents is how many nodes of level 1 an opening, which
// carries no token, may differ under for its answer to carry their
// children; past it, the answer is the root alone (see receiveDigest),
// unless answersInFull.
const maxOpeningParents = 4

// arrivalOpenings is how many openings of a member differing under more
// than maxOpeningParents nodes are answered with those nodes' children
// within arrivalYield of its coming into the view (see answersInFull).
const arrivalOpenings = 4

// answersInFull reports whether an opening of from at level 1 that
// differs under more than maxOpeningParents nodes is answered with their
// children, not with the root alone: from came into the view (joined,
// restarted, back) within arrivalYield, and fewer than arrivalOpenings
// such openings of its were answered so since. An arrival's session
// differs everywhere and opens at level 1 to save the root's round trip
// (startSession); its opening is sent again if its answer is lost. The
// count bounds what openings forged under an arrival's name draw, 2 KB
// each, to a few, where a window alone let them draw 12.5 times their
// bytes for its 30 seconds.
func (n *Node) answersInFull(from string, now int64) bool {
	return crdt.SubSat(now, n.ae.joined[from]) < arrivalYield && n.ae.fullOpenings[from] < arrivalOpenings
}

// initiatorDigest handles the responder's digest reply.
func (n *Node) initiatorDigest(m *wire.Digest, now int64) []Envelope {
	s := &n.ae.s
	first := s.Token == 0
	if a, ok := n.reply(s.peer, m.Session, now); !ok {
		return nil
	} else if _, digest := a.req.(*wire.Digest); !digest {
		n.abandon() // a Digest answering a Versions
		return nil
	}
	if first {
		s.peerCut, s.peerCoverage, s.hasCut = m.Cut, m.Coverage, n.peerCut(m.Cut)
	}
	// Each reply goes a level deeper than the last (a root at level 0
	// may come first: see receiveDigest), so a walk ends within the
	// tree's depth: a responder that sent the same level again and again
	// held the session, and so every session of this node, for ever.
	if int(m.Level) <= s.level {
		n.abandon()
		return nil
	}
	s.level = int(m.Level)
	if len(m.Hashes) == 0 { // the responder found nothing different
		n.finish(now)
		return nil
	}
	diff, ok := n.diffHashes(m)
	switch {
	case !ok:
		n.abandon()
		return nil
	case len(diff) == 0:
		// Nothing differs: an empty digest says so, at the next level, or
		// at the leaf level itself past it (a 24-bit tree's level 7 is no
		// level the codec takes, and the responder never heard the
		// exchange was over; found by review).
		out := n.send(nil, &wire.Digest{Session: n.stepOf(), Level: min(m.Level+1, uint8(n.depth()))}, n.ae.s.peer)
		n.finish(now)
		return out
	case int(m.Level) < n.depth():
		hashes := n.cfg.Replica.AppendHashes(nil, int(m.Level)+1, diff)
		return n.ask(nil, &wire.Digest{Level: m.Level + 1, Parents: diff, Hashes: hashes}, nil, now)
	}
	n.ae.s.leaves, n.ae.s.differing = diff, len(diff)
	return n.sendVersions(nil, now)
}

// stepOf returns the session stamped with a new step, for a message that
// awaits no reply.
func (n *Node) stepOf() wire.Session {
	n.ae.s.Step++
	return n.ae.s.Session
}

// diffHashes returns the nodes at m.Level whose hashes differ from ours; ok
// is false when m does not fit our tree. The codec has checked that the
// parents are strictly ascending nodes of the level above, so the work is
// bounded by the size of our tree.
func (n *Node) diffHashes(m *wire.Digest) (diff []uint32, ok bool) {
	level := int(m.Level)
	if level > n.depth() {
		return nil, false
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

// emptyLeaf is the digest hash of a leaf, or any node, that holds nothing.
var emptyLeaf = crdt.TreeNode{}.Hash()

// sendVersions sends our versions in the next chunks of differing leaves,
// as many as the window has room for. A chunk is LeavesPerStep leaves, or
// fewer if their versions would not fit a frame (keyVersionRoom bytes
// each): a chunk of a replica of tens of millions of keys failed to encode
// at every retry, and no session with it completed (found by review).
//
// A leaf whose versions alone take more than a frame is listed in parts,
// each a range of its key hashes (wire.Versions.Part), one part in flight
// at a time, the next once the last is answered in full (answerRepair):
// listed whole, it failed to encode at every try, and no session that
// reached it completed (a caller can choose keys into one leaf: the hash
// is public; found by review).
func (n *Node) sendVersions(out []Envelope, now int64) []Envelope {
	s := &n.ae.s
	prints := n.ListsPrints(s.peer)
	frame, per := n.codec.Limits().MaxFrame, keyVersionRoom
	if prints {
		per = printedVersionRoom
	}
	room := leafVersionsRoom(frame, prints)
	crowded, work := n.crowdedListing(), 0
	defer func() { n.chargeListing(s.peer, work, now) }() // see receiveRepair
	for len(s.leaves) > 0 && len(s.awaits) < versionsWindow {
		m := &wire.Versions{Prints: prints}
		var vs []crdt.Version
		for _, leaf := range s.leaves[:min(len(s.leaves), n.cfg.LeavesPerStep)] {
			// A leaf listed by a chunk that left it out is not listed
			// again: each crowded leaf after others in a chunk was listed
			// twice, and charged twice to the peer (found by review,
			// TestACrowdedLeafAfterOthersIsListedOnce).
			if s.listed != nil && s.listedLeaf == leaf {
				vs, s.listed = s.listed, nil
			} else {
				vs = n.cfg.Replica.AppendVersions(vs[:0], leaf)
				if len(vs) > crowded {
					work += len(vs)
				}
			}
			if _, listing := s.parts[leaf]; listing || len(vs) > room {
				if len(m.Leaves) == 0 {
					n.partOf(m, leaf, vs, room)
				} else {
					s.listed, s.listedLeaf = vs, leaf // the next chunk's, alone
				}
				break // alone in its step
			}
			// Each leaf takes its index and its count (8 bytes) besides its
			// versions: counted by versions alone, a chunk of many leaves
			// of few versions overflowed a frame under about 88 KB (which
			// a digest of 8 or 12 bits allows), failed to encode at every
			// retry, and no session completed (found by review,
			// TestVersionsOfManyLeavesFitTheFrame).
			if len(m.Leaves) > 0 && (len(m.Versions)+len(vs))*per+(len(m.Leaves)+1)*leafRoom+versionsHeader > frame {
				s.listed, s.listedLeaf = vs, leaf
				break // the next chunk's
			}
			before := len(m.Versions)
			m.Versions = appendKeyVersions(m.Versions, vs, nil, prints, s.ID)
			m.Leaves = append(m.Leaves, leaf)
			m.Counts = append(m.Counts, uint32(len(m.Versions)-before))
		}
		k := len(m.Leaves)
		chunk := s.leaves[:k:k]
		s.leaves = s.leaves[k:]
		out = n.ask(out, m, chunk, now)
	}
	return out
}

// partOf makes m list the next part of leaf, whose versions are vs: from
// the first key hash left to list (s.parts), room versions, through the
// last of them, or through the leaf's end when no more are left.
func (n *Node) partOf(m *wire.Versions, leaf uint32, vs []crdt.Version, room int) {
	s := &n.ae.s
	first, last := leafHashes(leaf, n.cfg.Replica.DigestBits())
	from, ok := s.parts[leaf]
	if !ok {
		from = first
		if s.parts == nil {
			s.parts = map[uint32]uint64{}
		}
		s.parts[leaf] = from
	}
	kvs := appendKeyVersions(nil, vs, &wire.KeyRange{From: from, Through: last}, m.Prints, s.ID)
	through := last
	if len(kvs) > room {
		kvs = kvs[:room]
		through = kvs[room-1].KeyHash
	}
	m.Leaves, m.Counts, m.Versions = []uint32{leaf}, []uint32{uint32(len(kvs))}, kvs
	m.Part = &wire.KeyRange{From: from, Through: through}
}

// leafVersionsRoom is how many versions of one leaf (a part, or a leaf
// alone in its step) a Versions frame of frame bytes holds, with the
// frame's header, session, leaf, count and part beside them. A leaf of
// more is listed in parts of as many. Counted as frame / per, as before,
// it left those out: the 3 bytes each version spares (29 encoded, 33
// with its print) covered them only in frames of about 768 bytes or more,
// and under that (a 4-bit digest allows frames down to 228 bytes) a part
// failed to encode at every retry and no session that reached the leaf
// completed (found by review, TestACrowdedLeafFitsTheLeastFrames). It is
// 4 at least: Config refuses a frame under digestFrame of the least
// digest, 228 bytes, which holds 4 printed versions.
func leafVersionsRoom(frame int, prints bool) int {
	per := keyVersionRoom
	if prints {
		per = printedVersionRoom
	}
	return (frame - versionsHeader - leafRoom) / per
}

// leafHashes returns the first and last key hashes of leaf, of a digest of
// bits.
func leafHashes(leaf uint32, bits int) (first, last uint64) {
	first = uint64(leaf) << (64 - bits)
	return first, first | (1<<(64-bits) - 1)
}

// nextPart moves a leaf listed in parts on, once part, its last one, was
// answered in full: to the next part, left to ask about, or out of parts
// after the leaf's last.
func (n *Node) nextPart(leaf uint32, part *wire.KeyRange) {
	s := &n.ae.s
	if _, last := leafHashes(leaf, n.cfg.Replica.DigestBits()); part.Through >= last {
		delete(s.parts, leaf)
		return
	}
	s.parts[leaf] = part.Through + 1
	delete(s.reasked, leaf) // a new part's asks
	// And its one ask more for records passed over at its last (see
	// answerRepair): kept for the leaf, only its first part had it, and a
	// Repair lost before a later part's last ask left its records to the
	// next session (TestEachPartOfACrowdedLeafIsClosedOnce).
	delete(s.closed, leaf)
	s.leaves = mergeLeaves([]uint32{leaf}, s.leaves)
}

// keyVersionRoom is the room a key's version takes in a Versions frame,
// rounded up (29 bytes) to leave the frame's header and lists room, and
// printedVersionRoom the same with its print (33 bytes).
const (
	keyVersionRoom     = 32
	printedVersionRoom = 36
)

// leafRoom is the room a leaf takes in a Versions frame besides its
// versions (its index and its count), and versionsHeader the most the
// frame's header, session, part and lists' headers take.
const (
	leafRoom       = 8
	versionsHeader = 64
)

// appendKeyVersions appends vs as key-hash versions sorted by key hash.
// Versions are matched by key hash, so two keys of one hash (a 64-bit
// collision, which a caller choosing keys can find with work) are listed
// once, as collided: the side that compares then sends every record of
// that hash it holds and asks for every one the other holds (see
// compareVersions). Listed as one of them, as before, the other was never
// repaired (found by review).
//
// With in, only the versions of key hashes in that range (a part of a
// leaf: those outside are left out before the sort, which a crowded
// leaf's parts would each pay for the whole leaf). With prints, each
// version carries its key's print, keyed by seed, the session's id (see
// printKey; a collided one none).
func appendKeyVersions(dst []wire.KeyVersion, vs []crdt.Version, in *wire.KeyRange, prints bool, seed uint64) []wire.KeyVersion {
	start := len(dst)
	for _, v := range vs {
		if h := crdt.HashKey(v.Key); in == nil || in.Holds(h) {
			kv := wire.KeyVersion{KeyHash: h, Time: v.Time, Tombstone: v.Tombstone}
			if prints {
				kv.Print = printKey(seed, v.Key)
			}
			dst = append(dst, kv)
		}
	}
	group := dst[start:]
	slices.SortFunc(group, func(a, b wire.KeyVersion) int { return cmp.Compare(a.KeyHash, b.KeyHash) })
	kept := group[:0]
	for _, kv := range group {
		if n := len(kept); n > 0 && kept[n-1].KeyHash == kv.KeyHash {
			kept[n-1] = wire.KeyVersion{KeyHash: kv.KeyHash, Time: collided}
			continue
		}
		kept = append(kept, kv)
	}
	return dst[:start+len(kept)]
}

// collided is the time a version list gives a key hash that two or more
// of the sender's keys share: the least there is, so that a peer of a
// release before it, which takes it for a version, sends its own records
// of that hash as newer. A record stamped with it (no writer's clock
// gives it) is merely sent both ways.
var collided = crdt.Timestamp{Wall: math.MinInt64}

// printKey returns a key's print (wire.KeyVersion.Print) in a session
// of id seed: SipHash-2-4 of the key keyed by the id, folded to 32 bits.
// Keyed, because HashKey gives a caller who chooses keys any number of
// one hash at no cost (2^k keys from k swappable 16-byte steps: see
// crdt/hash.go), and among 2^17 of them two share any fixed 32-bit
// print by the birthday bound: an unkeyed FNV-1a was matched in under a
// second (TestChosenKeysOfOnePrintReachTheInitiator; found by review).
// Keys written before a session cannot be chosen for its id, so two keys
// of one hash share its print by a chance of one in 2^32, and the next
// session, of another id, tells them apart.
func printKey(seed uint64, key string) uint32 {
	h := sipHash24(seed, ^seed, key)
	return uint32(h ^ h>>32)
}

// sipHash24 is SipHash-2-4 of msg keyed by k0 and k1.
func sipHash24(k0, k1 uint64, msg string) uint64 {
	v0, v1 := k0^0x736f6d6570736575, k1^0x646f72616e646f6d
	v2, v3 := k0^0x6c7967656e657261, k1^0x7465646279746573
	i := 0
	for ; i+8 <= len(msg); i += 8 {
		var m uint64
		for j := 7; j >= 0; j-- {
			m = m<<8 | uint64(msg[i+j])
		}
		v0, v1, v2, v3 = sipBlock(v0, v1, v2, v3, m)
	}
	m := uint64(len(msg)) << 56
	for j := len(msg) - 1; j >= i; j-- {
		m |= uint64(msg[j]) << (8 * (j - i))
	}
	return sipFinal(sipBlock(v0, v1, v2, v3, m))
}

// sipWords is SipHash-2-4, keyed by k0 and k1, of the 16 bytes of a and
// b, little-endian: sipHash24 of them, without making them a string.
func sipWords(k0, k1, a, b uint64) uint64 {
	v0, v1 := k0^0x736f6d6570736575, k1^0x646f72616e646f6d
	v2, v3 := k0^0x6c7967656e657261, k1^0x7465646279746573
	v0, v1, v2, v3 = sipBlock(v0, v1, v2, v3, a)
	v0, v1, v2, v3 = sipBlock(v0, v1, v2, v3, b)
	return sipFinal(sipBlock(v0, v1, v2, v3, 16<<56))
}

// sipBlock takes one 8-byte block m into SipHash-2-4's state.
func sipBlock(v0, v1, v2, v3, m uint64) (uint64, uint64, uint64, uint64) {
	v3 ^= m
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= m
	return v0, v1, v2, v3
}

// sipFinal is SipHash-2-4's finalization.
func sipFinal(v0, v1, v2, v3 uint64) uint64 {
	v2 ^= 0xff
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// sipRound is a SipRound of SipHash.
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13) ^ v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16) ^ v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21) ^ v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17) ^ v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// isCollided reports whether kv stands for keys of one hash (see
// appendKeyVersions).
func isCollided(kv wire.KeyVersion) bool { return kv.Time == collided && !kv.Tombstone }

// listingBudget is a peer's budget of listing work on crowded leaves
// (see chargeListing): left, in versions and records, as of at.
type listingBudget struct {
	left, at int64
}

// listingRate is the listing work on crowded leaves a peer's Versions may
// draw from this member a second, in versions and records gathered, with
// a second's worth ahead: half a listing of a leaf of 100,000 keys, its
// versions and then its records, which costs about 100 ms (so about 5%
// of a core a peer; an estimate from that figure, not measured). A
// listing that costs more than is left takes the budget into debt, cut
// at listingPause.
const listingRate = 100_000

// crowdedListing is how many versions a leaf holds, at least, for its
// listing to be charged: 1,024, or fewer if a Versions frame holds fewer
// (a leaf the initiator lists in parts). A leaf of the default 16-bit
// digest holds that many at about 67 million keys; one that holds more
// was filled by a caller choosing its keys (the hash is public), or the
// digest is too narrow for the replica.
func (n *Node) crowdedListing() int {
	return min(1024, leafVersionsRoom(n.codec.Limits().MaxFrame, false))
}

// listingPause is the longest a peer's Versions are left unanswered after
// a listing that took its budget into debt: what the debt is cut to. An
// initiator sends a step again at rto, 3 rto, 7 rto... (rto at most an
// eighth of the session timeout T) from when it asked or last had a
// reply (see reply) until T after that, the last of
// them past (T - rto) / 2: a longer pause would refuse every copy of the
// honest initiator's step, and no session that reached the leaf would
// complete (the failure the parts were made for). So a leaf whose listing
// costs more than the rate over this pause is listed once a pause at
// most, each listing within the per-frame bound.
func (n *Node) listingPause() int64 {
	t := int64(n.cfg.SessionTimeout)
	return (t - firstRetry(n.cfg.SessionTimeout)) / 2
}

// listingAllowed reports whether a Versions of from may be answered now:
// its budget of listing work is not in debt. A peer that fills a leaf
// with keys it chose (the hash is public) drew the whole leaf's versions
// and records with each Versions of a few dozen bytes naming it, within
// the per-frame bound (about 100 ms at 100,000 keys), and as many such
// frames a second as it sent (found by review,
// TestAHostilePeersListingsOfACrowdedLeafAreBudgeted).
func (n *Node) listingAllowed(from string, now int64) bool {
	b := n.ae.listing[from]
	if b == nil {
		return true
	}
	b.refill(now)
	return b.left >= 0
}

// refill credits b with the listing work gained since it was last
// brought up to date, capped at listingRate, as of now.
func (b *listingBudget) refill(now int64) {
	if now > b.at { // a clock stepped back credits nothing: the debt is paid from its new reading on
		b.left = min(b.left+listingWork(crdt.SubSat(now, b.at)), listingRate) // saturated, as every time sum
	}
	b.at = now
}

// chargeListing charges from's budget with work, the versions and
// records gathered from crowded leaves in answering its Versions (or, as
// its initiator, in answering its Repairs: see receiveRepair), its debt
// cut to listingPause's worth.
func (n *Node) chargeListing(from string, work int, now int64) {
	if work == 0 {
		return
	}
	b := n.ae.listing[from]
	if b == nil {
		b = &listingBudget{left: listingRate, at: now}
		n.ae.listing[from] = b
	}
	// Brought up to date first: the initiator charges its own listing at
	// the digest's end (initiatorDigest) with nothing checked before it,
	// and the time since the budget's last use, credited after the
	// charge, forgave it at every session (found by review,
	// TestAnInitiatorsFirstListingOfASessionIsCharged).
	b.refill(now)
	b.left = max(b.left-int64(work), -listingWork(n.listingPause()))
}

// listingWork is the listing work a budget gains in d (nanoseconds, not
// negative), without overflow for any d.
func listingWork(d int64) int64 {
	s := int64(time.Second)
	return d/s*listingRate + d%s*listingRate/s
}

// receiveVersions (responder) compares the initiator's versions with ours
// and answers with our newer records and the key hashes we want, within
// the initiator's budget of listing work on crowded leaves (see
// listingAllowed).
func (n *Node) receiveVersions(from string, m *wire.Versions, now int64) []Envelope {
	r, ok := n.request(from, m.Session, false, now)
	if !ok {
		return nil
	}
	if !r.leavesSent { // its tree is not ours (see responder.leavesSent)
		n.stats.Stray++
		return nil
	}
	if !n.listingAllowed(from, now) {
		n.stats.ListingsRefused++ // sent again by the initiator, answered once the budget is back
		return nil
	}
	crowded, work := n.crowdedListing(), 0
	charge := func(gathered int) {
		if gathered > crowded {
			work += gathered
		}
	}
	defer func() { n.chargeListing(from, work, now) }()
	leaves := uint32(1) << n.cfg.Replica.DigestBits()
	reply := &wire.Repair{Session: answer(r, m.Step), Records: n.recs}
	var vs []crdt.Version
	var mine []wire.KeyVersion
	var hot []uint64 // hashes whose every record goes: keys of one hash (see repairRoom)
	var heldCand []uint64
	off := 0
	for i, leaf := range m.Leaves {
		if leaf >= leaves {
			n.stats.Stray++
			return nil
		}
		theirs := m.Versions[off : off+int(m.Counts[i])]
		off += int(m.Counts[i])
		if m.Part != nil {
			if first, last := leafHashes(leaf, n.cfg.Replica.DigestBits()); m.Part.From < first || m.Part.Through > last {
				n.stats.Stray++ // a part of another leaf
				return nil
			}
		}
		if len(theirs) == 0 && m.Part == nil { // the initiator holds nothing here: all ours, no versions gathered
			had := len(reply.Records)
			reply.Records = n.cfg.Replica.AppendRecords(reply.Records, leaf)
			charge(len(reply.Records) - had)
			continue
		}
		vs = n.cfg.Replica.AppendVersions(vs[:0], leaf)
		charge(len(vs))
		mine = appendKeyVersions(mine[:0], vs, m.Part, m.Prints, m.ID) // with a part, compared within it alone
		newer, wants := compareVersions(mine, theirs, m.Prints)
		reply.Wants = append(reply.Wants, wants...)
		for _, h := range wants {
			if _, ok := slices.BinarySearchFunc(mine, h, byKeyHash); ok {
				heldCand = append(heldCand, h)
			}
		}
		if len(newer) > 0 {
			reply.Records = n.appendLeafRecords(reply.Records, leaf, newer)
			charge(len(vs)) // the leaf's records, gathered to pick those
			hot = appendCollided(hot, newer, mine, theirs)
		}
	}
	// Leaves are hash prefixes and ascend, so the wants already do; the
	// codec requires it, so make sure.
	slices.Sort(reply.Wants)
	reply.Wants = slices.Compact(reply.Wants)
	cutWants := len(reply.Wants) > wire.MaxRecords
	if cutWants { // the rest is asked for again in a later step
		reply.Wants = reply.Wants[:wire.MaxRecords]
	}
	all := reply.Records
	reply.Records, reply.Truncated = n.cutAt(all, n.repairRoom(all, hot, len(reply.Wants)))
	reply.Truncated = reply.Truncated || cutWants
	// Only the wants that go are held: the rest are asked for again.
	for _, h := range heldCand {
		if len(reply.Wants) > 0 && h > reply.Wants[len(reply.Wants)-1] || len(r.held) >= maxHeldWants {
			break
		}
		if r.held == nil {
			r.held = map[uint64]struct{}{}
		}
		r.held[h] = struct{}{}
	}
	n.stats.RepairRecordsSent += uint64(len(reply.Records))
	return n.sendRecords(nil, reply, all, from)
}

// keptRecords bounds the scratch records a node keeps between repairs:
// a chunk of leaves of a million keys gathers about 16,000.
const keptRecords = 4 * wire.MaxRecords

// sendRecords sends m, which carries records gathered in all, appended to
// the node's scratch, and takes the scratch back, grown if it grew: a
// member far behind is sent hundreds of megabytes of records, which
// allocated afresh each time made its peer collect garbage (marking its
// whole heap) several times as often. The scratch is not cleared (that
// too is a write barrier a record while a collection runs): it is
// dropped once no session is in progress (releaseScratch).
func (n *Node) sendRecords(out []Envelope, m wire.Message, all []crdt.Record, to string) []Envelope {
	out = n.send(out, m, to)
	if cap(all) > cap(n.recs) && cap(all) <= keptRecords {
		n.recs = all[:0]
	}
	return out
}

// releaseScratch drops the records scratch, which holds values the replica
// may since have dropped, once no session is in progress either way.
func (n *Node) releaseScratch() {
	if !n.ae.active && len(n.ae.resp) == 0 { // an opening uses none: only a session past it (found by review)
		n.recs, n.sorted, n.sortKeys = nil, nil, nil
	}
}

// compareVersions walks two key-hash-sorted version lists of one leaf and
// returns the key hashes where mine is newer or theirs lacks the key, and
// those where theirs is newer or mine lacks it; a hash listed as collided
// on either side is in both, and so, with prints, is one each side holds
// a different key of.
func compareVersions(mine, theirs []wire.KeyVersion, prints bool) (newer, wants []uint64) {
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
			switch c := versionOf(mine[i]).Compare(versionOf(theirs[j])); {
			case isCollided(mine[i]) || isCollided(theirs[j]):
				// Keys of one hash, on either side: versions cannot tell
				// which is which, so every record of that hash goes
				// each way.
				newer = append(newer, mine[i].KeyHash)
				wants = append(wants, theirs[j].KeyHash)
			case prints && mine[i].Print != theirs[j].Print:
				// Two keys of one hash, one a side: ours goes in the
				// reply the initiator awaits, and theirs is asked for.
				// Sent only once the initiator's record came, as a
				// Reject that nothing awaits (the answer to its final
				// Repair), ours was lost with that Reject or that
				// Repair, and the initiator completed without it
				// (found by review).
				newer = append(newer, mine[i].KeyHash)
				wants = append(wants, theirs[j].KeyHash)
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

// appendCollided appends the key hashes of newer listed as collided in
// mine or in theirs (every record of such a hash goes), in order.
func appendCollided(dst, newer []uint64, mine, theirs []wire.KeyVersion) []uint64 {
	for _, h := range newer {
		for _, list := range [][]wire.KeyVersion{mine, theirs} {
			if i, ok := slices.BinarySearchFunc(list, h, byKeyHash); ok && isCollided(list[i]) {
				dst = append(dst, h)
				break
			}
		}
	}
	return dst
}

// collidedRoom is the size at which a repair message that carries the
// records of keys of one hash is cut, rather than MaxRepairBytes: every
// record of such a hash goes whenever it is asked about, cut oldest first
// (records travel by time: lww's rule on collections between repairs), so
// those past the cut never went, the same oldest going at every ask, and
// no session completed (found by review). Remembering what went did not
// survive a retry of a lost reply (found by review: a session completed
// without the record). Keys of one hash whose records outgrow it are not
// repaired past it: a caller that chose that many, that large, keys of one
// hash (see crdt.HashKey) loses them to convergence, and the sessions
// that meet them end without completing at the fifth ask of their leaf
// (see answerRepair).
const collidedRoom = 16 << 20

// repairRoom is the size at which a repair message of recs (and wants
// key hashes) is cut:
// MaxRepairBytes and the bytes of the records of the key hashes in hot
// (sorted: hashes of keys of one hash, whose every record goes), up to
// collidedRoom and what a frame holds. The room is only for those
// records (one hash of colliding keys, or a peer's listing forged to say
// so, lifted the cut of a whole reply: found by review), and never past
// the codec's frame (a reply over it failed to encode at every retry:
// found by review).
func (n *Node) repairRoom(recs []crdt.Record, hot []uint64, wants int) int {
	// Never past the frame, whatever MaxRepairBytes says: a MaxFrame set
	// below it (gossip's Protocol.Limits) made every larger reply fail to
	// encode at every retry (found by review). Each of the message's
	// wants takes up to 9 bytes, its header a few dozen.
	frame := max(n.codec.Limits().MaxFrame-9*wants-n.cfg.Headroom-512, 1)
	room := min(n.cfg.MaxRepairBytes, frame)
	if len(hot) == 0 {
		return room
	}
	extra := 0
	for i := range recs {
		if _, ok := slices.BinarySearch(hot, crdt.HashKey(recs[i].Key)); ok {
			extra += wire.RecordSize(&recs[i])
		}
	}
	return max(room, min(room+extra, collidedRoom, frame))
}

// hotLeaf reports whether leaf holds any of the key hashes in hot.
func (n *Node) hotLeaf(leaf uint32, hot []uint64) bool {
	bits := n.cfg.Replica.DigestBits()
	_, ok := slices.BinarySearchFunc(hot, leaf, func(h uint64, l uint32) int { return cmp.Compare(crdt.LeafIndex(h, 0, bits), l) })
	return ok
}

// byKeyHash compares a key version with a key hash, for searches of lists
// sorted by key hash.
func byKeyHash(kv wire.KeyVersion, h uint64) int { return cmp.Compare(kv.KeyHash, h) }

// collisions returns, sorted, the key hashes of recs for which held says
// this member holds a key and that are of keys it does not hold: another
// key of the same hash (a 64-bit collision, which versions cannot tell
// apart). The side that received such a record holds both keys once it
// has applied it, and the side that sent it only its own: this member's
// records of those hashes go back in the same session (without them, it
// took the next one to list the hash as collided: found by review). Only
// records of held hashes are looked up: a member catching up on keys it
// never held pays nothing for it. Called before the records are applied.
func (n *Node) collisions(recs []crdt.Record, held func(h uint64) bool) []uint64 {
	var out []uint64
	for i := range recs {
		h := crdt.HashKey(recs[i].Key)
		if !held(h) {
			continue
		}
		if _, ok := n.cfg.Replica.Lookup(recs[i].Key); !ok {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// versionOf returns what orders a key version (crdt.Version.Compare).
func versionOf(kv wire.KeyVersion) crdt.Version {
	return crdt.Version{Time: kv.Time, Tombstone: kv.Tombstone}
}

// appendLeafRecords appends the records of leaf whose key hashes are in
// want, sorted ascending.
func (n *Node) appendLeafRecords(dst []crdt.Record, leaf uint32, want []uint64) []crdt.Record {
	kept, _ := n.appendLeafRecordsCounted(dst, leaf, want)
	return kept
}

// appendLeafRecordsCounted is appendLeafRecords, and also returns how
// many records of the leaf it gathered to pick those.
func (n *Node) appendLeafRecordsCounted(dst []crdt.Record, leaf uint32, want []uint64) ([]crdt.Record, int) {
	start := len(dst)
	dst = n.cfg.Replica.AppendRecords(dst, leaf)
	gathered := len(dst) - start
	kept := dst[:start]
	for _, r := range dst[start:] {
		if _, ok := slices.BinarySearch(want, crdt.HashKey(r.Key)); ok {
			kept = append(kept, r)
		}
	}
	clear(dst[len(kept):]) // the records left out hold no values
	return kept, gathered
}

// cutAt sorts records by timestamp (then key, so that the order is the
// same whatever order they were gathered in) and cuts them at room bytes
// (see repairRoom), keeping at least one, and at wire.MaxRecords.
func (n *Node) cutAt(recs []crdt.Record, room int) ([]crdt.Record, bool) {
	recs = n.sortRecords(recs)
	size := 0
	for i := range recs {
		size += wire.RecordSize(&recs[i])
		if i > 0 && size > room || i == wire.MaxRecords {
			return recs[:i], true
		}
	}
	return recs, false
}

// byTime is what sortRecords sorts: a record's timestamp and its place.
type byTime struct {
	wall    int64
	logical uint32
	i       uint32
	node    crdt.NodeID
}

// sortRecords returns recs sorted by timestamp, then key: recs itself, or
// for a long list the node's scratch, into which the records are copied in
// the order found by sorting their timestamps and places. Sorting the
// records themselves moved 72-byte structs, each move a write barrier
// while a collection runs: 15% of a member's CPU as it caught another up.
func (n *Node) sortRecords(recs []crdt.Record) []crdt.Record {
	order := func(a, b crdt.Record) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c // (cmp.Or would compare the keys every time too)
		}
		return strings.Compare(a.Key, b.Key)
	}
	if len(recs) < 256 {
		slices.SortFunc(recs, order)
		return recs
	}
	keys := n.sortKeys[:0]
	for i := range recs {
		t := &recs[i].Time
		keys = append(keys, byTime{wall: t.Wall, logical: t.Logical, i: uint32(i), node: t.Node})
	}
	slices.SortFunc(keys, func(a, b byTime) int {
		switch {
		case a.wall != b.wall:
			return cmp.Compare(a.wall, b.wall)
		case a.logical != b.logical:
			return cmp.Compare(a.logical, b.logical)
		case a.node != b.node:
			return cmp.Compare(a.node, b.node)
		}
		return strings.Compare(recs[a.i].Key, recs[b.i].Key)
	})
	sorted := slices.Grow(n.sorted[:0], len(recs))
	for _, k := range keys {
		sorted = append(sorted, recs[k.i])
	}
	if cap(keys) <= keptRecords {
		n.sortKeys, n.sorted = keys[:0], sorted[:0]
	}
	return sorted
}

// applyRepair applies a repair's records and returns the tombstones that
// answer those it rejected as below a watermark.
func (n *Node) applyRepair(m *wire.Repair, now int64) []crdt.Record {
	var rejected []crdt.Record
	bound := n.cfg.Clock.UpdateAll(m.Records)
	for _, r := range m.Records {
		n.stats.RepairRecordsReceived++
		if n.receiveRepairRecord(r, now, bound) == crdt.Rejected {
			rejected = append(rejected, r)
		}
	}
	return n.answers(rejected)
}

// receiveRepair applies a repair. The initiator's, answering its Versions,
// moves the session on; the responder's, the initiator's answer, brings
// the records the responder wanted and, when final, completes the
// exchange on this side too.
func (n *Node) receiveRepair(from string, m *wire.Repair, now int64) []Envelope {
	if n.ae.active && n.ae.s.peer == from && n.ae.s.ID == m.ID {
		if n.awaitedBy(from, m.Session) >= 0 && !n.listingAllowed(from, now) {
			// Answering it gathers the records of the leaves it wants
			// and lists those asked about again (or their next part):
			// a crowded leaf's whole, within the responder's budget of
			// listing work, as its own Versions' answers are on the
			// other side. Outside it, a responder that answered each
			// Versions of a crowded leaf with a Repair of a few dozen
			// bytes, cut short and wanting one key of it, drew the
			// leaf's records and versions at every one, up to
			// maxReasks times a session, every session (found by
			// review, TestAResponderReaskingACrowdedLeafIsBudgeted).
			// Left awaited, the step goes again at its retry.
			n.stats.ListingsRefused++
			return nil
		}
		a, ok := n.reply(from, m.Session, now)
		if !ok {
			return nil
		}
		if _, versions := a.req.(*wire.Versions); !versions {
			n.abandon() // a Repair answering a Digest
			return nil
		}
		asked := a.req.(*wire.Versions)
		var collided []uint64
		if len(asked.Versions) > 0 { // a member that listed nothing (catching up) held no hash
			collided = n.collisions(m.Records, func(h uint64) bool {
				i, ok := slices.BinarySearchFunc(asked.Versions, h, byKeyHash) // one list sorted by key hash: leaves ascend
				return ok && !isCollided(asked.Versions[i])                    // a collided one is sent whole anyway
			})
		}
		before := n.stats.RecordsApplied
		rejected := n.applyRepair(m, now)
		moved := n.stats.RecordsApplied > before || newerThanAsked(asked, m.Records, n.cfg.Replica.DigestBits())
		hot := collided        // hashes whose every record goes (see repairRoom)
		if len(collided) > 0 { // this member's records of those hashes go with what the responder wants
			m.Wants = mergeSorted(m.Wants, collided)
			moved = true
		}
		for _, h := range m.Wants {
			if i, ok := slices.BinarySearchFunc(asked.Versions, h, byKeyHash); ok && isCollided(asked.Versions[i]) {
				hot = append(hot, h) // listed as collided here
			}
		}
		if len(m.Wants) > 0 {
			// A hash the responder both sends and asks for is one it
			// holds several keys of (compareVersions).
			for i := range m.Records {
				h := crdt.HashKey(m.Records[i].Key)
				if _, ok := slices.BinarySearch(m.Wants, h); ok {
					hot = append(hot, h)
				}
			}
		}
		slices.Sort(hot)
		return n.answerRepair(m, asked, a.leaves, rejected, moved, slices.Compact(hot), now)
	}
	r, ok := n.request(from, m.Session, false, now)
	if !ok {
		return nil
	}
	var collided []uint64
	if len(r.held) > 0 {
		collided = n.collisions(m.Records, func(h uint64) bool { _, ok := r.held[h]; return ok })
	}
	for i := 0; len(r.held) > 0 && i < len(m.Records); i++ { // answered (nothing held: no hashing)
		delete(r.held, crdt.HashKey(m.Records[i].Key))
	}
	rejected := n.applyRepair(m, now)
	r.got = r.got || len(m.Records) > 0
	if m.Final {
		r.finalStep = m.Step
	}
	switch {
	case !m.Final:
		r.repairs++
	case len(m.Wants) == 0: // a release before the count: complete now, as it did
		r.owed = r.repairs
	case len(m.Wants) == 1: // how many Repairs the initiator sent before this one
		r.owed = int64(min(m.Wants[0], math.MaxInt32))
	default: // no count: never complete
		r.owed = math.MaxInt32
	}
	completed := r.repairs == r.owed
	if completed {
		n.responded(from, r, now)
	}
	// step is the step the Reject of this Repair's answers goes under:
	// on completion of a session that brought records, the final one's,
	// with the earlier steps' answers again, if they all fit: it is the
	// acknowledgement (see finish).
	step, acked := m.Step, false
	room := n.repairRoom(nil, nil, 0)
	switch size := recordsSize(rejected); {
	case completed && r.got && !r.answersLost && r.answerBytes+size <= room && len(r.answers)+len(rejected) <= wire.MaxRecords:
		rejected = append(slices.Clip(r.answers), rejected...)
		step, acked = r.finalStep, true
	case !completed && !r.answersLost && r.answerBytes+size <= room && len(r.answers)+len(rejected) <= wire.MaxRecords:
		r.answers = append(r.answers, rejected...)
		r.answerBytes += size
	case !completed:
		r.answers, r.answersLost = nil, true
	}
	if completed {
		r.answers = nil
	}
	if len(collided) > 0 && !n.listingAllowed(from, now) {
		// Gathering them costs each leaf's records, a crowded one's too:
		// within the peer's budget of listing work, as its Versions are.
		// Outside it, a peer that chose keys of one hash into a leaf it
		// filled drew the whole leaf with every Repair of a few dozen
		// bytes carrying one such key (found by review,
		// TestCollidedRecordsOfACrowdedLeafAreBudgeted). Left out, they
		// go at the next session, which lists the hashes as collided.
		n.stats.ListingsRefused++
		collided = nil
	}
	if len(collided) > 0 {
		// This member's records of the hashes where another key came: the
		// initiator applies a Reject's records as any (a release before
		// this one too). Cut as a Repair of such records is, in the room
		// the answers leave, in bytes and in number, and left out when
		// they leave none (the rest goes at the next session, which lists
		// the hashes collided). Cut as if the Reject carried nothing
		// else, they and the answers together were over the frame or
		// wire.MaxRecords: the Reject failed to encode, and the answers
		// went with it, at every session that rejected the other key too
		// (found by review).
		recs, work := n.recordsOf(collided)
		n.chargeListing(from, work, now)
		room := n.repairRoom(recs, collided, 0)
		for i := range rejected {
			room -= wire.RecordSize(&rejected[i])
		}
		recs, _ = n.cutAt(recs, room)
		if len(rejected) > 0 && len(recs) > 0 && wire.RecordSize(&recs[0]) > room {
			recs = nil // cutAt keeps one: none fits beside the answers
		}
		rejected = append(rejected, recs[:min(len(recs), wire.MaxRecords-len(rejected))]...)
	}
	var out []Envelope
	if len(rejected) > 0 {
		out = n.send(out, &wire.Reject{Session: answer(r, step), Records: rejected}, from)
	}
	if acked && len(rejected) == 0 {
		// The completion of a session that brought records is
		// acknowledged by a Reject of the final Repair's step, carrying
		// every answer of the session (empty if there are none): the
		// initiator's first sync waits for it (see finish). Answers
		// that did not fit one frame are not carried, and no
		// acknowledgement is sent but the final step's own Reject: the
		// first sync is then taken at the deadline, or by the next
		// session.
		out = n.send(out, &wire.Reject{Session: answer(r, r.finalStep)}, from)
	}
	return out
}

// recordsSize returns the encoded size of recs.
func recordsSize(recs []crdt.Record) int {
	size := 0
	for i := range recs {
		size += wire.RecordSize(&recs[i])
	}
	return size
}

// recordsOf returns this member's records of the given key hashes,
// sorted: those of each hash's leaf; and the listing work it took (the
// records gathered, of every leaf: see chargeListing).
func (n *Node) recordsOf(hashes []uint64) ([]crdt.Record, int) {
	bits := n.cfg.Replica.DigestBits()
	var recs []crdt.Record
	work := 0
	for len(hashes) > 0 {
		leaf := crdt.LeafIndex(hashes[0], 0, bits)
		k := 1
		for k < len(hashes) && crdt.LeafIndex(hashes[k], 0, bits) == leaf {
			k++
		}
		var gathered int
		recs, gathered = n.appendLeafRecordsCounted(recs, leaf, hashes[:k])
		// Every leaf's records are charged, an uncrowded one's too: a
		// key of a hash held costs nothing to make (the hash is public),
		// and a Repair of one such record drew its whole leaf, up to
		// crowdedListing records, outside the budget, once per hash
		// held (found by review,
		// TestCollidedRecordsOfAnUncrowdedLeafAreBudgeted). Honest
		// peers' 64-bit collisions are too rare for the charge to tell.
		work += gathered
		hashes = hashes[k:]
	}
	return recs, work
}

// mergeSorted returns the sorted union of two sorted lists.
func mergeSorted(a, b []uint64) []uint64 {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// answerRepair (initiator) sends the wanted records and the tombstones
// answering those it rejected, then the next steps or the end of the
// session. The leaves of the answered Versions are asked about again if
// either side cut its records short.
func (n *Node) answerRepair(m *wire.Repair, asked *wire.Versions, leaves []uint32, rejected []crdt.Record, moved bool, hot []uint64, now int64) []Envelope {
	s := &n.ae.s
	// A Repair cut short that moved nothing (no record applied, or newer
	// than this node said it held when it asked, and none rejected here,
	// nothing wanted) leaves its leaves to be asked about again, and a
	// responder answering so for ever, or with one record this node said
	// it held, would hold the session, and every session of this node
	// (found by review, twice). Records a delta brought just before the
	// Repair with them, and records rejected here, are honest progress
	// that applies nothing. Nor is a leaf asked about again more than
	// maxReasks times in a session.
	if m.Truncated && !moved && len(rejected) == 0 && len(m.Wants) == 0 {
		if s.idle++; s.idle >= maxIdleReplies {
			n.stats.SessionsTimedOut++
			n.ae.active = false
			return nil
		}
	} else {
		s.idle = 0
	}
	all := append(n.wanted(n.recs, m.Wants, leaves, now), rejected...)
	passedOver := false
	if len(s.pushed) > 0 {
		// A record this node sent in this session, at the version it
		// holds, is not sent again: the Versions that asked about its
		// leaf again overtook the Repair with it (a large frame goes on a
		// stream, a small one as a datagram), and the responder wanted it
		// again. Sent again, a record went once for every later Versions
		// that overtook it, up to the leaf's maxReasks asks: every record
		// 1.7 times with each Repair overtaken by one, 7 times by 16, and
		// past the responder's window of 64 steps none arrived at all (a
		// Repair lost on the way leaves the responder incomplete, and the
		// next session moves what it carried: see responder.owed).
		//
		// Passed over for ever, a record whose Repair was lost was wanted
		// at every later ask and never went: the responder's wants (the
		// first wire.MaxRecords hashes it lacks) were all such records,
		// nothing else of the chunk moved, and the session spun to
		// maxReasks (found by review,
		// TestLostRepairDoesNotStallTheRestOfAPush). So an ask that wants
		// it again passes it over budget times, then takes it for lost
		// and sends it again, with twice the budget: a Repair overtaken
		// by one Versions goes once, one overtaken by L about log2(L)+1
		// times, and one lost costs one ask.
		//
		// A record passed over for the last time before it goes again
		// leaves its leaves to be asked about again, as a cut answer
		// does: the ask that passed it over may be the last of its leaves
		// (the responder's wants all fit, and this node's answer too),
		// and a Repair lost there left its records to the next session
		// whenever fewer than two asks of its chunk followed (found by
		// review, TestRepairLostBeforeALeafsLastAskIsSentAgain: at 20% of
		// Repairs lost, a push of 50,000 records left 5,300 to 5,900
		// behind after its session, 900 to 1,300 before the pushed set).
		// Once a leaf (closed): at every pass, a Repair held behind L
		// Versions kept its chunk asked about until it arrived, and its
		// records went up to 3 times at L 16.
		bits := n.cfg.Replica.DigestBits()
		all = slices.DeleteFunc(all, func(r crdt.Record) bool {
			leaf := s.pushed[crdt.LeafIndex(crdt.HashKey(r.Key), 0, bits)]
			p, ok := leaf[r.Key]
			if !ok || p.v != r.Version() || p.skips >= p.budget {
				return false
			}
			p.skips++
			leaf[r.Key] = p
			passedOver = passedOver || p.skips >= p.budget // sent at the next ask, if still wanted
			return true
		})
	}
	recs, truncated := n.cutAt(all, n.repairRoom(all, hot, 1)) // the final Repair's count
	again := m.Truncated || truncated
	if passedOver && !again && !slices.ContainsFunc(leaves, func(l uint32) bool { return s.closed[l] }) {
		if s.closed == nil {
			s.closed = map[uint32]bool{}
		}
		for _, l := range leaves {
			s.closed[l] = true
		}
		again = true
	}
	n.notePushed(leaves, recs, again)
	if again {
		if s.reasked == nil {
			s.reasked = map[uint32]int{}
		}
		// Records this node sends of other hashes move the responder on.
		sends := slices.ContainsFunc(recs, func(r crdt.Record) bool {
			_, ok := slices.BinarySearch(hot, crdt.HashKey(r.Key))
			return !ok
		})
		for _, leaf := range leaves {
			weight := 1
			if !moved && !sends && n.hotLeaf(leaf, hot) {
				// Records of keys of one hash, and nothing moved: past
				// their room the same go at every ask (see collidedRoom),
				// so such a leaf's ask counts as a quarter of the asks it
				// may take: the fifth ends the session, not the 65th,
				// each of up to 16 MiB. While records move (a catch-up
				// in the same chunk), and for other leaves, it counts
				// one (counted so at every re-ask of its chunk, a hot
				// leaf ended catch-ups: found by review).
				weight = maxReasks / 4
			}
			if s.reasked[leaf] += weight; s.reasked[leaf] > maxReasks {
				// Ended, not completed (no Final: the responder must not
				// take this node for holding what it has): what it
				// wanted, and the answers owed, still go.
				n.stats.SessionsTimedOut++
				n.ae.active = false
				return n.sendRecords(nil, &wire.Repair{Session: n.stepOf(), Records: recs, Truncated: truncated}, all, s.peer)
			}
		}
		// In order among the leaves left to ask about, not in front of
		// them: those may hold the part of another chunk asked about
		// again that its Versions had no room for (its versions grown
		// with the records that came), below these, and a Versions listing
		// leaves out of order failed to encode at every retry (found by
		// review, TestReaskedLeavesStayAscending).
		s.leaves = mergeLeaves(leaves, s.leaves)
	} else if asked.Part != nil {
		n.nextPart(leaves[0], asked.Part)
	}
	final := len(s.leaves) == 0 && len(s.awaits) == 0
	if !final && len(recs) == 0 {
		// Nothing to send: the responder reads only an initiator's
		// Repairs' records, and its final one. Each Repair sent must
		// arrive for the responder to complete; empty ones, sent, made a
		// far-behind initiator's sessions (all their Repairs empty) rarely
		// complete there under loss (found by review).
		return n.sendVersions(nil, now)
	}
	n.stats.RepairRecordsSent += uint64(len(recs))
	s.pushed1 = s.pushed1 || len(recs) > 0
	reply := &wire.Repair{Session: n.stepOf(), Records: recs, Final: final, Truncated: truncated}
	if final {
		reply.Wants = []uint64{s.repairs} // the responder completes once it has them all
	} else {
		s.repairs++
	}
	out := n.sendRecords(nil, reply, all, s.peer)
	if final {
		n.finish(now)
		return out
	}
	return n.sendVersions(out, now)
}

// mergeLeaves returns the strictly ascending union of a and b, strictly
// ascending lists of leaves, in a new slice.
func mergeLeaves(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0] < b[0]:
			out, a = append(out, a[0]), a[1:]
		case b[0] < a[0]:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// notePushed keeps the versions of recs, sent in the answer to a Versions
// of leaves, while those leaves are asked about again (again), and forgets
// the leaves otherwise: only a leaf asked about again is answered again in
// a session.
func (n *Node) notePushed(leaves []uint32, recs []crdt.Record, again bool) {
	s := &n.ae.s
	if !again {
		for _, leaf := range leaves {
			delete(s.pushed, leaf)
		}
		return
	}
	bits := n.cfg.Replica.DigestBits()
	for i := range recs {
		leaf := crdt.LeafIndex(crdt.HashKey(recs[i].Key), 0, bits)
		if _, ok := slices.BinarySearch(leaves, leaf); !ok {
			continue
		}
		if s.pushed == nil {
			s.pushed = map[uint32]map[string]pushedRecord{}
		}
		if s.pushed[leaf] == nil {
			s.pushed[leaf] = map[string]pushedRecord{}
		}
		v, budget := recs[i].Version(), uint8(1)
		if p, ok := s.pushed[leaf][recs[i].Key]; ok && p.v == v { // sent again: taken for lost
			budget = min(2*p.budget, maxPushedSkips)
		}
		s.pushed[leaf][recs[i].Key] = pushedRecord{v: v, budget: budget}
	}
}

// newerThanAsked reports whether any of recs, of a leaf asked about, is
// newer than the version of its key that asked listed (or of a key it did
// not list): what the responder was asked for, whether or not a delta
// brought it here since. bits is the digest's.
func newerThanAsked(asked *wire.Versions, recs []crdt.Record, bits int) bool {
	if len(recs) == 0 {
		return false
	}
	listed := make(map[uint64]crdt.Version, len(asked.Versions))
	for _, v := range asked.Versions {
		listed[v.KeyHash] = crdt.Version{Time: v.Time, Tombstone: v.Tombstone}
	}
	for _, r := range recs {
		h := crdt.HashKey(r.Key)
		if _, ok := slices.BinarySearch(asked.Leaves, crdt.LeafIndex(h, 0, bits)); !ok || asked.Part != nil && !asked.Part.Holds(h) {
			continue // not asked about
		}
		// By the versions' order, as compareVersions: a tombstone at a
		// listed value's stamp is newer (found by review). A hash listed
		// as collided says nothing of what this member holds (every
		// record of it is newer than its sentinel): only records applied
		// count there, or a reply that resends what this member holds
		// kept the session going until maxReasks (found by review).
		v, ok := listed[h]
		if ok && v.Time == collided && !v.Tombstone {
			continue
		}
		if !ok || v.Compare(r.Version()) < 0 {
			return true
		}
	}
	return false
}

// receiveReject takes a Reject. As the initiator, it merges the records
// with which the responder answered records of its answer it rejected,
// if the Reject answers a step of its session in flight or of the last
// one it completed (the final answer's Reject comes after the end), until
// that session's deadline; among them may be the responder's records of a
// key hash where the answer brought another key (see receiveRepair's
// collided), and those of them it rejects in turn, below a watermark of
// its own, it answers with a Reject of its own, once a step: the
// responder, holding them, would otherwise hold them apart from this
// member after the session, and the next would move them again (found by
// the harness, TestCollidedRecordRejectedAfterTheFinalAnswer). As the
// responder, it merges such answers for its session in progress with the
// sender or the one it completed last, until its deadline. Answers are
// not answered.
func (n *Node) receiveReject(from string, m *wire.Reject, now int64) []Envelope {
	s := &n.ae.s
	if !n.ae.active || s.ID != m.ID {
		s = &n.ae.last
	}
	switch {
	case s.ID != 0 && s.ID == m.ID && s.peer == from && m.Token == s.Token && m.Step != 0 && m.Step <= s.Step && now < s.deadline:
		out := n.answerReject(from, s, m, now)
		if u := &n.ae.unacked; u.held && u.id == m.ID && u.peer == from && m.Step == u.step {
			n.takeUnacked(now, true) // its answers merged first
		}
		return out
	case n.answersFor(from, m, now):
		bound := n.cfg.Clock.UpdateAll(m.Records)
		for _, rec := range m.Records {
			n.receiveRepairRecord(rec, now, bound)
		}
		return nil
	}
	n.stats.Stray++
	return nil
}

// answerReject merges the records of a Reject of session s's and answers,
// once a step, those it rejects that are no answers themselves.
func (n *Node) answerReject(from string, s *session, m *wire.Reject, now int64) []Envelope {
	var rejected []crdt.Record
	bound := n.cfg.Clock.UpdateAll(m.Records)
	for _, r := range m.Records { // an answer rejected in turn is older than what this node collected
		if n.receiveRepairRecord(r, now, bound) == crdt.Rejected && !(r.Tombstone && r.Time.Node == 0) {
			rejected = append(rejected, r)
		}
	}
	if len(rejected) == 0 || !s.rejects.first(uint64(m.Step)) {
		// Each step's Reject is answered once: a member holding the key
		// that replayed a Reject had an answer sent back for each copy.
		return nil
	}
	return n.send(nil, &wire.Reject{Session: wire.Session{ID: s.ID, Token: s.Token, Step: m.Step}, Records: n.answers(rejected)}, from)
}

// answersFor reports whether m is the initiator's answer to a Reject of
// this node's as responder: of the session from's in progress (a Reject
// of a step before the final one: found by review) or the one it
// completed last, with its token, before its deadline.
func (n *Node) answersFor(from string, m *wire.Reject, now int64) bool {
	r := n.ae.answered[from]
	if cur := n.ae.resp[from]; cur != nil && cur.id == m.ID {
		r = cur
	}
	return r != nil && r.id == m.ID && r.token == m.Token && m.Step > 0 && now < r.deadline
}

// wanted appends to dst our records with the given key hashes, which the
// codec has checked are ascending (those of one leaf, a hash prefix, are
// together), of the leaves asked about (ascending): an honest responder
// wants keys of those alone. Wants of other leaves are counted stray and
// ignored: served, they had each reply gather the records of up to 16
// times the leaves a step asks about (found by review).
//
// The records it gathers of crowded leaves are charged to the peer's
// budget of listing work (see receiveRepair).
func (n *Node) wanted(dst []crdt.Record, wants []uint64, asked []uint32, now int64) []crdt.Record {
	if len(wants) == 0 {
		return dst
	}
	bits := n.cfg.Replica.DigestBits()
	recs := slices.Grow(dst, min(len(wants), 1024)+16) // a leaf's other records come and go
	stray := false
	for len(wants) > 0 {
		leaf := crdt.LeafIndex(wants[0], 0, bits)
		k := 1
		for k < len(wants) && crdt.LeafIndex(wants[k], 0, bits) == leaf {
			k++
		}
		if _, ok := slices.BinarySearch(asked, leaf); ok {
			var gathered int
			recs, gathered = n.appendLeafRecordsCounted(recs, leaf, wants[:k])
			if gathered > n.crowdedListing() {
				n.chargeListing(n.ae.s.peer, gathered, now)
			}
		} else {
			stray = true
		}
		wants = wants[k:]
	}
	if stray {
		n.stats.Stray++
	}
	return recs
}

// window remembers which of the last 64 numbers below the greatest seen
// have been seen; older ones count as seen.
type window struct {
	max  uint64
	mask uint64 // bit i set: max-i seen
}

// first reports whether seq is new, and records it.
func (w *window) first(seq uint64) bool {
	switch {
	case seq > w.max:
		if shift := seq - w.max; shift < 64 {
			w.mask = w.mask<<shift | 1
		} else {
			w.mask = 1
		}
		w.max = seq
		return true
	case w.max-seq >= 64:
		return false
	default:
		bit := uint64(1) << (w.max - seq)
		seen := w.mask&bit != 0
		w.mask |= bit
		return !seen
	}
}
