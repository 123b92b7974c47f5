package proptest

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/lww"
	"github.com/bcache-go/bcache/transport"
)

// StoreConfig configures the replica a bcache member runs in production
// (a Cache minus its goroutines and sockets): the sharded store with its
// digest of digests, lock-free index, eviction and snapshot file format,
// synchronized by a transport.Node.
type StoreConfig struct {
	// Shards, DigestBits, Horizon, MaxKeys, MaxBytes, MaxValueSize,
	// MaxDead and MaxDeadBytes shape the store (see bcache.Config; MaxDead
	// is its MaxDeadRecords); zero selects the production values. MaxValueSize
	// applies to what the replica receives: the harness's own writes are
	// not checked against it (a Cache refuses them at Set).
	Shards, DigestBits int
	Horizon            time.Duration
	MaxKeys            int
	MaxBytes           int64
	MaxValueSize       int
	MaxDead            int
	MaxDeadBytes       int64
	// MaxDrift is the clock's MaxClockDrift; zero selects the default.
	MaxDrift time.Duration
	// Transport tunes the protocol; Name, Replica and Clock are filled in.
	Transport transport.Config
	// Founder names the member started with no peers to join (it stands
	// for the whole cluster while it is alone); the others were given
	// peers. Empty: none.
	Founder string
	// Vary, if set, adjusts the configuration of the member called name,
	// so that members that disagree about their bounds share a cluster.
	Vary func(name string, cfg *StoreConfig)
	// Wrap, if set, stands between the store and the protocol: a seam for
	// experimenting with other rules (a merge, a rejection policy) on the
	// production store, and for the broken variants the harness must catch.
	Wrap func(Store) transport.Replica
	// Stable, if set, replaces the stable bound the protocol computes
	// (transport.Node.Stable) when the replica collects: the same seam for
	// early collection.
	Stable func(computed, now int64) int64
	// FillTTL is the TTL of the values cluster fills write (a Cache's
	// Config.FillTTL); zero: none. FillTimeout is how long a member waits
	// for the owner it asked (Config.FillTimeout); zero selects a Cache's
	// default, 10 s.
	FillTTL, FillTimeout time.Duration
	// Answer, if set, stands between a member that asked a key's owner to
	// fill it and the owner's answer: it gets the record answered and the
	// member's own rule (apply it as a received record and read the key
	// back; false: fill here) and returns what the caller gets. A seam
	// for the broken variants the harness must catch.
	Answer func(answered crdt.Record, rule func(crdt.Record) ([]byte, bool)) ([]byte, bool)
	// NoMarks, if set, makes the replicas ask no peer for its watermarks
	// (a Cache asks once synced: see marks.go).
	NoMarks bool
	// Marks, if set, stands between the watermarks a peer answered and
	// the store they are offered to (at now): a seam for the broken
	// variants the harness must catch, and for forged marks it must
	// pass.
	Marks func(answered []store.Mark, now int64) []store.Mark
	// MarksWhole makes the replicas raise their watermarks to a peer's
	// marks at once, as a restore takes a snapshot's, not within their
	// stable bound: the broken variant of the bound.
	MarksWhole bool
	// NoFloor makes a replica restored from its snapshot start its clock
	// past the newest stamp it restored only, not past the clock floor
	// kept beside the snapshot (ClockFloor): the broken variant of the
	// floor, as a release before it restarted.
	NoFloor bool
	// KeepNoAnswers makes a member without files (FileKeeper) take a
	// peer's answer over a live value of its own from before its start,
	// as it would without store.KeepAnswered: the broken variant of it.
	KeepNoAnswers bool
}

// ClockFloor is the clock floor a member with files keeps beside its
// snapshot (bcache's clockfloor.go): a reading of its clock that no cut
// it reports passes (transport.Config.CutCeiling), and past which a
// restart from its snapshot starts its clock. It is the files' own, not
// an incarnation's: the incarnations restored from a StoreSnapshot keep
// raising the one it names, as a file on disk outlives the process that
// wrote it, and a restart from an older snapshot finds it as the last
// life left it.
type ClockFloor struct{ wall int64 }

// Wall returns the floor, a wall time in Unix ns (0: none written).
func (f *ClockFloor) Wall() int64 { return f.wall }

