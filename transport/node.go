package transport

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// Defaults for [Config].
const (
	DefaultFlushInterval       = 0
	DefaultPacketBudget        = 1200
	DefaultMaxPending          = 65536
	DefaultAntiEntropyInterval = time.Second
	DefaultFanout              = 8
	DefaultLeavesPerStep       = 1024
	DefaultMaxRepairBytes      = 4 << 20
	DefaultStableMargin        = time.Second
	DefaultFailedTimeout       = time.Hour
	DefaultEndedFor            = 30 * time.Second
)

// ErrConfig is returned (wrapped) by [New] for an invalid [Config].
var ErrConfig = errors.New("transport: invalid config")

// Config configures a [Node]. Zero durations and sizes select the defaults.
type Config struct {
	// Name is this member's name in the membership. Required.
	Name string
	// Replica is the state to keep in sync. Required.
	Replica Replica
	// Clock is the replica's hybrid logical clock; every received timestamp
	// updates it. Required.
	Clock *crdt.HLC
	// FlushInterval is the longest a delta waits in the buffer while writes
	// keep coming; a write to an idle node is sent at once. Default: none,
	// every group of writes handed to WriteGroup leaves at once (group
	// commit: see WriteGroup).
	FlushInterval time.Duration
	// PacketBudget is the size a delta batch is filled up to, in bytes. The
	// host sends frames up to its packet size as datagrams and larger ones
	// (a single big record) over a stream. Batches relayed down a tree are
	// filled to less, by as many bytes as the longest member name is
	// longer than this node's: the host's header on a relayed frame is
	// taken to grow with its relayer's name as Headroom does with this
	// node's.
	PacketBudget int
	// MaxPending bounds the outgoing delta buffer, in keys. Writes to other
	// keys while it is full are dropped and left to anti-entropy.
	MaxPending int
	// AntiEntropyInterval is how often the node starts a session.
	AntiEntropyInterval time.Duration
	// SessionTimeout abandons a session whose peer stopped answering; a
	// step without a reply is sent again meanwhile, after an eighth of it
	// (at most 500 ms) and then twice as long each time (a digest level's,
	// cheap to answer, every eighth). Default: four AntiEntropyIntervals,
	// at least 2 s. A session is also abandoned at once when its peer
	// leaves the membership.
	SessionTimeout time.Duration
	// EndedFor is how long, at least, this node goes on counting an
	// incarnation of another member for the stable bound after it learns
	// that the incarnation ended (the member left, or restarted: a new
	// process under its name): a write of the old process still in flight
	// to a member (a stream's bytes that the kernel delivers after the
	// process died, late across a partition) is kept if it arrives within
	// it. Default: 30 s, and never less than SessionTimeout. (It was
	// SessionTimeout: a delta of a restarted member delivered 6 s after
	// its peers learned of the restart met watermarks raised past it, and
	// a write a live member had received was lost; found by review.)
	EndedFor time.Duration
	// Fanout is the degree of the delta broadcast tree.
	Fanout int
	// Headroom is how many bytes the node leaves free before each frame it
	// encodes, for the host's own header: see Envelope.Frame. Default: 0.
	Headroom int
	// LeavesPerStep bounds the differing leaves reconciled per round trip.
	// Default: 1,024, the most a Versions message may name: a member that
	// is far behind moves that much per round trip (at most MaxRepairBytes
	// of records).
	LeavesPerStep int
	// MaxRepairBytes is the size at which a repair message is cut; the rest
	// follows in later steps. A single larger record is still sent whole.
	MaxRepairBytes int
	// Limits bound what the decoder accepts; zero fields select the wire's
	// hard limits. The protocol takes every record those allow: a value
	// over a member's own MaxValueSize is the replica's business (the store
	// keeps its version without the value), so that one record a member
	// cannot hold never blocks the others of its frame.
	Limits wire.Limits
	// Intern, if set, is shared by the decoders of members that run in one
	// process (simulations), so that they share the keys and values they
	// decode instead of each holding a copy (see wire.Interner).
	Intern *wire.Interner
	// StableMargin is subtracted from the stable bound (see Node.Stable)
	// for the error between members' physical clocks, which must agree
	// within it. A member's records are stamped above every cut its clock
	// gave, but a member that restarts under its name starts a new clock
	// from its physical time, which may be behind the cut of its last life
	// by as much as its clock is behind this node's (a cut is taken as at
	// most this node's time). The margin covers that within the clocks'
	// error alone: a clock stepped back further before a restart needs a
	// host that starts it past its last life's cuts (CutCeiling).
	// Default: 1 s.
	StableMargin time.Duration
	// CutCeiling, if set, is given the clock's reading for each cut the
	// node reports, and returns the cut to report: at or below it, with
	// its Node. A host that keeps a floor of its clock on disk reports no
	// cut past it, and starts its next process's clock past it, so that a
	// restart with the clock stepped back never stamps a write below a
	// cut its peers hold of its last life (bcache keeps one beside its
	// snapshot). A cut lower than the clock only delays early collection.
	CutCeiling func(now crdt.Timestamp) crdt.Timestamp
	// FailedTimeout is how long a member that left the view without saying
	// so keeps the stable bound where its last session put it: it may come
	// back with records the bound would cover. After it, the member is no
	// longer counted, and what it wrote that this node has not received
	// may be rejected on its return (package lww, rule 6): keep it at
	// least at the replica's GC horizon, beyond which rule 3 already lets
	// a returning member lose records. Default: 1 h.
	FailedTimeout time.Duration
	// Seed makes the session ids and tokens this node draws unpredictable
	// to other members; the host draws it at random. A zero Seed is
	// allowed (simulations), but then ids can be guessed.
	Seed uint64
	// Known are the members an earlier run of this member counted for the
	// stable bound (Node.Known, kept beside its snapshot): each counts as
	// failed, from when it failed or ended (from New for one alive then),
	// until it is seen again or FailedTimeout has passed. Without them, a
	// member absent while every member that had seen it restarted was
	// counted by none, and its writes meanwhile were rejected on its
	// return (found by review).
	Known []Known
}

