package proptest

import (
	"cmp"
	"fmt"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
	"github.com/bcache-go/bcache/transport"
)

// Replica is one member of a simulated cluster as the harness drives it.
// Implement it to put your own replica or CRDT under the harness: the
// harness owns time (each replica reads its physical clock through the phys
// function it was built with), the network and the faults, and checks the
// replica through its records.
//
// A replica is a map of keys to last-writer-wins records; Records must show
// what it holds, including tombstones and evicted entries, with the
// timestamps its writes were issued with. Methods are called from one
// goroutine. (For a data type that is not such a map, see Spec.)
//
// The contracts the harness relies on:
//
//   - Timestamps. Set and Delete return the record written, stamped by the
//     replica's own hybrid logical clock (crdt.NewHLC over the phys the
//     Factory got): each incarnation's stamps must strictly increase, and
//     their Node must be the Factory's id, which the harness draws fresh
//     for every incarnation and never reuses. The model orders writes by
//     these stamps alone.
//   - Frames. An Envelope's Kind only labels the frame in traces and
//     counters (sim.Stats): a replica with frames of its own may leave it
//     0. Payloads are the replica's bytes; the harness never reads them
//     (Config.Describe may, for the trace).
//   - Sessions. One session StartSession begins, carried to its end with
//     nothing else in flight, leaves both members holding the same
//     records: it repairs both ways (Config.OneWaySessions, if not). A
//     replica may leave a session unfinished only if it says so by
//     counting it (SessionCounter): one whose peer deferred it, or that
//     gave way to one of the peer's.
//   - Horizon. Config.Horizon must be the replica's own GC horizon: the
//     harness judges losses, and the records a late frame delivers, by
//     it. Set both from one constant. The harness cannot ask a replica
//     for it, but refuses to run bcache's own (a MapReplica or
//     StoreReplica, or a type that embeds one) under another: longer, it
//     failed a correct replica; shorter, it excused losses the
//     replica's horizon does not.
//   - Empty answers. GC, Drops and Tick may return nil: nothing collected,
//     dropped or to send.
type Replica interface {
	// Set writes a value (expires is an absolute Unix-ns expiry, 0 for
	// none) and returns the record written and the frames to send. The
	// record is the one asked for (the harness checks it), stamped with
	// the incarnation id the Factory was given (Time.Node).
	Set(key string, value []byte, expires int64) (crdt.Record, []transport.Envelope)
	// Delete writes a tombstone and returns it and the frames to send.
	Delete(key string) (crdt.Record, []transport.Envelope)
	// Get returns the value served for key, if any.
	Get(key string) ([]byte, bool)
	// Records returns every record held, in any order.
	Records() []crdt.Record
	// Evict drops a value locally to free memory.
	Evict(key string)
	// GC collects garbage at the replica's current time and returns the
	// versions collected.
	GC() []crdt.Version
	// Drops returns, and clears, the versions the replica dropped because a
	// peer rejected them (package lww, rule 3).
	Drops() []crdt.Version

	// SetMembers tells the replica the names of the members it can see,
	// its own included: all of them, or those on its side of a partition.
	// A member gone from the view has failed, unless the replica is told
	// it left (Leaver).
	SetMembers(names []string)
	// Tick lets the replica's timers run and returns frames to send.
	Tick() []transport.Envelope
	// Receive handles a frame and returns frames to send.
	Receive(from string, payload []byte) []transport.Envelope
	// StartSession starts an anti-entropy exchange with peer.
	StartSession(peer string) []transport.Envelope
}

// SessionCounter is a Replica that counts its anti-entropy sessions, as
// transport.Node.Stats does: the end of a run, which checks that one
// session repairs both sides, then tells a session left unfinished on
// purpose (deferred, given way to: the rounds after it complete another)
// from one that failed. A Replica that is not one must complete every
// session it is asked to start.
type SessionCounter interface {
	Sessions() SessionCounts
}

// SessionCounts are a replica's anti-entropy sessions so far.
type SessionCounts struct {
	Completed uint64 // started here, and completed
	Responded uint64 // started by a peer, and answered to their end
	Deferred  uint64 // openings left for a session of this replica's own with the opener
	Yielded   uint64 // started here, and given way to one of the peer's
}

// countsOf returns the session counts of a transport.Node's stats.
func countsOf(n *transport.Node) SessionCounts {
	st := n.Stats()
	return SessionCounts{Completed: st.SessionsCompleted, Responded: st.SessionsResponded, Deferred: st.OpeningsDeferred, Yielded: st.SessionsYielded}
}

