package lww

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
	"pgregory.net/rapid"
)

// The property in this file tries to resurrect deleted keys: replicas write,
// delete and expire keys, deltas arrive late or are replayed long after the
// tombstone they lost to was collected, replicas go away for longer than the
// horizon and come back, restart with empty state, and collect garbage on
// their own schedules. Anti-entropy here is the simplest correct one: diff
// the digests, ship the newer record of every differing key in ascending
// timestamp order, and answer what the receiver rejected with its
// tombstone (Map.Tombstone), which the sender merges.

const (
	gcHorizon = 1000
	maxSkew   = gcHorizon / 10
)

type gcReplica struct {
	m       *Map
	clock   *crdt.HLC
	skew    int64
	away    bool
	maxHeld map[string]crdt.Timestamp // newest version held per key since restart
	reaped  map[string]crdt.Timestamp // newest dead record collected per key since restart
}

type gcWorld struct {
	now      int64
	reps     []*gcReplica
	writes   []crdt.Record // every write ever issued, for late delivery
	nextNode crdt.NodeID
	lossy    bool // some replica lost a record: a peer rejected it, or a bound
	restarts bool
	// bound collects a dead record under a bound (rule 7): CollectDead,
	// unless a test breaks it.
	bound func(m *Map, key string, now int64) (crdt.Version, bool)
}

func (w *gcWorld) phys(r *gcReplica) int64 { return w.now + r.skew }

func (w *gcWorld) newReplica(t tb) *gcReplica {
	r := &gcReplica{
		m:       newMap(t, Config{DigestBits: 4, Horizon: gcHorizon}),
		maxHeld: map[string]crdt.Timestamp{},
		reaped:  map[string]crdt.Timestamp{},
	}
	w.nextNode++
	r.clock = crdt.NewHLC(w.nextNode, func() int64 { return w.phys(r) }, time.Duration(gcHorizon))
	return r
}

func (w *gcWorld) pick(t *rapid.T, label string, present bool) *gcReplica {
	r := w.reps[rapid.IntRange(0, len(w.reps)-1).Draw(t, label)]
	if present && r.away {
		t.Skip("replica is away")
	}
	return r
}

// receive delivers repair records in order and returns those rejected.
func (w *gcWorld) receive(r *gcReplica, recs []crdt.Record) []crdt.Record {
	var rejected []crdt.Record
	for _, rec := range recs {
		if r.clock.Update(rec.Time) != nil {
			continue
		}
		if apply(r.m, clone(rec)) == crdt.Rejected {
			rejected = append(rejected, rec)
		}
	}
	return rejected
}

// deliver hands r a delta, possibly late, duplicated or replayed.
func (w *gcWorld) deliver(t *rapid.T) {
	if len(w.writes) == 0 {
		t.Skip("nothing written")
	}
	rec := w.writes[rapid.IntRange(0, len(w.writes)-1).Draw(t, "write")]
	r := w.pick(t, "receiver", true)
	if r.clock.Update(rec.Time) == nil {
		applyDelta(r.m, clone(rec), w.phys(r))
	}
}

// exchange is one complete anti-entropy round between a and b.
func (w *gcWorld) exchange(t tb, a, b *gcReplica) (changed bool) {
	t.Helper()
	startA, startB := w.phys(a), w.phys(b)
	_, diffs, err := Diff(a.m, b.m)
	if err != nil {
		t.Fatal(err)
	}
	var toA, toB []crdt.Record
	for _, d := range diffs {
		ra, _ := a.m.Lookup(d.Key)
		rb, _ := b.m.Lookup(d.Key)
		switch {
		case d.InA && (!d.InB || rb.Time.Less(ra.Time)):
			toB = append(toB, ra)
		case d.InB && (!d.InA || ra.Time.Less(rb.Time)):
			toA = append(toA, rb)
		}
	}
	byTime := func(x, y crdt.Record) int { return x.Time.Compare(y.Time) }
	slices.SortFunc(toA, byTime)
	slices.SortFunc(toB, byTime)
	rejectedByA, rejectedByB := w.receive(a, toA), w.receive(b, toB)
	w.answer(b, a, rejectedByA)
	w.answer(a, b, rejectedByB)
	a.m.MarkSynced(startA)
	b.m.MarkSynced(startB)
	return len(diffs) > 0
}