func (c *Config) fill() error {
	if c.Name == "" || c.Replica == nil || c.Clock == nil {
		return fmt.Errorf("%w: Name, Replica and Clock are required", ErrConfig)
	}
	if err := crdt.CheckTreeBits(c.Replica.DigestBits()); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	setDefault(&c.PacketBudget, DefaultPacketBudget)
	setDefault(&c.MaxPending, DefaultMaxPending)
	setDefault(&c.AntiEntropyInterval, DefaultAntiEntropyInterval)
	// Four intervals, saturating: a "forever" interval (or a century's)
	// wrapped the product below zero, and the timeout fell to 2 s.
	twice := crdt.AddSat(int64(c.AntiEntropyInterval), int64(c.AntiEntropyInterval))
	setDefault(&c.SessionTimeout, max(time.Duration(crdt.AddSat(twice, twice)), 2*time.Second))
	setDefault(&c.EndedFor, DefaultEndedFor)
	setDefault(&c.Fanout, DefaultFanout)
	setDefault(&c.LeavesPerStep, DefaultLeavesPerStep)
	setDefault(&c.MaxRepairBytes, DefaultMaxRepairBytes)
	setDefault(&c.StableMargin, DefaultStableMargin)
	setDefault(&c.FailedTimeout, DefaultFailedTimeout)
	if c.FlushInterval < 0 || c.PacketBudget < 0 || c.MaxPending < 0 || c.AntiEntropyInterval < 0 ||
		c.SessionTimeout < 0 || c.Fanout < 0 || c.LeavesPerStep < 0 || c.MaxRepairBytes < 0 || c.Headroom < 0 ||
		c.StableMargin < 0 || c.FailedTimeout < 0 || c.EndedFor < 0 {
		return fmt.Errorf("%w: negative duration or size", ErrConfig)
	}
	if c.AntiEntropyInterval < time.Millisecond || c.SessionTimeout < time.Millisecond {
		// A bare number is nanoseconds: a session every few of them was a
		// core's worth of CPU (found by review).
		return fmt.Errorf("%w: AntiEntropyInterval %v and SessionTimeout %v, want each 0 (the default) or at least 1ms", ErrConfig, c.AntiEntropyInterval, c.SessionTimeout)
	}
	// The responder's reply at the leaf level holds the hashes of up to
	// the whole level, and nothing cuts it: a digest whose leaf level
	// does not fit a frame failed to encode at every step of a session
	// with a member far behind, which never completed (a 24-bit digest
	// with the default frame or gossip's; found by review).
	frame := c.Limits.MaxFrame
	if frame <= 0 {
		frame = wire.DefaultLimits().MaxFrame
	}
	if need := digestFrame(c.Replica.DigestBits()); need > frame {
		return fmt.Errorf("%w: a digest of %d bits sends frames of up to %d bytes, over the frame limit %d", ErrConfig, c.Replica.DigestBits(), need, frame)
	}
	if c.LeavesPerStep > wire.MaxLeavesPerStep {
		return fmt.Errorf("%w: LeavesPerStep %d over the wire's %d", ErrConfig, c.LeavesPerStep, wire.MaxLeavesPerStep)
	}
	return nil
}