// Sessions implements SessionCounter.
func (r *MapReplica) Sessions() SessionCounts { return countsOf(r.node) }

// Rejecter is a Replica that reports the records it rejected as below a
// watermark (package lww, rule 3), so that the harness checks each
// rejection when it happens rather than when its answer arrives.
type Rejecter interface {
	// Rejected returns, and clears, the versions rejected since the last
	// call, each with the replica's physical time when it rejected it.
	Rejected() []Rejection
}

// Rejection is a record a replica rejected, and when.
type Rejection struct {
	crdt.Version
	At int64
}

// rejectLog wraps the replica a Node keeps in sync and notes the records
// it rejects.
type rejectLog struct {
	transport.Replica
	log []Rejection
}

func (l *rejectLog) Apply(r crdt.Record, delta bool, now int64) crdt.Outcome {
	v := r.Version() // r.Value is the replica's once applied
	o := l.Replica.Apply(r, delta, now)
	if o == crdt.Rejected {
		l.log = append(l.log, Rejection{v, now})
	}
	return o
}

// StepBack forwards the node's step back of the clock to the replica it
// wraps (transport.ClockStepper): embedded as a transport.Replica, the
// wrapped replica's StepBack was hidden from the node.
func (l *rejectLog) StepBack(d int64) {
	if cs, ok := l.Replica.(transport.ClockStepper); ok {
		cs.StepBack(d)
	}
}

func (l *rejectLog) take() []Rejection {
	out := l.log
	l.log = nil
	return out
}

// Leaver is a Replica that tells a member that left on purpose from one
// that failed: the harness's leave action tells the others with Left.
type Leaver interface {
	Left(name string)
}

// A KeepsLeaver is a Leaver told, besides, whether the member that left
// keeps its state (it may come back from its snapshot under its name) or
// keeps nothing, as a Cache's peers are told by the metadata it leaves
// with (transport.Node.Left): Cluster.Leave calls LeftKeeping instead of
// Left, keeps true if the member ever saved a snapshot
// (Cluster.Snapshot), false if not (a Cache without a SnapshotPath). The
// harness's replicas said every leaver kept its state, so a peer's
// roster waited for it to come back: the ended incarnation of one that
// kept nothing, which the node retires sooner, ran under no property
// (found by review).
type KeepsLeaver interface {
	LeftKeeping(name string, keeps bool)
}

// A Puller is a Replica that pulls from a member that leaves, as a
// Cache's peer does when the member's Close asks it to
// (transport.Node.Pull): it starts a session with it, and Pulled reports
// whether that session, numbered seq, or a later one with the member, has
// completed. The harness's "hand over" action uses it: once Pulled, a live
// member must hold every record the leaving member held, or a newer one.
type Puller interface {
	Pull(peer string) ([]transport.Envelope, uint64)
	Pulled(peer string, seq uint64) bool
}

// Restarter is a Replica told that a member restarted in place: a new
// process under the name of one in its view, which it never saw go (see
// transport.Node.Restarted). The harness's bounce action tells the
// others, or leaves them to learn it from the new process's sessions, as
// memberlist may tell a Cache late, or not before those sessions.
type Restarter interface {
	Restarted(name string)
}

// Evictor is a Replica that says whether it may drop values on its own
// (it bounds what it holds, or a value's size). When none may, and the
// harness's evict action is left out, no member may hold a record as
// evicted (but the adversary's): the harness checks that. A replica that
// is not an Evictor may.
type Evictor interface {
	MayEvict() bool
}

// A Bounded replica holds at most a number of values and of their key and
// value bytes: the harness checks, after every step, that it holds no
// more (a bound of 0 is none). Bounds returns what it holds and its
// bounds.
type Bounded interface {
	Bounds() (values, maxValues int, bytes, maxBytes int64)
}

// A DeadBounded replica holds at most a number of dead records
// (tombstones and values past their expiry, dead at its clock's now) and
// of bytes of their keys once it has collected, when bound (it may
// collect by the bounds: package lww, rule 7): the harness checks, after
// each of its collections, that it holds no more (a bound of 0 is none).
// DeadBounds returns what it holds and its bounds, as its configuration
// asked for them (not as its store reports them: a bound that did not
// reach the store is what the check is for).
type DeadBounded interface {
	DeadBounds() (dead, maxDead int, keyBytes, maxKeyBytes int64, bound bool)
}

