package lww

import (
	"math"

	"github.com/bcache-go/bcache/crdt"
)

// MarkSynced records that an anti-entropy exchange that started at the given
// physical time (Unix ns) has completed: the map then holds every record its
// peer held when the exchange started. It enables collection of records dead
// since before at minus the horizon (see the package doc). Earlier times
// than the current mark are ignored.
func (m *Map) MarkSynced(at int64) {
	if at > m.synced {
		m.synced = at
	}
}

// StepBack moves the sync mark back by d, the length of a step back of the
// clock the marks are read from: a mark read before the step is d ahead of
// the same moment read after it, and the cutoff, min(now, synced) less the
// horizon, took the map for synced at now until the clock was back up to
// the mark (collection up to d early against the horizon). A map never
// synced stays so.
func (m *Map) StepBack(d int64) {
	if m.synced != noSync && d > 0 {
		m.synced = max(crdt.SubSat(m.synced, d), noSync+1)
	}
}

// Cutoff returns the collection cutoff at now: records dead since before it
// may be collected. It is false while the map has never been marked synced.
func (m *Map) Cutoff(now int64) (int64, bool) {
	if m.synced == noSync {
		return 0, false
	}
	return crdt.SubSat(min(now, m.synced), m.horizon), true
}

// noMark is the watermark of a bucket nothing was collected from: the least
// timestamp, so that collecting any record raises it. (The zero Timestamp
// will not do: records may be stamped before the epoch.) A record stamped
// noMark itself raises nothing when collected; nothing is older than it.
var noMark = crdt.Timestamp{Wall: math.MinInt64}

// Refuses reports whether a record of key stamped t would be refused
// here as below its bucket's watermark (package doc, rule 3): the map
// holds no record of key (a record of it is merged whatever the
// watermark), and t is at or below the watermark. A write that old is
// dead or lost to this member, collected here or refused.
func (m *Map) Refuses(key string, t crdt.Timestamp) bool {
	if m.entries.get(key) != nil {
		return false
	}
	w := m.mark(m.leafOf(crdt.HashKey(key)))
	return w != noMark && t.Compare(w) <= 0
}

// mark returns the watermark of a leaf.
func (m *Map) mark(leaf uint32) crdt.Timestamp {
	if m.wm == nil {
		return noMark
	}
	return m.wm[leaf]
}

// collectable reports whether e's collection raises a watermark an answer
// (Tombstone) stands above: e is not stamped at the last wall time and
// counter. A record that is, collected, raised its bucket's watermark
// there, and the answer, saturated, fell below it: the rejected records of
// the bucket bounced for ever (found by review). Such a record, dead only
// at now = MaxInt64, is kept (nothing is newer); clamping the watermark
// below it instead let the records it had superseded, of its very wall
// time and counter, back in (found by review).
func collectable(e *Entry) bool { return e.wall != math.MaxInt64 || e.logical != math.MaxUint32 }

// raise raises the watermark of a leaf to w, if that is higher. The
// watermarks take 24 bytes a leaf, allocated at the first: a map that
// never collects (no deletes, no TTLs) never pays for them.
func (m *Map) raise(leaf uint32, w crdt.Timestamp) {
	if noMark.Less(w) && m.wm == nil {
		m.wm = make([]crdt.Timestamp, m.tree.Leaves())
		for i := range m.wm {
			m.wm[i] = noMark
		}
	}
	if m.wm != nil && m.wm[leaf].Less(w) {
		m.wm[leaf] = w
	}
}

// NoStable is the stable bound that allows no early collection.
const NoStable = math.MinInt64