// digestFrame is the longest Digest frame of a tree of bits leaf bits:
// its whole leaf level (8 bytes a hash) under every node of the level
// above (4 bytes a parent), with the header, session, level, cut and
// coverage at their widest.
func digestFrame(bits int) int {
	const header = 96
	return 8<<bits + 4<<(bits-crdt.FanoutBits) + header
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// Envelope is a frame to send to one member.
type Envelope struct {
	To   string
	Kind wire.Kind
	// Payload is the encoded frame. Envelopes of one broadcast share it: do
	// not modify it.
	Payload []byte
	// Frame, when the node's Headroom is above zero, is the buffer Payload
	// was encoded into: Headroom free bytes, then Payload. A host may write
	// its header into those bytes and send Frame, saving a copy of every
	// frame (a megabyte for a repair); envelopes of one broadcast share
	// it, so the header must be the same for each. Nil when Headroom is 0.
	Frame []byte
	// Anonymous marks a frame whose receiver need not know who sent it: a
	// direct delta, which the receiver applies and neither relays nor
	// answers. A host may leave the sender's name out of it (Receive
	// takes no other frame with an empty sender).
	Anonymous bool
}

// Node is one member's protocol state machine. It is not safe for concurrent
// use: one goroutine (or a simulation loop) drives it.
type Node struct {
	cfg       Config
	useDirect bool            // direct deltas go in their short form (UseDirect)
	prints    bool            // Versions to every peer carry their keys' prints (ListPrints)
	printsTo  map[string]bool // the peers besides whose Versions carry them (ListPrintsTo)
	codec     *wire.Codec
	ring      *ring
	self      int            // this node's place on the ring
	kids      []string       // scratch: the members a relayed delta goes to
	sendKids  []string       // scratch: the members this node's writes go to
	refused   refusedBatches // the batches passed on with records refused here
	writers   writers        // the members' names by their clocks' ids (Writer)
	// The messages of this node's delta batches, reused: Encode keeps
	// nothing of them.
	delta  wire.Delta
	direct wire.Direct

	out    deltaQueue
	ae     antiEntropy
	roster roster
	stats  Stats
	buf    []byte        // encoding scratch
	recs   []crdt.Record // scratch for the records of a repair, empty between uses (see sendRecords)
	// sortKeys and sorted are sortRecords' scratch.
	sortKeys []byTime
	sorted   []crdt.Record
	dropped  []crdt.Version // live records forgotten, until Dropped takes them
	// synced is, per member in the view, when the last exchange with it
	// completed (either side; on the responder's, not one found in step at
	// its opening: see receiveDigest); firstSync when the first one did, 0
	// before.
	synced   map[string]int64
	syncsGen uint64 // changed with synced (see SyncsVersion)
	// lastAny is when the last exchange with any member completed,
	// returned the last that came after none for longer than
	// FailedTimeout (see Exchanges).
	lastAny, returned int64
	firstSync         int64
	// firstPeer and firstStart are the peer of the exchange that made the
	// first sync and when (this node's physical time) it started.
	firstPeer  string
	firstStart int64
	// firstUnacked says the first sync was taken at its session's
	// deadline, the records pushed in it unacknowledged (see finish).
	firstUnacked bool
	// newcomers are the members that say they hold none of their
	// cluster's state yet (SetNewcomers).
	newcomers map[string]bool
	noYield   bool // tests: the broken variant that never yields to an empty peer
	// lastCut is the wall of the last cut this node reported, stored
	// before it read the hashes that went with it; Overtaken reads it
	// without the node's lock.
	lastCut atomic.Int64
	// lastNow is the latest time the node was given (see rebase).
	lastNow int64
}

// rebase moves the node's timers back by as much as now is behind the
// latest time it was given, before it acts at now. The host's physical
// time follows steps of the system clock, backwards too, and every
// deadline set before a step back waited for the clock to catch up: an
// hour's step stopped the member's sessions, their retries and its lone
// deltas for an hour, unseen (found by review). The readings of this
// node's clock that are safe lower move with them: the synced marks (a
// session's start, on either side, and the roster's), arrivals, the
// exchanges' times. Left on the clock before the step, a session completed
// before it read as one started after an end noted after it, and the
// member that ended was retired at once (found by review). Ends and
// failures, safe higher, stay (see roster.rebase), and so do the peers'
// times (the roster's cuts and coverage).
//
// A step back of less than stepBack is left alone: a caller's now read
// before it waited for the node's lock, and the wall clock's
// re-anchoring to a system clock slewed by NTP, are that much behind the
// last now (moved back for each, the timers would creep early), and the
// timers wait at most that much longer.
func (n *Node) rebase(now int64) {
	defer func() { n.roster.latest = n.lastNow }()
	if now >= n.lastNow {
		n.lastNow = now
		return
	}
	back := crdt.SubSat(n.lastNow, now) // saturating: a step across half the range wrapped to a negative one
	if back < int64(stepBack) {
		return
	}
	n.lastNow = now
	ae := &n.ae
	for _, t := range []*int64{&ae.next, &ae.lastHurry, &ae.s.start, &ae.s.deadline, &ae.s.retry,
		&ae.last.start, &ae.last.deadline, &ae.last.retry, &n.out.due, &n.out.last,
		&ae.unacked.start, &ae.unacked.deadline} {
		*t = crdt.SubSat(*t, back)
	}
	earlier := func(r *responder) {
		r.deadline = crdt.SubSat(r.deadline, back)
		r.start = crdt.SubSat(r.start, back) // its synced mark, as the session's own
	}
	for _, r := range ae.resp {
		earlier(r)
	}
	for _, rs := range ae.opening {
		for _, r := range rs {
			earlier(r)
		}
	}
	for _, r := range ae.answered {
		earlier(r)
	}
	for name, t := range ae.joined {
		ae.joined[name] = crdt.SubSat(t, back)
	}
	for name, t := range n.synced {
		n.synced[name] = crdt.SubSat(t, back)
	}
	n.syncsGen++
	for _, t := range []*int64{&n.lastAny, &n.returned} {
		if *t != 0 { // 0 is none
			*t = max(crdt.SubSat(*t, back), 1)
		}
	}
	if n.firstSync != 0 {
		n.firstSync = max(crdt.SubSat(n.firstSync, back), 1) // 0 is none
		n.firstStart = crdt.SubSat(n.firstStart, back)
	}
	n.roster.rebase(back)
	if cs, ok := n.cfg.Replica.(ClockStepper); ok {
		cs.StepBack(back)
	}
}

// stepBack is the least step back of the time given to the node that
// moves its timers (see rebase).
const stepBack = time.Second

// New returns a node with no peers; call SetMembers when membership is known.
func New(cfg Config) (*Node, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, codec: wire.NewCodec(cfg.Limits), ring: newRing([]string{cfg.Name})}
	n.codec.ReuseDeltaRecords(true) // Receive keeps nothing of a frame
	n.codec.Intern(cfg.Intern)
	n.self = n.ring.pos[cfg.Name]
	n.out.init()
	n.ae.resp, n.ae.opening, n.ae.answered, n.ae.joined = map[string]*responder{}, map[string][]*responder{}, map[string]*responder{}, map[string]int64{}
	n.ae.fullOpenings, n.ae.listing = map[string]int{}, map[string]*listingBudget{}
	n.synced = map[string]int64{}
	n.roster.init(int64(cfg.StableMargin), int64(cfg.FailedTimeout), int64(max(cfg.EndedFor, cfg.SessionTimeout)))
	n.roster.restore(cfg.Known, cfg.Name, cfg.Clock.Physical())
	return n, nil
}

