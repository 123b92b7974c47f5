package lww

import "github.com/bcache-go/bcache/crdt"

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

// Cutoff returns the collection cutoff at now: records dead since before it
// may be collected. It is false while the map has never been marked synced.
func (m *Map) Cutoff(now int64) (int64, bool) {
	if m.synced == noWatermark {
		return 0, false
	}
	return crdt.SubSat(min(now, m.synced), m.horizon), true
}

// ceiling is the highest a watermark may be at now: now - horizon, plus
// the clock drift allowed between replicas. Collection never raises one
// above now - horizon (a record collected has been dead for a horizon, and
// is dead from no earlier than its write time); a peer's rejection or a
// snapshot may only come from a clock up to the drift ahead.
func (m *Map) ceiling(now int64) int64 { return crdt.AddSat(crdt.SubSat(now, m.horizon), m.drift) }

// GC collects every record dead since before the cutoff at now (see
// [Map.Cutoff]), raises the watermarks of their buckets, and returns the
// versions it collected.
func (m *Map) GC(now int64) []crdt.Version { return m.AppendGC(nil, now) }

// AppendGC is GC appending the versions collected to dst.
func (m *Map) AppendGC(dst []crdt.Version, now int64) []crdt.Version {
	cutoff, ok := m.Cutoff(now)
	if !ok {
		return dst
	}
	for _, e := range m.entries {
		if since, dies := e.rec.DeadSince(); dies && since < cutoff {
			dst = append(dst, e.rec.Version())
			m.drop(e)
		}
	}
	return dst
}

// drop removes e and raises its bucket's watermark to its wall time.
func (m *Map) drop(e *Entry) {
	leaf := m.leafOf(e.khash)
	m.wm[leaf] = max(m.wm[leaf], e.rec.Time.Wall)
	m.remove(e, leaf)
}

// Forget drops the record for v.Key if it is exactly version v, raising the
// bucket's watermark so that the version cannot come back. Replicas call it
// when a peer rejected v as below that peer's watermark (rule 3 of the
// package doc). A version newer than a watermark may be at now is not
// forgotten: no honest peer rejects it, and forgetting it would raise the
// watermark over fresh writes. It returns the record dropped, and false if
// none was.
func (m *Map) Forget(v crdt.Version, now int64) (crdt.Record, bool) {
	e, ok := m.entries[v.Key]
	if !ok || e.rec.Time != v.Time || v.Time.Wall > m.ceiling(now) {
		return crdt.Record{}, false
	}
	m.drop(e)
	return e.rec, true
}

// Watermark returns the GC watermark of a digest leaf (wall ns) and false if
// nothing has been collected from it.
func (m *Map) Watermark(leaf uint32) (int64, bool) {
	w := m.wm[leaf]
	return w, w != noWatermark
}

// RaiseWatermark raises a digest leaf's GC watermark to wall (Unix ns), as
// if a record written at wall had been collected from it: records of the
// leaf at or below it are rejected from then on. Records the map holds
// already stay. It is for restoring a map from a snapshot: apply the
// records first, then raise the watermarks they were saved with. A wall
// above what a watermark may be at now (a snapshot written by a clock far
// ahead) is lowered to that ceiling, and RaiseWatermark reports false.
func (m *Map) RaiseWatermark(leaf uint32, wall, now int64) bool {
	c := m.ceiling(now)
	m.wm[leaf] = max(m.wm[leaf], min(wall, c))
	return wall <= c
}