// answer makes r merge the tombstones with which the rejecter answered
// the records it rejected. Superseding a live record that is the newest
// write of its key loses data.
func (w *gcWorld) answer(r, rejecter *gcReplica, rejected []crdt.Record) {
	for _, rec := range rejected {
		tomb := rejecter.m.Tombstone(rec.Key)
		if r.clock.Update(tomb.Time) != nil {
			continue
		}
		held, _ := r.m.Lookup(rec.Key)
		if apply(r.m, tomb) == crdt.Applied && held.Live(w.phys(r)) && w.newest()[rec.Key].Time == held.Time {
			w.lossy = true
		}
	}
}

// newest returns the newest write of every key.
func (w *gcWorld) newest() map[string]crdt.Record {
	newest := map[string]crdt.Record{}
	for _, rec := range w.writes {
		if cur, ok := newest[rec.Key]; !ok || cur.Time.Less(rec.Time) {
			newest[rec.Key] = rec
		}
	}
	return newest
}

// noteReaped remembers that r collected a dead record. The memory goes with
// r when it restarts: a cluster in which every replica that collected a
// delete has crashed no longer knows of that delete.
func (r *gcReplica) noteReaped(v crdt.Version) {
	if cur, ok := r.reaped[v.Key]; !ok || cur.Less(v.Time) {
		r.reaped[v.Key] = v.Time
	}
}

func (w *gcWorld) write(t *rapid.T) {
	r := w.pick(t, "writer", false) // away replicas keep writing, like an offline edge node
	rec := crdt.Record{Key: rapid.SampledFrom(keys).Draw(t, "key"), Time: r.clock.Now()}
	switch rapid.IntRange(0, 2).Draw(t, "kind") {
	case 0:
		rec.Tombstone = true
	case 1:
		rec.Expires = rec.Time.Wall + rapid.Int64Range(1, 2*gcHorizon).Draw(t, "ttl")
		fallthrough
	default:
		rec.Value = []byte(fmt.Sprintf("%s@%v", rec.Key, rec.Time))
	}
	if got := apply(r.m, clone(rec)); got != crdt.Applied {
		t.Fatalf("local write %v: %v", rec.Time, got)
	}
	w.writes = append(w.writes, rec)
}

func (w *gcWorld) gc(t *rapid.T) {
	r := w.pick(t, "collector", false)
	for _, v := range r.m.GC(nil, w.phys(r), NoStable) {
		r.noteReaped(v)
	}
}

func (w *gcWorld) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"write":   w.write,
		"deliver": w.deliver,
		"exchange": func(t *rapid.T) {
			a, b := w.pick(t, "a", true), w.pick(t, "b", true)
			if a == b {
				t.Skip("same replica")
			}
			w.exchange(t, a, b)
		},
		"gc": w.gc,
		"bound": func(t *rapid.T) {
			r := w.pick(t, "collector", false)
			collect := w.bound
			if collect == nil {
				collect = (*Map).CollectDead
			}
			if v, ok := collect(r.m, rapid.SampledFrom(keys).Draw(t, "key"), w.phys(r)); ok {
				r.noteReaped(v)
				w.lossy = true // records below the raised watermark, in flight, may be lost
			}
		},
		"evict": func(t *rapid.T) {
			w.pick(t, "evictor", false).m.Evict(rapid.SampledFrom(keys).Draw(t, "key"))
		},
		"tick": func(t *rapid.T) { w.now += rapid.Int64Range(1, gcHorizon/4).Draw(t, "dt") },
		"long absence": func(t *rapid.T) {
			r := w.pick(t, "absent", true)
			r.away = true
			w.now += rapid.Int64Range(gcHorizon, 3*gcHorizon).Draw(t, "dt")
		},
		"return": func(t *rapid.T) { w.pick(t, "returning", false).away = false },
		"skew": func(t *rapid.T) {
			w.pick(t, "skewed", false).skew = rapid.Int64Range(-maxSkew, maxSkew).Draw(t, "skew")
		},
		"restart": func(t *rapid.T) {
			i := rapid.IntRange(0, len(w.reps)-1).Draw(t, "restarted")
			w.reps[i] = w.newReplica(t)
			w.restarts = true
		},
	}
}