// GC collects the dead records the rules allow at now (see the package
// doc), raises the watermarks of their buckets, and appends the versions it
// collected to dst: every record dead since before the cutoff (rule 2),
// and, early, every record dead since before stable, a time below which
// every member of the cluster is known to hold every record (rule 6;
// NoStable for none): a tombstone written before it, a value expired
// before it. It is GCStep's steps from the first leaf to the last, at
// once.
func (m *Map) GC(dst []crdt.Version, now, stable int64) []crdt.Version {
	for leaf, done := uint32(0), false; !done; {
		dst, leaf, done = m.GCStep(dst, now, stable, leaf, math.MaxInt)
	}
	return dst
}

// gcWalk is what the steps of a collection (GCStep) count as they go.
type gcWalk struct {
	expired, dead, deadKeys int
}

// GCStep is a step of GC: it collects from the leaves from leaf on, as GC
// does, until it has looked at visits records or more (it ends a leaf it
// has begun), and returns where the next step begins and whether this one
// reached the last leaf. A caller that holds a lock over the map can let
// go of it between steps, so that a collection of many records holds it
// for a bounded time at once (the map changing between steps: each
// record is judged at its leaf's step, each leaf by itself, as GC judges
// them). A collection begins with a step from leaf 0, which begins its
// counts again: one collection at a time (GC too); Expired and
// DeadTombstones say what the last collection to reach the last leaf
// kept. A leaf that holds no tombstone and no record with an expiry is
// skipped without a look at its records. A visits of 0 or less is taken
// as 1: a step always goes on (one of 0 returned where it began, and a
// loop of steps until done never ended: found by review).
func (m *Map) GCStep(dst []crdt.Version, now, stable int64, leaf uint32, visits int) ([]crdt.Version, uint32, bool) {
	visits = max(visits, 1)
	if leaf == 0 {
		m.gc = gcWalk{}
		m.entries.migrateIdle()
	}
	end := uint32(len(m.heads))
	if m.tombstones == 0 && m.expiring == 0 || m.mortal == nil {
		leaf = end
	}
	cutoff, ok := m.Cutoff(now)
	if !ok {
		cutoff = math.MinInt64
	}
	stable = min(stable, now)
	for ; leaf < end && visits > 0; leaf++ {
		if m.mortal[leaf] == 0 {
			continue
		}
		for e, next := m.heads[leaf], (*Entry)(nil); e != nil; e = next {
			next = e.next // drop unlinks e
			visits--
			since, dies := e.deadSince()
			switch {
			case !dies || since > now || !collectable(e):
			case since < cutoff:
				dst = append(dst, e.version())
				m.drop(e, leaf)
				m.byHorizon++
			case since < stable:
				dst = append(dst, e.version())
				m.drop(e, leaf)
				m.early++
			case !e.tombstone():
				m.gc.expired++
				m.gc.deadKeys += len(e.key)
			default:
				m.gc.dead++
				m.gc.deadKeys += len(e.key)
			}
		}
	}
	if leaf < end {
		return dst, leaf, false
	}
	m.expired, m.dead, m.deadKeys = m.gc.expired, m.gc.dead, m.gc.deadKeys
	return dst, end, true
}

// CollectDead collects the record of key if it is dead at now, whatever
// rules 2 and 6 say, and raises its bucket's watermark to its timestamp
// (rule 7 of the package doc: a bound on dead records). It reports the
// version collected.
func (m *Map) CollectDead(key string, now int64) (crdt.Version, bool) {
	e := m.entries.get(key)
	if e == nil {
		return crdt.Version{}, false
	}
	if since, dies := e.deadSince(); !dies || since > now || !collectable(e) {
		return crdt.Version{}, false
	}
	v := e.version()
	m.drop(e, m.leafOf(crdt.HashKey(key)))
	if !v.Tombstone {
		m.expired = max(m.expired-1, 0)
	} else {
		m.dead = max(m.dead-1, 0)
	}
	m.deadKeys = max(m.deadKeys-len(key), 0)
	return v, true
}

// CollectedEarly returns the number of records GC has collected by rule 6
// (before their horizon).
func (m *Map) CollectedEarly() uint64 { return m.early }