// Store is the production store as Wrap sees it: the replica the protocol
// drives, plus a lookup of any key's record.
type Store interface {
	transport.Replica
	transport.ClockStepper // the store's sync mark follows the node's clock back: wrappers that embed Store forward it
	// Lookup returns the record held for key, whatever its state.
	Lookup(key string) (crdt.Record, bool)
}

// DefaultStoreConfig is the production replica as the harness runs it by
// default: 16 shards over an 8-bit digest (so that keys share buckets and
// the digest is assembled from shard subtrees), a one-minute horizon so
// that runs exercise collection, a stable margin above the largest skew
// between two members' clocks that the harness sets by default (twice its
// MaxSkew of 5 s: early collection assumes clocks agree within the
// margin), failed members counted for a horizon as bcache counts them
// (absences and partitions outlast that often), small repair steps so that sessions take
// several, a broadcast fan-out of 2 so that clusters of 4 relay deltas,
// member n0 as the founder, and members that disagree about bounds: n1
// keeps at most 2 values, n2 at most 12 bytes of them, and n3 no value
// over 4 bytes.
func DefaultStoreConfig() StoreConfig {
	return StoreConfig{
		Shards: 16, DigestBits: 8, Horizon: time.Minute,
		Transport: transport.Config{
			LeavesPerStep: 4, MaxRepairBytes: 512, Fanout: 2,
			StableMargin: 11 * time.Second, FailedTimeout: time.Minute,
		},
		Founder: "n0",
		FillTTL: 30 * time.Second,
		Vary: func(name string, cfg *StoreConfig) {
			switch name {
			case "n1":
				cfg.MaxKeys = 2
			case "n2":
				cfg.MaxBytes = 12
			case "n3":
				cfg.MaxValueSize = 4
			}
		},
	}
}

// StoreFactory returns a Factory of StoreReplicas with the given
// configuration.
func StoreFactory(cfg StoreConfig) Factory {
	return func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		return NewStoreReplica(name, id, phys, cfg)
	}
}

// StoreReplica is the replica a bcache member runs: the production store
// synchronized by a transport.Node, driven by the harness's clock and
// network instead of goroutines and sockets.
type StoreReplica struct {
	name    string
	phys    func() int64
	clock   *crdt.HLC
	s       *store.Store
	node    *transport.Node
	tc      transport.Config // the node's, for a restore to build it again
	members int              // the size of the membership view, this member included
	stable  func(computed, now int64) int64
	rejects rejectLog
	// cluster fills
	fills                fillState
	fillTTL, fillTimeout time.Duration
	skew                 int64 // the store's MaxClockSkew: see MayRestamp
	answerRule           func(crdt.Record, func(crdt.Record) ([]byte, bool)) ([]byte, bool)
	maxKeys              int
	maxBytes             int64
	maxDead              int   // as asked for (see DeadBounded)
	maxDeadBytes         int64 // as asked for
	mayEvict             bool  // it has a bound on what it holds, or on a value's size
	// peers' watermarks (marks.go)
	marks        marksState
	founder      bool
	noMarks      bool
	marksVariant func([]store.Mark, int64) []store.Mark
	marksWhole   bool
	// the clock floor of a member with files (nil: one without, see
	// NoFiles), the cut it is asked to rise to, when keepFloor may write
	// it next (on the monotonic clock), and how often it writes
	floor                 *ClockFloor
	floorWant, floorNext  int64
	floorEvery            time.Duration
	noFloor, keepNoAnswer bool
	// a member without files: the values it wrote again over a peer's
	// answer (store.KeepAnswered), its start on its physical clock and on
	// the monotonic one (SetMonotonic), and its clock's MaxClockDrift
	kept                 []crdt.Record
	started, startedMono int64
	mono                 func() int64
	drift                time.Duration
	horizon              time.Duration // the store's GC horizon (see gcHorizon)
}