// Overtaken reports whether a cut this node reported since passed t, the
// stamp of one of its own writes about to be applied (stamped, then
// applied late: a writer descheduled between its clock and its replica).
// The hashes that went with the cut may lack the write, and a peer that
// took the cut may collect early past it (whatever its StableMargin: its
// stable bound is never above the cut), and reject it: stamp it again. It
// takes no lock; call it with the lock under which the replica applies
// the write and reads the hashes of its bucket held (a cut noted after
// that is read with hashes that hold the write).
func (n *Node) Overtaken(t crdt.Timestamp) bool {
	return t.Wall < n.lastCut.Load()
}

// reportCut returns a cut to report to a peer, and notes it for
// Overtaken; the caller reads the hashes that go with it afterwards.
func (n *Node) reportCut() crdt.Timestamp {
	cut := n.cfg.Clock.Now()
	if n.cfg.CutCeiling != nil {
		if c := n.cfg.CutCeiling(cut); !cut.Less(c) && c.Node == cut.Node {
			cut = c
		}
	}
	n.lastCut.Store(max(n.lastCut.Load(), cut.Wall)) // only the node's goroutine stores it
	return cut
}

// Known returns the members this node counts for the stable bound at
// now, other than itself, as Config.Known takes them back.
func (n *Node) Known(now int64) []Known { return n.roster.known(now) }