// CollectedAtHorizon returns the number of records GC has collected by
// rule 2 (dead for the horizon).
func (m *Map) CollectedAtHorizon() uint64 { return m.byHorizon }

// Expired returns the number of values past their expiry that the last GC
// kept (dead, but not yet collectable).
func (m *Map) Expired() int { return m.expired }

// DeadTombstones returns the number of tombstones the last GC kept that
// were dead at its now: not those stamped after it (a peer's clock ahead),
// which no collection can take yet.
func (m *Map) DeadTombstones() int { return m.dead }

// DeadKeyBytes returns the bytes of the keys of the records Expired and
// DeadTombstones count: a peer's keys may be long (a tombstone of a 64 KiB
// key holds it whole), so that a bound on dead records in number alone
// does not bound their memory.
func (m *Map) DeadKeyBytes() int { return m.deadKeys }

// drop removes e, which lies in leaf, and raises its bucket's watermark
// to its timestamp, whatever the node at its wall time and logical
// counter: the watermark then stands below the answer (see Tombstone) for
// every timestamp it does not cover. Raised to the timestamp itself, a
// write of another node at the same wall time and counter (members whose
// clocks trail tick the counter from one received timestamp) was above
// the watermark, taken by Refuses for one that survives, and yet deleted
// by the answer to an older record of its key (found by review): such a
// write is now refused, with every write at or below the watermark.
func (m *Map) drop(e *Entry, leaf uint32) {
	t := e.Time()
	t.Node = math.MaxUint64
	m.raise(leaf, t)
	m.remove(e, leaf)
	if m.dropped != nil && e.HoldsValue() {
		m.dropped(e)
	}
}

// Tombstone returns the answer to a record of key that the map rejected
// as below its bucket's watermark (rule 3 of the package doc): a tombstone
// written just above the watermark, by no replica (node 0, which no
// incarnation has), so that replicas that reject the same key at the same
// watermark answer with the same record. The peer that sent the rejected
// record merges it like any other, and loses every version of key at or
// below the watermark, as this map did when it collected them.
func (m *Map) Tombstone(key string) crdt.Record {
	return crdt.Record{Key: key, Tombstone: true, Time: above(m.mark(m.leafOf(crdt.HashKey(key))))}
}

// above returns the least timestamp of node 0 after t.
func above(t crdt.Timestamp) crdt.Timestamp {
	if t.Logical == math.MaxUint32 {
		return crdt.Timestamp{Wall: crdt.AddSat(t.Wall, 1)}
	}
	return crdt.Timestamp{Wall: t.Wall, Logical: t.Logical + 1}
}

// Watermark returns the GC watermark of a digest leaf (the greatest
// timestamp collected from it), or the least timestamp and false if
// nothing has been collected from it (raising a watermark to that is a
// no-op).
func (m *Map) Watermark(leaf uint32) (crdt.Timestamp, bool) {
	w := m.mark(leaf)
	return w, w != noMark
}

// RaiseWatermark raises a digest leaf's GC watermark to w, as if a record
// stamped w had been collected from it: records of the leaf at or below it
// are rejected from then on. Records the map holds already stay. It is for
// restoring a map from a snapshot: apply the records first, then raise the
// watermarks they were saved with. A watermark written after ceiling (Unix
// ns; a snapshot written by a clock far ahead) is lowered to the last
// timestamp of that nanosecond, and RaiseWatermark reports false.
func (m *Map) RaiseWatermark(leaf uint32, w crdt.Timestamp, ceiling int64) bool {
	if w == noMark { // Watermark's "none", as its doc says: raising to it is a no-op (it made a real one: found by review)
		return true
	}
	ok := w.Wall <= ceiling
	if !ok {
		w = crdt.Timestamp{Wall: ceiling, Logical: math.MaxUint32}
	}
	w.Node = math.MaxUint64 // as drop raises it
	m.raise(leaf, w)
	return ok
}