// NewStoreReplica returns the production replica named name.
func NewStoreReplica(name string, id crdt.NodeID, phys func() int64, cfg StoreConfig) (*StoreReplica, error) {
	if cfg.Vary != nil {
		cfg.Vary(name, &cfg)
	}
	skew := cmp.Or(cfg.Transport.StableMargin, transport.DefaultStableMargin)
	s, err := store.New(store.Config{
		Shards: cfg.Shards, DigestBits: cfg.DigestBits, Horizon: cfg.Horizon, MaxClockDrift: cfg.MaxDrift,
		MaxClockSkew: skew,
		MaxKeys:      cfg.MaxKeys, MaxBytes: cfg.MaxBytes, MaxValueSize: cfg.MaxValueSize, MaxDead: cfg.MaxDead,
		MaxDeadBytes: cfg.MaxDeadBytes, Founder: name == cfg.Founder,
	})
	if err != nil {
		return nil, err
	}
	r := &StoreReplica{
		name: name, phys: phys, clock: crdt.NewHLC(id, phys, cfg.MaxDrift), s: s, members: 1, stable: cfg.Stable, skew: int64(skew),
		fillTTL: cfg.FillTTL, fillTimeout: cmp.Or(cfg.FillTimeout, fillTimeout), answerRule: cfg.Answer,
		mayEvict: cfg.MaxKeys > 0 || cfg.MaxBytes > 0 || cfg.MaxValueSize > 0,
		maxKeys:  cfg.MaxKeys, maxBytes: cfg.MaxBytes, maxDead: cfg.MaxDead, maxDeadBytes: cfg.MaxDeadBytes,
		founder: name == cfg.Founder, noMarks: cfg.NoMarks, marksVariant: cfg.Marks, marksWhole: cfg.MarksWhole,
		floor: &ClockFloor{}, noFloor: cfg.NoFloor, keepNoAnswer: cfg.KeepNoAnswers,
		started: phys(), drift: cmp.Or(cfg.MaxDrift, crdt.DefaultMaxClockDrift),
		horizon: cmp.Or(cfg.Horizon, lww.DefaultHorizon), // as the store's lww.Maps default it
		// as a Cache's floorEvery: five anti-entropy rounds, from half a
		// second to a minute
		floorEvery: min(max(5*cmp.Or(cfg.Transport.AntiEntropyInterval, transport.DefaultAntiEntropyInterval), 500*time.Millisecond), time.Minute),
	}
	// Calls are numbered from the incarnation's id, as a Cache draws
	// them at random: an owner's answer to a call of an earlier
	// incarnation, in flight as it crashed, reaches this one, and
	// numbered from 1 in each, it ended this one's call of the same
	// number, of another key (found by review, once frames outlived a
	// crash: TestAFillAnswerToAnEndedIncarnationEndsNoCallOfTheNext).
	r.fills.nextID = uint64(id) << 32
	kept := keptAnswers{s, r}
	r.rejects.Replica = kept
	if cfg.Wrap != nil {
		r.rejects.Replica = cfg.Wrap(kept)
	}
	r.tc = cfg.Transport
	r.tc.Name, r.tc.Replica, r.tc.Clock = name, &r.rejects, r.clock
	if r.tc.CutCeiling == nil {
		r.tc.CutCeiling = r.cutCeiling // as a Cache with a SnapshotPath sets it
	}
	if err := r.newNode(nil); err != nil {
		return nil, err
	}
	r.startFloor()
	r.s.Overtaken(func(t crdt.Timestamp) bool { return r.node.Overtaken(t) }, r.clock.Now) // as a Cache does
	return r, nil
}

// newNode builds the replica's transport.Node, counting known (see
// transport.Config.Known).
func (r *StoreReplica) newNode(known []transport.Known) error {
	tc := r.tc
	tc.Known = known
	n, err := transport.New(tc)
	if err != nil {
		return err
	}
	n.UseDirect(true)    // as a member of this release among others: every member takes
	n.OpenWithRoot(true) // these, as the Replicator sets them
	n.ListPrints(true)
	r.node = n
	return nil
}

// MayEvict implements Evictor.
func (r *StoreReplica) MayEvict() bool { return r.mayEvict }

// Bounds implements Bounded.
func (r *StoreReplica) Bounds() (values, maxValues int, bytes, maxBytes int64) {
	st := r.s.Stats()
	return st.Keys, r.maxKeys, st.Bytes, r.maxBytes
}

// DeadBounds implements DeadBounded: the records dead at its clock's now,
// as Collect counts those it may take by the bounds.
func (r *StoreReplica) DeadBounds() (dead, maxDead int, keyBytes, maxKeyBytes int64, bound bool) {
	now := r.phys()
	r.s.Range(func(rec crdt.Record) bool {
		if since, dies := rec.DeadSince(); dies && since <= now {
			dead++
			keyBytes += int64(len(rec.Key))
		}
		return true
	})
	return dead, r.maxDead, keyBytes, r.maxDeadBytes, r.s.BoundsDead()
}