// horizoned is a replica that says its GC horizon: bcache's own, and
// the types that embed them. Unexported, so that the Replica API stays
// as it is: a researcher's replica is trusted to run Config.Horizon.
type horizoned interface {
	gcHorizon() time.Duration
}

func (r *MapReplica) gcHorizon() time.Duration   { return r.horizon }
func (r *StoreReplica) gcHorizon() time.Duration { return r.horizon }

// horizonChecked returns factory, refusing a replica that says its GC
// horizon (horizoned) and runs another than horizon, Config.Horizon,
// which the model judges it by: with a longer Config.Horizon, the
// harness reports a write a late frame delivers, or a loss, that the
// replica's rules allow (a false failure); with a shorter one, it
// excuses losses they do not allow (a missed one). Every incarnation
// is checked, so that a Vary that sets one member's horizon apart is
// refused too.
func horizonChecked(factory Factory, horizon time.Duration) Factory {
	return func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		r, err := factory(name, id, phys)
		if err != nil || r == nil {
			return r, err
		}
		if hr, ok := r.(horizoned); ok && hr.gcHorizon() != horizon {
			return nil, fmt.Errorf("its GC horizon is %v, but Config.Horizon is %v: the harness judges losses and late deliveries by Config.Horizon, and would fail a correct replica under a longer one or pass lost writes under a shorter one (set both from one constant; a zero StoreConfig.Horizon or lww.Config.Horizon is %v, a zero Config.Horizon with a Factory one minute)",
				hr.gcHorizon(), horizon, lww.DefaultHorizon)
		}
		return r, nil
	}
}

// Factory builds the replica named name for a fresh incarnation id, reading
// physical time (Unix ns) from phys.
type Factory func(name string, id crdt.NodeID, phys func() int64) (Replica, error)

// MapConfig configures bcache's own replica.
type MapConfig struct {
	Map       lww.Config
	Transport transport.Config // Name, Replica and Clock are filled in
	MaxDrift  time.Duration
	// Merge, if set, replaces how the replica merges records it receives:
	// a seam for experimenting with other merge rules under the harness.
	// nil selects bcache's (lww.Map.Merge).
	Merge func(m *lww.Map, r crdt.Record, delta bool, now int64) crdt.Outcome
}

// MapReplica is bcache's replica: an lww.Map synchronized by a
// transport.Node. It is what the root package runs, minus locks, sockets
// and the local LRU.
type MapReplica struct {
	phys    func() int64
	clock   *crdt.HLC
	m       *lww.Map
	node    *transport.Node
	rejects rejectLog
	horizon time.Duration // the map's GC horizon (see gcHorizon)
}

// NewMapReplica returns bcache's replica.
func NewMapReplica(name string, id crdt.NodeID, phys func() int64, cfg MapConfig) (*MapReplica, error) {
	m, err := lww.New(cfg.Map)
	if err != nil {
		return nil, err
	}
	r := &MapReplica{phys: phys, clock: crdt.NewHLC(id, phys, cfg.MaxDrift), m: m, horizon: cmp.Or(cfg.Map.Horizon, lww.DefaultHorizon)}
	r.rejects.Replica = mapAdapter{m, cfg.Merge}
	tc := cfg.Transport
	tc.Name, tc.Replica, tc.Clock = name, &r.rejects, r.clock
	if r.node, err = transport.New(tc); err != nil {
		return nil, err
	}
	r.node.UseDirect(true)    // as a member of this release among others: every member takes
	r.node.OpenWithRoot(true) // these, as the Replicator sets them
	r.node.ListPrints(true)
	return r, nil
}

// MapFactory returns a Factory of MapReplicas with the given configuration.
func MapFactory(cfg MapConfig) Factory {
	return func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		return NewMapReplica(name, id, phys, cfg)
	}
}

// Map returns the replica's map, for inspection.
func (r *MapReplica) Map() *lww.Map { return r.m }

// Node returns the replica's protocol node, for inspection.
func (r *MapReplica) Node() *transport.Node { return r.node }

// FirstSync returns its node's first sync (Syncer).
func (r *MapReplica) FirstSync() int64 { return r.node.FirstSync() }

// FirstSyncWith returns the peer and start of its node's first sync
// (Syncer).
func (r *MapReplica) FirstSyncWith() (string, int64) { return r.node.FirstSyncWith() }

