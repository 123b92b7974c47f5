package store

import (
	"slices"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// RestoreStats says what Restore did with a snapshot.
type RestoreStats struct {
	Applied int // records applied
	Drifted int // records skipped: further ahead of the clock than its drift allows
	// Lowered counts watermarks lowered to now - MaxClockDrift: further
	// ahead of the clock than its drift allows (written by a clock far
	// ahead).
	Lowered int
}

// Restore applies a snapshot to a store before it starts replicating: the
// records first, as anti-entropy receives them (through the clock's drift
// check, moving the clock past each, so that every later write wins over
// them), then the watermarks (a record the store holds may be older than
// its bucket's watermark, and must not be rejected by it), through the
// same check: the clock moves past each, so that fresh writes are above
// it, and the store rejects again what it rejected before it stopped (a
// watermark a collection under a bound on dead records raised to a
// recent time must not come back lower). A watermark further ahead than
// the drift allows is lowered to now - MaxClockDrift: a snapshot from a
// clock far ahead cannot make the store reject fresh writes.
func (s *Store) Restore(snap *Snapshot, clock *crdt.HLC, now int64) RestoreStats {
	var st RestoreStats
	for _, id := range slices.Backward(snap.Own) { // the newest ends first
		s.MarkOwn(id)
	}
	st.Applied, st.Drifted = s.Replay(snap.Records, clock, now)
	for _, m := range snap.Marks {
		sh, local := s.leafShard(m.Leaf)
		ceiling := crdt.SubSat(now, s.drift)
		if clock.Update(m.Time) == nil {
			ceiling = m.Time.Wall
		}
		sh.mu.Lock()
		if !sh.m.RaiseWatermark(local, m.Time, ceiling) {
			st.Lowered++
		}
		sh.mu.Unlock()
	}
	return st
}

// Replay applies records restored from disk (a snapshot's, or a write
// log's after its snapshot and watermarks), as anti-entropy receives them:
// a record further ahead of the clock than its drift allows is skipped,
// the clock moves past every other, and a record at or below its bucket's
// watermark is rejected (a log older than the snapshot cannot bring back
// a value whose delete was collected). It returns the records applied and
// those skipped for drift. A shard's key table it leaves between two sizes
// is settled (lww.Map.Settle): readers probed both arrays until the
// shard's first collections or writes had moved every entry.
func (s *Store) Replay(recs []crdt.Record, clock *crdt.HLC, now int64) (applied, drifted int) {
	bound := clock.UpdateAll(recs) // as Update of each, with one reading of the clock
	for _, rec := range recs {
		if rec.Time.Wall > bound {
			drifted++
			continue
		}
		if s.Apply(rec, false, now) == crdt.Applied {
			applied++
		}
	}
	s.eachMap((*lww.Map).Settle)
	return applied, drifted
}