// Node returns the replica's protocol node, for inspection.
func (r *StoreReplica) Node() *transport.Node { return r.node }

// FirstSync returns its node's first sync (Syncer).
func (r *StoreReplica) FirstSync() int64 { return r.node.FirstSync() }

// FirstSyncWith returns the peer and start of its node's first sync
// (Syncer).
func (r *StoreReplica) FirstSyncWith() (string, int64) { return r.node.FirstSyncWith() }

// FirstSyncUnacked says its node's first sync was taken without the
// peer's acknowledgement of what it pushed (UnackedSyncer).
func (r *StoreReplica) FirstSyncUnacked() bool { return r.node.FirstSyncUnacked() }

// SetNewcomers tells its node the members that do not hold their
// cluster's state yet (Syncer).
func (r *StoreReplica) SetNewcomers(names []string) { r.node.SetNewcomers(names) }

// Sessions implements SessionCounter.
func (r *StoreReplica) Sessions() SessionCounts { return countsOf(r.node) }

// write applies a local record and queues it as a delta.
func (r *StoreReplica) write(rec crdt.Record) (crdt.Record, []transport.Envelope) {
	rec, err := r.s.Write(rec)
	if err != nil {
		panic(fmt.Sprintf("proptest: a write to an open store failed: %v", err))
	}
	return rec, r.node.Write(rec, r.phys())
}

// StampSet implements StalledWriter.
func (r *StoreReplica) StampSet(key string, value []byte, expires int64) func() (crdt.Record, []transport.Envelope) {
	rec := crdt.Record{Key: key, Value: value, Time: r.clock.Now(), Expires: expires}
	return func() (crdt.Record, []transport.Envelope) { return r.write(rec) }
}

// Set implements Replica.
func (r *StoreReplica) Set(key string, value []byte, expires int64) (crdt.Record, []transport.Envelope) {
	return r.StampSet(key, value, expires)()
}

// Delete implements Replica.
func (r *StoreReplica) Delete(key string) (crdt.Record, []transport.Envelope) {
	return r.write(crdt.Record{Key: key, Time: r.clock.Now(), Tombstone: true})
}

// Get implements Replica.
func (r *StoreReplica) Get(key string) ([]byte, bool) { return r.s.Get(key, r.phys) }

// Records implements Replica.
func (r *StoreReplica) Records() []crdt.Record {
	var out []crdt.Record
	r.s.Range(func(rec crdt.Record) bool {
		out = append(out, rec)
		return true
	})
	return out
}

// Evict implements Replica.
func (r *StoreReplica) Evict(key string) { r.s.Evict(key) }

// GC implements Replica: the store collects as a Cache's collection timer
// has it do, alone when its membership view holds no other member, early
// below the protocol's stable bound.
func (r *StoreReplica) GC() []crdt.Version {
	now := r.phys()
	stable := r.node.Stable(now)
	if r.stable != nil {
		stable = r.stable(stable, now)
	}
	return r.s.Collect(now, r.members <= 1, stable)
}

// Drops implements Replica.
func (r *StoreReplica) Drops() []crdt.Version { return r.node.Dropped() }

// SetMembers implements Replica.
func (r *StoreReplica) SetMembers(names []string) {
	r.fills.view = slices.Clone(names)
	r.node.SetMembers(names, r.phys())
	r.members = r.node.Members()
}

// Rejected implements Rejecter.
func (r *StoreReplica) Rejected() []Rejection { return r.rejects.take() }

// Left implements Leaver.
func (r *StoreReplica) Left(name string) { r.node.Left(name, true, r.phys()) } // a member may come back from its snapshot

// LeftKeeping implements KeepsLeaver.
func (r *StoreReplica) LeftKeeping(name string, keeps bool) { r.node.Left(name, keeps, r.phys()) }

// Restarted implements Restarter, as the gossip layer tells the node.
func (r *StoreReplica) Restarted(name string) { r.node.Restarted(name, r.phys()) }

// Tick implements Replica.
func (r *StoreReplica) Tick() []transport.Envelope {
	r.keepFloor()
	return append(append(r.node.Tick(r.phys()), r.tickFills()...), r.tickMarks()...)
}