// Name returns the member name the node was configured with.
func (n *Node) Name() string { return n.cfg.Name }

// arrivalNeighbours is how far apart on the ring a member that arrives
// and a member that sees it arrive may be for the latter to start a
// session with it at once: in a large cluster a member that joins gets
// that many sessions from either side and starts as many, not one from
// every member (the rest of the cluster catches up through the rounds).
// Clusters of up to five members sync every pair at once.
const arrivalNeighbours = 2

// SetMembers replaces the membership view at now: the names of all live
// members, with or without this node's own. A session with a member no
// longer in the view is abandoned, so that the next one starts with a live
// peer. A member gone from the view without Left has failed: it keeps the
// stable bound still for FailedTimeout. Members new to the view (joined,
// restarted, back from the other side of a partition) within
// arrivalNeighbours places on the ring get a session at once, one after
// the other, before the node goes back to its round: a member that
// arrives starts catching up, and being caught up with, at once, not at
// the next interval.
func (n *Node) SetMembers(names []string, now int64) {
	n.rebase(now)
	old := n.ring
	n.ring = newRing(append(names[:len(names):len(names)], n.cfg.Name)) // not into the caller's spare capacity
	n.self = n.ring.pos[n.cfg.Name]
	if _, ok := n.ring.pos[n.ae.s.peer]; n.ae.active && !ok {
		n.ae.active = false
		n.stats.SessionsTimedOut++
	}
	n.ae.arrived = slices.DeleteFunc(n.ae.arrived, func(name string) bool { _, ok := n.ring.pos[name]; return !ok })
	for _, name := range old.names {
		if _, ok := n.ring.pos[name]; !ok {
			n.ae.outlived(name)
		}
	}
	maps.DeleteFunc(n.ae.joined, func(name string, _ int64) bool { _, ok := n.ring.pos[name]; return !ok })
	maps.DeleteFunc(n.ae.fullOpenings, func(name string, _ int) bool { _, ok := n.ring.pos[name]; return !ok })
	maps.DeleteFunc(n.ae.listing, func(name string, _ *listingBudget) bool { _, ok := n.ring.pos[name]; return !ok })
	for name := range n.synced {
		if _, ok := n.ring.pos[name]; !ok {
			delete(n.synced, name)
			n.syncsGen++
		}
	}
	maps.DeleteFunc(n.ae.pulled, func(name string, _ uint64) bool { _, ok := n.ring.pos[name]; return !ok })
	n.pruneWriters()
	for _, name := range n.ring.names {
		_, known := old.pos[name]
		if !known {
			n.ae.joined[name] = now
			delete(n.ae.fullOpenings, name)
		}
		if !known && name != n.cfg.Name && !slices.Contains(n.ae.arrived, name) &&
			n.ring.distance(name, n.cfg.Name) <= arrivalNeighbours {
			n.ae.arrived = append(n.ae.arrived, name)
		}
	}
	others := map[string]bool{}
	for _, name := range names {
		if name != n.cfg.Name {
			others[name] = true
		}
	}
	n.roster.view(others, now)
}

// Restarted records that the member called name, in the view, is a new
// process (it restarted under its name before the view saw it go): it is
// new to the view as one that joined is (SetMembers), so that a session
// goes to it at once and its opening showing it empty is yielded to (an
// empty member restarted in place was caught up twice: found by review),
// and no exchange with it has completed (LastSyncs). A session in flight
// with it ends: it was with the old process. One it started with this
// node may still complete here (a late frame of the old process's, or
// the new process's opening that came before this call), but counts as
// no exchange with the new process.
func (n *Node) Restarted(name string, now int64) {
	n.rebase(now)
	if _, ok := n.ring.pos[name]; !ok || name == n.cfg.Name {
		return
	}
	n.ae.joined[name] = now
	delete(n.ae.fullOpenings, name)
	n.syncsGen++
	delete(n.synced, name) // the new process has completed no exchange with this node (its last showed the old one's: found by review)
	delete(n.ae.pulled, name)
	n.ae.outlived(name)
	if n.ae.active && n.ae.s.peer == name {
		// The session in flight is with the old process, which is gone:
		// the new one answers none of its steps, and the session to the
		// arrival waited for it to time out (SessionTimeout, 4 s by
		// default) before it started.
		n.stats.SessionsTimedOut++
		n.ae.active = false
		// It may have been with the new process (the host calls this
		// after memberlist routes the name to it): a session goes to the
		// new one at once in its place, whatever its distance.
		if !slices.Contains(n.ae.arrived, name) {
			n.ae.arrived = append(n.ae.arrived, name)
		}
	}
	if !slices.Contains(n.ae.arrived, name) && n.ring.distance(name, n.cfg.Name) <= arrivalNeighbours {
		n.ae.arrived = append(n.ae.arrived, name)
	}
}