// check holds after every step: no replica ever holds a version of a key
// older than one it held before (since its last restart), which rules out
// resurrection through replays, and digests stay exact.
func (w *gcWorld) check(t *rapid.T) {
	for i, r := range w.reps {
		r.m.Range(func(rec crdt.Record) bool {
			if prev, ok := r.maxHeld[rec.Key]; ok && rec.Time.Less(prev) {
				t.Fatalf("replica %d went back on %q from %v to %v", i, rec.Key, prev, rec.Time)
			}
			r.maxHeld[rec.Key] = rec.Time
			return true
		})
		if !r.m.Tree().Equal(r.m.RecomputeTree()) {
			t.Fatalf("replica %d: digest differs from recompute", i)
		}
	}
}

// converge brings every replica back and runs anti-entropy between every
// pair until a full round changes nothing.
func (w *gcWorld) converge(t *rapid.T) {
	for _, r := range w.reps {
		r.away = false
	}
	for round := 0; ; round++ {
		if round == 10 {
			t.Fatal("anti-entropy did not reach a fixpoint in 10 rounds")
		}
		changed := false
		for i := range w.reps {
			for j := i + 1; j < len(w.reps); j++ {
				changed = w.exchange(t, w.reps[i], w.reps[j]) || changed
			}
		}
		if !changed {
			return
		}
	}
}

// verify runs after convergence: all replicas agree; no key holds a value
// older than a dead record a live replica collected for it (no
// resurrection); and when no replica restarted or lost anything, every key
// holds its newest write, or nothing or an answer to it if that write is
// dead.
func (w *gcWorld) verify(t *rapid.T) {
	versions := func(m *Map) []crdt.Version {
		var vs []crdt.Version
		for _, rec := range dump(m) {
			vs = append(vs, rec.Version())
		}
		return vs
	}
	first := versions(w.reps[0].m)
	for i, r := range w.reps[1:] {
		if got := versions(r.m); !slices.Equal(got, first) {
			t.Fatalf("replica %d holds %v, replica 0 holds %v", i+1, got, first)
		}
	}
	held := map[string]crdt.Version{}
	for _, v := range first {
		held[v.Key] = v
		for i, r := range w.reps {
			if d, ok := r.reaped[v.Key]; ok && !v.Tombstone && v.Time.Less(d) {
				t.Fatalf("key %q came back at %v; replica %d collected a record at %v", v.Key, v.Time, i, d)
			}
		}
	}
	if w.lossy || w.restarts {
		return
	}
	for k, rec := range w.newest() {
		v, ok := held[k]
		// A newest write dead long enough to be collected may be held as
		// it was, not at all, or as the tombstone a replica answered it
		// with after collecting it.
		collectable := !rec.Live(w.now - gcHorizon + maxSkew)
		answered := v.Tombstone && v.Time.Node == 0 && rec.Time.Less(v.Time)
		switch {
		case ok && v != rec.Version() && !(collectable && answered):
			t.Fatalf("key %q converged to %v, newest write is %v", k, v.Time, rec.Time)
		case !ok && !collectable:
			t.Fatalf("key %q lost its newest write %v", k, rec.Time)
		}
	}
}

// healthyActions is the world of the healthy-cluster assumption: time moves
// only in steps shorter than the horizon, each followed by anti-entropy
// between every pair, and replicas join fresh instead of going away. No
// record may then be lost: the converged state must be exactly the newest
// write of every key.
func (w *gcWorld) healthyActions() map[string]func(*rapid.T) {
	all := w.actions()
	actions := map[string]func(*rapid.T){}
	for _, name := range []string{"write", "deliver", "exchange", "gc", "evict", "skew"} {
		actions[name] = all[name]
	}
	actions["tick"] = func(t *rapid.T) {
		w.now += rapid.Int64Range(1, gcHorizon/4).Draw(t, "dt")
		for i, a := range w.reps {
			for _, b := range w.reps[i+1:] {
				w.exchange(t, a, b)
			}
		}
	}
	actions["join"] = func(t *rapid.T) {
		if len(w.reps) == 5 {
			t.Skip("cluster is full")
		}
		w.reps = append(w.reps, w.newReplica(t))
	}
	actions[""] = w.check
	return actions
}

func TestHealthyClusterLosesNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := &gcWorld{}
		for range rapid.IntRange(1, 3).Draw(t, "replicas") {
			w.reps = append(w.reps, w.newReplica(t))
		}
		t.Repeat(w.healthyActions())
		w.converge(t)
		if w.lossy {
			t.Fatal("a healthy cluster forgot a record")
		}
		w.verify(t)
	})
}

// TestEdgeReturnsAfterLongAbsence pins the three GC rules on the scenario
// they exist for: an edge replica goes offline for longer than the horizon,
// keeps writing and deleting, and comes back to a cluster that deleted and
// collected keys it still holds.
func TestEdgeReturnsAfterLongAbsence(t *testing.T) {
	w := &gcWorld{}
	hub, edge := w.newReplica(t), w.newReplica(t)
	w.reps = []*gcReplica{hub, edge}
	put := func(r *gcReplica, key string, del bool) crdt.Record {
		rec := crdt.Record{Key: key, Time: r.clock.Now(), Tombstone: del}
		if !del {
			rec.Value = []byte(key)
		}
		apply(r.m, clone(rec))
		return rec
	}
	w.now = 10
	put(hub, "a", false)
	put(hub, "b", false)
	w.exchange(t, hub, edge) // the edge is in sync, then leaves

	w.now += 100
	put(hub, "a", true)            // the cluster deletes a ...
	late := put(hub, "c", false)   // ... and writes c while the edge is away
	put(edge, "offline", true)     // the edge deletes a key offline
	fresh := put(edge, "e", false) // and writes one

	w.now += 3 * gcHorizon
	hub.m.MarkSynced(w.now) // the hub keeps syncing with the rest of the cluster
	if got := hub.m.GC(nil, w.now, NoStable); len(got) != 1 || got[0].Key != "a" {
		t.Fatalf("hub collected %v, want the tombstone of a", got)
	}
	if got := edge.m.GC(nil, w.now, NoStable); len(got) != 0 {
		t.Fatalf("edge collected %v while away; its deletes must wait until it has caught up", got)
	}

	w.exchange(t, hub, edge) // the hub answers the edge's a with a tombstone
	w.exchange(t, hub, edge) // which the edge then holds and ships back
	for _, r := range w.reps {
		if _, ok := r.m.Get("a", w.now); ok {
			t.Fatal("deleted and collected key a came back")
		}
		for _, rec := range []crdt.Record{late, fresh} {
			if v, ok := r.m.Get(rec.Key, w.now); !ok || string(v) != rec.Key {
				t.Fatalf("%s lost on return: %q, %v", rec.Key, v, ok)
			}
		}
	}
	if _, _, err := Diff(hub.m, edge.m); err != nil {
		t.Fatal(err)
	}
	if leaves, _, _ := Diff(hub.m, edge.m); len(leaves) != 0 {
		t.Fatalf("replicas still differ in leaves %v", leaves)
	}
}

func TestNoResurrection(t *testing.T) {
	rapid.Check(t, noResurrection(nil))
}

// noResurrection is the property of TestNoResurrection, with bound as the
// collection under a bound (nil: CollectDead).
func noResurrection(bound func(*Map, string, int64) (crdt.Version, bool)) func(*rapid.T) {
	return func(t *rapid.T) {
		w := &gcWorld{bound: bound}
		for range rapid.IntRange(2, 4).Draw(t, "replicas") {
			w.reps = append(w.reps, w.newReplica(t))
		}
		actions := w.actions()
		actions[""] = w.check
		t.Repeat(actions)
		w.converge(t)
		w.verify(t)
	}
}

// TestNoResurrectionCatchesABoundWithoutWatermark: a bound that collects a
// dead record without raising its bucket's watermark lets the write it
// deleted come back; the property must find that.
func TestNoResurrectionCatchesABoundWithoutWatermark(t *testing.T) {
	broken := func(m *Map, key string, now int64) (crdt.Version, bool) {
		e := m.entries.get(key)
		if e == nil {
			return crdt.Version{}, false
		}
		if since, dies := e.deadSince(); !dies || since > now {
			return crdt.Version{}, false
		}
		m.remove(e, m.leafOf(crdt.HashKey(e.key)))
		return e.version(), true
	}
	if !rapidfail.Fails(t, "BoundWithoutWatermark", noResurrection(broken)) {
		t.Fatal("the property passed a bound that raises no watermark")
	}
}