// Refused implements Refuser.
func (r *StoreReplica) Refused() uint64 { return r.node.Stats().RejectedFrames() }

// Receive implements Replica. Frames the node refuses are counted in its
// stats.
func (r *StoreReplica) Receive(from string, payload []byte) []transport.Envelope {
	if len(payload) > 0 && payload[0] == callMarker {
		return r.receiveCall(from, payload)
	}
	out, _ := r.node.Receive(from, payload, r.phys())
	return out
}

// StartSession implements Replica.
func (r *StoreReplica) StartSession(peer string) []transport.Envelope {
	return r.node.StartSession(peer, r.phys())
}

// Pull implements Puller.
func (r *StoreReplica) Pull(peer string) ([]transport.Envelope, uint64) {
	return r.node.Pull(peer, r.phys())
}

// Pulled implements Puller.
func (r *StoreReplica) Pulled(peer string, seq uint64) bool { return r.node.Pulled(peer, seq) }

// StoreSnapshot is a StoreReplica's durable state, as a Cache keeps it:
// the store's snapshot file and the members file beside it.
type StoreSnapshot struct {
	File []byte
	// Known is what the node counted for the stable bound, taken before
	// the file was written (a session completing while it is written
	// raises a cut the file may not hold the records of), as the Cache
	// takes it.
	Known []transport.Known
	// Floor is the clock floor kept beside the file: the member's, which
	// its incarnations go on raising after the snapshot was taken (see
	// ClockFloor).
	Floor *ClockFloor
}

// KeepsMembers implements MemberKeeper: the replica restores the members
// it knew (StoreSnapshot.Known).
func (r *StoreReplica) KeepsMembers() bool { return true }

// Snapshot implements Snapshotter: a StoreSnapshot.
func (r *StoreReplica) Snapshot() any {
	known := r.node.Known(r.phys())
	var buf bytes.Buffer
	if _, err := r.s.WriteSnapshot(&buf, r.phys()); err != nil {
		panic(fmt.Sprintf("proptest: snapshot to memory: %v", err))
	}
	return StoreSnapshot{File: buf.Bytes(), Known: known, Floor: r.floor}
}

// Restore implements Snapshotter: it reads the file of the StoreSnapshot
// and restores it as a Cache does at New, and builds the node again with
// the members it knew (given a membership view before, the new node gets
// it too).
func (r *StoreReplica) Restore(state any) error {
	return r.restoreWith(state, nil)
}

// restoreWith is Restore, with change, if not nil, run on the snapshot
// read before it is restored (the broken variants').
func (r *StoreReplica) restoreWith(state any, change func(*store.Snapshot)) error {
	st, ok := state.(StoreSnapshot)
	if !ok {
		return fmt.Errorf("proptest: restore: a %T is not a StoreSnapshot", state)
	}
	snap, err := store.ReadSnapshot(bytes.NewReader(st.File), int64(len(st.File)), r.s.DigestBits())
	if err != nil {
		return err
	}
	if change != nil {
		change(snap)
	}
	r.s.Restore(snap, r.clock, r.phys())
	if st.Floor != nil { // the floor beside the file, as its last life left it
		r.floor, r.floorWant, r.floorNext = st.Floor, 0, 0
		// The clock starts past it, as a Cache's restore starts it
		// (snapshot.go), unless it is more than MaxClockDrift ahead: a
		// Cache then fails New (or, under DamageReset, starts below it),
		// which no harness restore plays.
		if !r.noFloor && r.floor.wall > 0 {
			if err := r.clock.Update(store.PastFloor(r.floor.wall)); err != nil {
				return fmt.Errorf("proptest: restore: the clock floor is ahead of the clock: %w", err)
			}
		}
	}
	if err := r.newNode(st.Known); err != nil {
		return err
	}
	r.startFloor()
	if r.fills.view != nil {
		r.SetMembers(r.fills.view)
	}
	return nil
}

// startFloor writes the clock's reading as the floor, as a Cache with a
// SnapshotPath given peers to join does at New (bcache's startFloor): the
// founder, started alone, writes none.
func (r *StoreReplica) startFloor() {
	if r.floor != nil && !r.founder {
		r.raiseFloor(r.clock.Now().Wall)
	}
}

// raiseFloor writes want as the floor if it is past it: at once, as the
// harness's writes never fail.
func (r *StoreReplica) raiseFloor(want int64) {
	if r.floor != nil && want > r.floor.wall {
		r.floor.wall = want
	}
}