// FirstSyncUnacked says its node's first sync was taken without the
// peer's acknowledgement of what it pushed (UnackedSyncer).
func (r *MapReplica) FirstSyncUnacked() bool { return r.node.FirstSyncUnacked() }

// SetNewcomers tells its node the members that do not hold their
// cluster's state yet (Syncer).
func (r *MapReplica) SetNewcomers(names []string) { r.node.SetNewcomers(names) }

// write applies a local record and queues it as a delta.
func (r *MapReplica) write(rec crdt.Record) (crdt.Record, []transport.Envelope) {
	r.m.Merge(rec, false, 0, nil)
	return rec, r.node.Write(rec, r.phys())
}

// Set implements Replica.
func (r *MapReplica) Set(key string, value []byte, expires int64) (crdt.Record, []transport.Envelope) {
	return r.write(crdt.Record{Key: key, Value: value, Time: r.clock.Now(), Expires: expires})
}

// Delete implements Replica.
func (r *MapReplica) Delete(key string) (crdt.Record, []transport.Envelope) {
	return r.write(crdt.Record{Key: key, Time: r.clock.Now(), Tombstone: true})
}

// Get implements Replica.
func (r *MapReplica) Get(key string) ([]byte, bool) { return r.m.Get(key, r.phys()) }

// Records implements Replica.
func (r *MapReplica) Records() []crdt.Record {
	out := make([]crdt.Record, 0, r.m.Records())
	r.m.Range(func(rec crdt.Record) bool {
		out = append(out, rec)
		return true
	})
	return out
}

// Evict implements Replica.
func (r *MapReplica) Evict(key string) { r.m.Evict(key) }

// GC implements Replica: dead records past the horizon, and those below the
// protocol's stable bound.
func (r *MapReplica) GC() []crdt.Version {
	return r.m.GC(nil, r.phys(), r.node.Stable(r.phys()))
}

// Drops implements Replica.
func (r *MapReplica) Drops() []crdt.Version { return r.node.Dropped() }

// SetMembers implements Replica.
func (r *MapReplica) SetMembers(names []string) { r.node.SetMembers(names, r.phys()) }

// Rejected implements Rejecter.
func (r *MapReplica) Rejected() []Rejection { return r.rejects.take() }

// Refused implements Refuser.
func (r *MapReplica) Refused() uint64 { return r.node.Stats().RejectedFrames() }

// A Refuser is a Replica that counts the frames it refused as malformed,
// too large, of another version or of an unknown kind. Among honest
// members the harness requires none: a member that refuses what another
// sends has a protocol bug, which anti-entropy would otherwise hide.
type Refuser interface {
	Refused() uint64
}

// Left implements Leaver.
func (r *MapReplica) Left(name string) { r.node.Left(name, true, r.phys()) } // a member may come back from its snapshot

// LeftKeeping implements KeepsLeaver.
func (r *MapReplica) LeftKeeping(name string, keeps bool) { r.node.Left(name, keeps, r.phys()) }

// Tick implements Replica.
func (r *MapReplica) Tick() []transport.Envelope { return r.node.Tick(r.phys()) }

// Receive implements Replica. Frames the node refuses are counted in its
// stats; the harness sends only well-formed frames.
func (r *MapReplica) Receive(from string, payload []byte) []transport.Envelope {
	out, _ := r.node.Receive(from, payload, r.phys())
	return out
}

// StartSession implements Replica.
func (r *MapReplica) StartSession(peer string) []transport.Envelope {
	return r.node.StartSession(peer, r.phys())
}

// Pull implements Puller.
func (r *MapReplica) Pull(peer string) ([]transport.Envelope, uint64) {
	return r.node.Pull(peer, r.phys())
}

// Pulled implements Puller.
func (r *MapReplica) Pulled(peer string, seq uint64) bool { return r.node.Pulled(peer, seq) }

// Snapshotter is a Replica that can save its state and start from it
// again, as a bcache member with a snapshot file does (Config.SnapshotPath
// of package bcache). The harness's snapshot and restore actions use it
// when the replicas under test implement it.
type Snapshotter interface {
	Replica
	// Snapshot returns a copy of the replica's durable state, unaffected by
	// the replica's later changes.
	Snapshot() any
	// Restore loads a state that Snapshot returned into a new replica (a
	// new incarnation), before it handles anything else.
	Restore(state any) error
}