// Left records that the member called name left the cluster on purpose:
// its incarnation has ended, and stops counting for the stable bound once
// every member has synced with this node since; if it keeps its state (it
// comes back under its name from a snapshot), only once an incarnation of
// its name has completed a session with this node too (what it held alone
// comes back with it), or after FailedTimeout.
func (n *Node) Left(name string, keepsState bool, now int64) {
	n.rebase(now)
	n.roster.left(name, keepsState, now)
}

// Stable returns the stable bound at now: a time below which every member
// that counts (see roster.go) is known to hold every record, less
// StableMargin; lww.NoStable (math.MinInt64) while no such time is known.
// A replica may collect at once a record dead since before it (a
// tombstone written before it, a value expired before it: package lww,
// rule 6).
func (n *Node) Stable(now int64) int64 { return n.roster.stable(now) }

// Members returns the number of members in the view, this node included.
func (n *Node) Members() int { return n.ring.size() }

// FirstSync returns the physical time at which the node's first
// anti-entropy exchange completed, on either side (not a peer's found in
// step at its opening, which completes nothing here), and 0 before: from
// then on the replica holds what that peer held when the exchange began.
func (n *Node) FirstSync() int64 { return n.firstSync }

// FirstSyncWith returns the peer of the exchange that made the first sync
// (see FirstSync) and the physical time at which that exchange started
// on this node's side (for the initiator, when it opened it; for the
// responder, when the opening came): "" and 0 before the first sync. A
// responder holds what the peer held when the peer sent its opening,
// which may be earlier: it compares the opening's hashes, read then (a
// record the peer took while the opening was on its way may be missing).
func (n *Node) FirstSyncWith() (peer string, start int64) { return n.firstPeer, n.firstStart }

// FirstSyncUnacked reports whether the first sync (see FirstSync) was
// taken at its session's deadline without the responder's
// acknowledgement of the records this node pushed in it (a responder of
// an earlier release, which sends none, or the acknowledgement lost):
// the replica may then hold values the responder rejected, older than
// deletes it collected, until its next exchange with a member that holds
// those deletes' watermarks. Taken with the acknowledgement, or with
// nothing pushed, the first sync holds no value older than a delete its
// peer had collected when the exchange began, unless the peer holds a
// newer version of its key: one it took during the exchange supersedes
// this node's push, unanswered; one stamped too far ahead of this node's
// clock, this node refuses.
func (n *Node) FirstSyncUnacked() bool { return n.firstUnacked }

// LastSyncs returns, for each member in the view with which an exchange
// has completed, on either side (as FirstSync), the physical time the
// last one did.
func (n *Node) LastSyncs() map[string]int64 { return maps.Clone(n.synced) }

// Exchanges returns the physical times at which the last exchange with
// any member in the view completed, on either side (as LastSyncs), and
// the last that completed after none for longer than FailedTimeout: this
// node's return from an absence (a partition, say; not a restart, which
// starts a node anew). 0 for none.
func (n *Node) Exchanges() (last, returned int64) { return n.lastAny, n.returned }

// SyncsVersion changes whenever what LastSyncs returns may have: a caller
// that keeps a copy clones it again only then.
func (n *Node) SyncsVersion() uint64 { return n.syncsGen }

// Pending returns the number of local writes queued and not yet sent.
func (n *Node) Pending() int { return len(n.out.recs) }

// SetNewcomers names the live members that say they do not hold their
// cluster's state yet: they have neither completed an exchange since they
// started nor founded their cluster (see FirstSync). An exchange with one
// of them is no first sync while a member that holds it (any other, as
// far as this node knows) is in the view: two members that joined at the
// same time, both empty, took their exchange with each other for one,
// and said they were synced before they had met the member holding the
// cluster's data (found by review). With every member a newcomer (a
// cluster starting empty, or restarted whole), any exchange is one. nil,
// the default, names none.
func (n *Node) SetNewcomers(names []string) {
	clear(n.newcomers)
	for _, name := range names {
		if n.newcomers == nil {
			n.newcomers = map[string]bool{}
		}
		n.newcomers[name] = true
	}
}

// holderInView reports whether a live member other than this node and
// peer is not a newcomer (see SetNewcomers).
func (n *Node) holderInView(peer string) bool {
	for name := range n.ring.pos {
		if name != n.cfg.Name && name != peer && !n.newcomers[name] {
			return true
		}
	}
	return false
}

