package proptest

import (
	"fmt"
	"math"
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
// goroutine.
type Replica interface {
	// Set writes a value (expires is an absolute Unix-ns expiry, 0 for
	// none) and returns the record written and the frames to send.
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
	SetMembers(names []string)
	// Tick lets the replica's timers run and returns frames to send.
	Tick() []transport.Envelope
	// Receive handles a frame and returns frames to send.
	Receive(from string, payload []byte) []transport.Envelope
	// StartSession starts an anti-entropy exchange with peer.
	StartSession(peer string) []transport.Envelope
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
	phys  func() int64
	clock *crdt.HLC
	m     *lww.Map
	node  *transport.Node
}

// NewMapReplica returns bcache's replica.
func NewMapReplica(name string, id crdt.NodeID, phys func() int64, cfg MapConfig) (*MapReplica, error) {
	m, err := lww.New(cfg.Map)
	if err != nil {
		return nil, err
	}
	r := &MapReplica{phys: phys, clock: crdt.NewHLC(id, phys, cfg.MaxDrift), m: m}
	tc := cfg.Transport
	tc.Name, tc.Replica, tc.Clock = name, mapAdapter{m, cfg.Merge}, r.clock
	if r.node, err = transport.New(tc); err != nil {
		return nil, err
	}
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

// GC implements Replica.
func (r *MapReplica) GC() []crdt.Version { return r.m.GC(r.phys()) }

// Drops implements Replica.
func (r *MapReplica) Drops() []crdt.Version { return r.node.Dropped() }

// SetMembers implements Replica.
func (r *MapReplica) SetMembers(names []string) { r.node.SetMembers(names) }

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

// mapSnapshot is a MapReplica's durable state: its records and the GC
// watermark of every digest leaf.
type mapSnapshot struct {
	records []crdt.Record
	marks   []int64 // per leaf; math.MinInt64 for none
}

// Snapshot implements Snapshotter. Record values are never modified in
// place, so the copy shares them.
func (r *MapReplica) Snapshot() any {
	s := mapSnapshot{records: r.Records(), marks: make([]int64, r.m.Tree().Leaves())}
	for leaf := range s.marks {
		w, ok := r.m.Watermark(uint32(leaf))
		if !ok {
			w = math.MinInt64
		}
		s.marks[leaf] = w
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
		if w != math.MinInt64 {
			r.m.RaiseWatermark(uint32(leaf), w, r.phys())
		}
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