// A StalledWriter is a Replica whose writes can be stamped and applied
// apart, as by a writer descheduled between its clock and its store:
// StampSet stamps a write of key now, and the function it returns applies
// it (and returns what Set would), once.
type StalledWriter interface {
	Replica
	StampSet(key string, value []byte, expires int64) func() (crdt.Record, []transport.Envelope)
}

// A MemberKeeper is a Snapshotter whose replica, restored, counts again
// the members its snapshot's incarnation counted for early collection (as
// a bcache member restored from its snapshot counts those its members
// file lists), if KeepsMembers says so. Restored from a Cluster.Snapshot,
// the Cluster's model then takes it for knowing them (see
// Cluster.UnknownTo): their writes it collects early over are losses, not
// excused.
type MemberKeeper interface {
	Snapshotter
	KeepsMembers() bool
}

// A FileKeeper is a Replica that plays a member with files (a bcache
// member with a SnapshotPath, which keeps a clock floor beside its
// snapshot: see ClockFloor) unless NoFiles makes it one without, as the
// harness's "restart behind" action restarts a member. A member without
// files keeps no floor, and instead keeps a live value of its own
// process that a peer's answer from before its start would delete,
// writing it again (store.KeepAnswered): an AnswerKeeper. It takes no
// snapshot (the harness's snapshot action skips it).
type FileKeeper interface {
	Replica
	// KeepsFiles reports whether it plays a member with files.
	KeepsFiles() bool
	// NoFiles makes it a member without files; called as it starts,
	// before it takes any record.
	NoFiles()
	// Floor returns the clock floor it keeps, a wall time (0: none), up
	// or down: a restart from its snapshot with the clock more than
	// MaxClockDrift behind it is one a Cache refuses (ErrAheadOfClock).
	Floor() int64
}

// An AnswerKeeper is a Replica that may write again, with a new stamp, a
// value of its own a peer's answer would replace (store.KeepAnswered):
// Kept returns, and clears, those writes, in the order it made them.
// The harness checks each as a write of the member's (newer than every
// one it made before); and, for a member without files (FileKeeper),
// it judges a peer's refusal of such a value, or an answer over it held
// elsewhere, when the answer reaches the writer: there, taken over the
// value, it is a loss like any, unless the rules allow it.
type AnswerKeeper interface {
	Replica
	Kept() []crdt.Record
}

// A Monotonic Replica is told, as the Cluster builds it, the monotonic
// clock of its process: the Cluster's time, which no skew moves (see
// Cluster.SetSkew). A Cache reads one to measure the time since its
// start, whatever its physical clock does (Cache.startedOnPeersClock).
type Monotonic interface {
	SetMonotonic(now func() int64)
}

// mapSnapshot is a MapReplica's durable state: its records and the GC
// watermark of every digest leaf.
type mapSnapshot struct {
	records []crdt.Record
	marks   []crdt.Timestamp // per leaf, as Watermark returns it
}

// Snapshot implements Snapshotter. Record values are never modified in
// place, so the copy shares them.
func (r *MapReplica) Snapshot() any {
	s := mapSnapshot{records: r.Records(), marks: make([]crdt.Timestamp, r.m.Tree().Leaves())}
	for leaf := range s.marks {
		s.marks[leaf], _ = r.m.Watermark(uint32(leaf))
	}
	return s
}

// Restore implements Snapshotter the way a bcache member restores its
// snapshot file: the records as anti-entropy receives them (through the
// clock's drift check, moving the clock past each), then the watermarks.
func (r *MapReplica) Restore(state any) error {
	s, ok := state.(mapSnapshot)
	if !ok || len(s.marks) != r.m.Tree().Leaves() {
		return fmt.Errorf("proptest: restore: a %T is not a snapshot of this replica's shape", state)
	}
	for _, rec := range s.records {
		if r.clock.Update(rec.Time) == nil {
			r.m.Merge(rec, false, 0, nil)
		}
	}
	for leaf, w := range s.marks {
		r.m.RaiseWatermark(uint32(leaf), w, r.phys()) // a leaf's "none" raises nothing
	}
	return nil
}

// mapAdapter presents an lww.Map as a transport.Replica.
type mapAdapter struct {
	*lww.Map
	merge func(m *lww.Map, r crdt.Record, delta bool, now int64) crdt.Outcome
}

func (a mapAdapter) Apply(r crdt.Record, delta bool, now int64) crdt.Outcome {
	if a.merge != nil {
		return a.merge(a.Map, r, delta, now)
	}
	o, _ := a.Merge(r, delta, now, nil)
	return o
}