// exchanged records a completed exchange with peer at now, which started
// at start.
func (n *Node) exchanged(peer string, start, now int64) {
	if _, ok := n.ring.pos[peer]; ok {
		n.synced[peer] = now
		n.syncsGen++
		if n.lastAny != 0 && crdt.SubSat(now, n.lastAny) > int64(n.cfg.FailedTimeout) {
			n.returned = max(now, 1)
		}
		n.lastAny = max(now, 1)
	}
	if n.firstSync == 0 && (!n.newcomers[peer] || !n.holderInView(peer)) {
		n.firstSync = max(now, 1)
		n.firstPeer, n.firstStart = peer, start
	}
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats { return n.stats }

// NextDeadline returns the physical time at which Tick has work to do: a
// delta flush, a session to start (0, at once, for a member that arrived)
// or, while one is in flight (no other starts until it ends), its timeout.
func (n *Node) NextDeadline() int64 {
	d := n.ae.next
	switch {
	case n.ae.active && len(n.ae.s.awaits) > 0:
		d = min(n.ae.s.deadline, n.ae.s.retry)
	case n.ae.active:
		d = n.ae.s.deadline
	case len(n.ae.arrived) > 0:
		d = 0 // a session is due at once
	}
	if n.ae.unacked.held {
		d = min(d, n.ae.unacked.deadline) // a first sync held back (see finish)
	}
	if len(n.out.recs) > 0 {
		d = min(d, n.out.due)
	}
	return d
}

// Tick advances the node's timers to now and returns what to send.
func (n *Node) Tick(now int64) []Envelope {
	n.rebase(now)
	var out []Envelope
	if len(n.out.recs) > 0 && now >= n.out.due {
		out = n.flush(out, now)
	}
	out = n.tickAntiEntropy(out, now)
	return out
}

// Receive handles a frame from a member and returns what to send. A frame
// that cannot be decoded is counted, changes nothing, and returns an error.
// The node does not keep payload: the caller may reuse it.
func (n *Node) Receive(from string, payload []byte, now int64) ([]Envelope, error) {
	n.rebase(now)
	n.stats.FramesReceived++
	n.stats.BytesReceived += uint64(len(payload))
	m, err := n.codec.Decode(payload)
	if err != nil {
		n.stats.countReject(wire.Reason(err))
		return nil, fmt.Errorf("transport: frame from %q: %w", from, err)
	}
	if from == "" && !direct(m) {
		// Only a direct delta may come without its sender: every other
		// frame is relayed or answered, to someone it must name.
		n.stats.countReject("malformed") // counted with the frames that break the format
		n.codec.ReleaseRecords()         // a delta's: held until the next one else (found by review)
		return nil, fmt.Errorf("transport: %s frame without a sender", m.Kind())
	}
	switch m := m.(type) {
	case *wire.Delta:
		out := n.receiveDelta(from, m, payload, now)
		n.codec.ReleaseRecords() // hold none of its values until the next delta
		return out, nil
	case *wire.Direct:
		out := n.receiveDelta(from, m.Delta(), payload, now)
		n.codec.ReleaseRecords()
		return out, nil
	case *wire.Digest:
		return n.receiveDigest(from, m, now), nil
	case *wire.Versions:
		return n.receiveVersions(from, m, now), nil
	case *wire.Repair:
		return n.receiveRepair(from, m, now), nil
	case *wire.Reject:
		return n.receiveReject(from, m, now), nil
	}
	return nil, nil
}

// direct reports whether m is a delta sent straight from its writer.
func direct(m wire.Message) bool {
	switch m := m.(type) {
	case *wire.Direct:
		return true
	case *wire.Delta:
		return m.Origin == ""
	}
	return false
}

// UseDirect sets whether this node sends its direct deltas in their short
// form (wire.Direct) rather than as Deltas: a host sets it while every
// member it knows takes that form (members of releases before it refuse
// it as an unknown kind, and get the writes by anti-entropy instead).
func (n *Node) UseDirect(ok bool) { n.useDirect = ok }

// ListPrints sets whether this node's Versions, to every peer, carry
// their keys' prints (wire.Versions.Prints): a host sets it while every
// member it knows takes them (members of releases before refuse such a
// Versions as malformed). Without them, a key of a hash the responder
// holds another key of reaches the initiator only as a Reject that
// nothing awaits. It replaces what ListPrintsTo set.
func (n *Node) ListPrints(ok bool) { n.prints, n.printsTo = ok, nil }

// ListPrintsTo sets the peers this node's Versions carry prints to, for
// a host whose members do not all take them: a session's Versions go to
// its peer alone, so the members that take prints repair with them
// whatever the others are. It replaces what ListPrints set.
func (n *Node) ListPrintsTo(peers []string) {
	n.prints, n.printsTo = false, make(map[string]bool, len(peers))
	for _, p := range peers {
		n.printsTo[p] = true
	}
}

// ListsPrints reports whether this node's Versions to peer carry prints
// (ListPrints, ListPrintsTo).
func (n *Node) ListsPrints(peer string) bool { return n.prints || n.printsTo[peer] }

// send encodes m once and addresses it to every member in to.
func (n *Node) send(out []Envelope, m wire.Message, to ...string) []Envelope {
	h := n.cfg.Headroom
	frame, err := n.codec.Encode(make([]byte, h, h+frameSizeHint(m)), m)
	if err != nil {
		// Only a record over the decoder's limits can fail to encode; the
		// root package refuses those at Set.
		n.stats.EncodeErrors++
		return out
	}
	for _, t := range to {
		out = append(out, n.envelope(t, m.Kind(), frame))
		n.stats.countSent(m.Kind(), len(frame)-h)
	}
	return out
}

// envelope addresses frame, Headroom bytes and then the payload, to peer.
func (n *Node) envelope(to string, kind wire.Kind, frame []byte) Envelope {
	e := Envelope{To: to, Kind: kind, Payload: frame[n.cfg.Headroom:]}
	if n.cfg.Headroom > 0 {
		e.Frame = frame
	}
	return e
}

// frameSizeHint returns about how long m's frame is when it carries
// records or wants, else 0: a repair of megabytes grew its buffer by
// doubling, copying it each time, and a delta batch's buffer, grown from
// nothing, was seven allocations.
func frameSizeHint(m wire.Message) int {
	var recs []crdt.Record
	size := 64
	switch m := m.(type) {
	case *wire.Delta:
		recs, size = m.Records, size+len(m.Origin)
	case *wire.Direct:
		recs = m.Records
	case *wire.Repair:
		recs, size = m.Records, size+9*len(m.Wants)
	case *wire.Reject:
		recs = m.Records
	default:
		return 0
	}
	for i := range recs {
		size += wire.RecordSize(&recs[i])
	}
	return size
}

// receiveRecord applies r, counting the outcome, unless its wall is above
// bound: the clock refused it. The caller has moved the clock past the
// records of r's frame that it takes (crdt.HLC.UpdateAll, which returns
// bound), before applying any of them, so that a write made here after
// one of them is visible is stamped after it.
func (n *Node) receiveRecord(r crdt.Record, delta bool, now, bound int64) crdt.Outcome {
	if r.Time.Wall > bound {
		n.stats.ClockDriftRejects++
		return crdt.Refused
	}
	o := n.cfg.Replica.Apply(r, delta, now)
	switch o {
	case crdt.Applied:
		n.stats.RecordsApplied++
	case crdt.Rejected:
		n.stats.WatermarkRejects++
	case crdt.Late:
		n.stats.LateDeltas++
	}
	return o
}

// receiveRepairRecord applies a record that came by anti-entropy. A
// tombstone of node 0 is a peer's answer to a record it rejected (package
// lww, rule 3), here or anywhere, passed on like any record: a live value
// one replaces is noted as dropped.
func (n *Node) receiveRepairRecord(r crdt.Record, now, bound int64) crdt.Outcome {
	if !r.Tombstone || r.Time.Node != 0 {
		return n.receiveRecord(r, false, now, bound)
	}
	held, ok := n.cfg.Replica.Lookup(r.Key)
	o := n.receiveRecord(r, false, now, bound)
	if o == crdt.Applied && ok && held.Live(now) {
		n.stats.Dropped++
		n.dropped = append(n.dropped, held.Version())
	}
	return o
}

// answers returns the tombstones that answer rejected records.
func (n *Node) answers(rejected []crdt.Record) []crdt.Record {
	out := make([]crdt.Record, 0, len(rejected))
	for _, r := range rejected {
		out = append(out, n.cfg.Replica.Tombstone(r.Key))
	}
	return out
}

// Dropped returns, and clears, the live values the replica lost since the
// last call to a peer's answer to a record it rejected (a replica back from
// a long absence loses writes the cluster can no longer tell from deleted
// ones). The host reports them, after releasing whatever lock guards the
// Node.
func (n *Node) Dropped() []crdt.Version {
	d := n.dropped
	n.dropped = nil
	return d
}