// monotonic returns the monotonic clock's reading: the cluster's time
// (SetMonotonic), or, with none set, the physical clock's.
func (r *StoreReplica) monotonic() int64 {
	if r.mono != nil {
		return r.mono()
	}
	return r.phys()
}

// cutCeiling is the replica's transport.Config.CutCeiling, the rules of
// a Cache's (bcache's cutCeiling): with no files, now; else now unless
// it passes the floor, and then the floor, keepFloor asked to raise it
// to now. A floor more than two floorEvery behind is written first
// (raiseFloorNow: the harness's writes never fail or hang).
func (r *StoreReplica) cutCeiling(now crdt.Timestamp) crdt.Timestamp {
	if r.floor == nil {
		return now
	}
	now = store.CutNear(now, r.phys(), time.Duration(r.skew))
	if now.Wall > r.floor.wall && crdt.SubSat(now.Wall, r.floor.wall) > int64(2*r.floorEvery) {
		r.raiseFloor(min(now.Wall, r.clock.Last().Wall)) // never past the clock
	}
	cut, past := store.FloorCut(now, r.floor.wall)
	if past {
		r.floorWant = max(r.floorWant, now.Wall)
		r.keepFloor() // woken: it writes at once, unless waiting out floorEvery
	}
	return cut
}

// keepFloor raises the floor to the cut asked for, as a Cache's
// keepFloor goroutine does: at most every floorEvery, by the monotonic
// clock; Tick runs it for the writes it waited with.
func (r *StoreReplica) keepFloor() {
	if now := r.monotonic(); r.floor != nil && r.floorWant > r.floor.wall && now >= r.floorNext {
		r.raiseFloor(r.floorWant)
		r.floorNext = crdt.AddSat(now, int64(r.floorEvery))
	}
}

// SetMonotonic implements Monotonic: the start of the replica's process
// on the monotonic clock is its reading now (the Cluster sets it as it
// builds the replica).
func (r *StoreReplica) SetMonotonic(now func() int64) {
	r.mono, r.startedMono = now, now()
}

// Floor implements FileKeeper.
func (r *StoreReplica) Floor() int64 {
	if r.floor == nil {
		return 0
	}
	return r.floor.wall
}

// KeepsFiles implements FileKeeper.
func (r *StoreReplica) KeepsFiles() bool { return r.floor != nil }

// NoFiles implements FileKeeper: the replica keeps no clock floor, and
// keeps a value of its own that a peer's answer from before its start
// would delete, as New wires a Cache without a SnapshotPath
// (store.KeepAnswered, with Cache.startedOnPeersClock's start).
func (r *StoreReplica) NoFiles() {
	r.floor = nil
	if r.keepNoAnswer {
		return
	}
	elapsed := func() time.Duration { return time.Duration(crdt.SubSat(r.monotonic(), r.startedMono)) }
	if r.mono == nil {
		elapsed = func() time.Duration { return 0 } // the physical clock's alone
	}
	r.s.KeepAnswered(r.clock.Node(), store.StartedOnPeersClock(r.clock, r.started, elapsed, r.drift, time.Duration(r.skew)), r.clock.Now)
}

// Kept implements AnswerKeeper.
func (r *StoreReplica) Kept() []crdt.Record {
	k := r.kept
	r.kept = nil
	return k
}

// keptAnswers is the production store as the node drives it, noting the
// values the store wrote again over a peer's answer (store.KeepAnswered:
// it refuses the answer, and holds the value with a new stamp of its
// clock's): writes of the member's, which the harness learns from Kept.
type keptAnswers struct {
	Store
	r *StoreReplica
}

func (k keptAnswers) Apply(rec crdt.Record, delta bool, now int64) crdt.Outcome {
	if !rec.Tombstone || rec.Time.Node != 0 || k.r.floor != nil {
		return k.Store.Apply(rec, delta, now)
	}
	before, _ := k.Lookup(rec.Key)
	o := k.Store.Apply(rec, delta, now)
	if after, ok := k.Lookup(rec.Key); ok && after.Time != before.Time && after.Time.Node == k.r.clock.Node() && !after.Tombstone {
		after.Value = bytes.Clone(after.Value)
		k.r.kept = append(k.r.kept, after)
	}
	return o
}
