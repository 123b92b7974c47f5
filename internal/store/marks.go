package store

import (
	"maps"
	"math"
	"slices"
	"sync"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// A member that joins receives its peers' records, not what they collected:
// a value whose delete the cluster collected before it joined could come
// back on it from a member that still holds the value (one back from an
// absence past the horizon, or restored from an old snapshot under a new
// name) while the two are cut off from every member that collected the
// delete. So a member, once synced, takes a peer's watermarks (Marks) and
// offers them to its store (OfferMarks), which adopts each at its next
// Collect, never above the stable bound it collects with (less a
// nanosecond): below that bound every member it counts holds every record
// (package lww, rule 6), so a watermark there rejects nothing a member it
// counts still holds, the argument by which the store's own early
// collections raise theirs. A mark above the bound waits for the bound to
// rise, raising the leaf to the bound meanwhile. A key holder's forged
// marks reach no further than its forged stamps can: the bound is this
// member's own, and a mark is taken no further ahead of its clock than a
// stamp is (MaxClockDrift).

// offeredMarks are the watermarks a store was offered and has not adopted
// whole, one per digest leaf (the greatest offered).
type offeredMarks struct {
	mu      sync.Mutex
	pending map[uint32]crdt.Timestamp
}

// Marks returns the store's watermarks, its collections' and those it
// adopted, in ascending leaf order, each raised to the mark it was
// offered for its leaf and has not adopted whole yet: a member that asked
// a peer and has not adopted its marks (its stable bound below them, a
// member joining it holding that bound still) passes them on to a
// newcomer that asks it, which adopts them within its own stable bound
// (found by review: it answered without them, and the newcomer, taking
// that answer for its peers' marks, never asked again).
func (s *Store) Marks() []Mark {
	s.marks.mu.Lock()
	pending := maps.Clone(s.marks.pending)
	s.marks.mu.Unlock()
	var out []Mark
	local := s.digestBits - s.shardBits
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for leaf := range uint32(1) << local {
			id := uint32(sh.id)<<local | leaf
			w, ok := sh.m.Watermark(leaf)
			if p, offered := pending[id]; offered && (!ok || w.Less(p)) {
				w, ok = p, true
			}
			if ok {
				out = append(out, Mark{Leaf: id, Time: w})
			}
		}
		sh.mu.Unlock()
	}
	return out
}

// Leaves returns the number of the digest's leaves: a Mark's Leaf is below
// it.
func (s *Store) Leaves() uint32 { return 1 << s.digestBits }

// OfferMarks keeps a peer's watermarks for the next Collect to adopt (see
// above), each the greater of it and one offered before for its leaf. A
// mark of a leaf past Leaves, or at the earliest wall time (none), is
// ignored; one further ahead of now than
// the clock's drift allows a stamp to be is taken as the last timestamp
// of that limit's nanosecond. Taken as it came (a key holder's, dated
// 2200), it stayed offered until the stable bound passed it, which it
// might never: every collection raised its leaf to the bound again, and
// the member passed it on to every newcomer that asked, which kept it in
// turn (found by review: TestAMarkFarAheadIsNotKeptOfferedForever).
// It reports whether it so took any mark lower than it came: the marks
// kept lack what the peer collected past this clock's reach, and a
// member whose clock is behind (booted before it was set) must ask again
// once it may be set (found by review:
// TestAResetMemberStartedBehindLearnsWhatWasCollectedOnceItsClockIsSet).
func (s *Store) OfferMarks(ms []Mark, now int64) (capped bool) {
	ceiling := crdt.AddSat(now, s.drift)
	s.marks.mu.Lock()
	defer s.marks.mu.Unlock()
	for _, m := range ms {
		if m.Leaf >= s.Leaves() || m.Time.Wall == math.MinInt64 {
			continue // no leaf of the digest; or no mark, as lww's Watermark says none (its node decoded at the maximum, it made a meaningless one: found by review)
		}
		if m.Time.Wall > ceiling {
			m.Time = crdt.Timestamp{Wall: ceiling, Logical: math.MaxUint32, Node: math.MaxUint64}
			capped = true
		}
		if s.marks.pending == nil {
			s.marks.pending = make(map[uint32]crdt.Timestamp)
		}
		if w, ok := s.marks.pending[m.Leaf]; !ok || w.Less(m.Time) {
			s.marks.pending[m.Leaf] = m.Time
		}
	}
	return capped
}

// PendingMarks returns the number of leaves whose offered mark is not
// adopted whole yet.
func (s *Store) PendingMarks() int {
	s.marks.mu.Lock()
	defer s.marks.mu.Unlock()
	return len(s.marks.pending)
}

// adoptMarks raises the watermarks to the marks offered, each at most to
// the last timestamp below stable; a mark above that stays offered.
// stable is Collect's (lww.NoStable: none adopted).
func (s *Store) adoptMarks(stable int64) {
	if stable == lww.NoStable {
		return
	}
	s.marks.mu.Lock()
	defer s.marks.mu.Unlock()
	if len(s.marks.pending) == 0 {
		return
	}
	ceiling := crdt.SubSat(stable, 1)
	for _, leaf := range slices.Sorted(maps.Keys(s.marks.pending)) {
		w := s.marks.pending[leaf]
		sh, local := s.leafShard(leaf)
		sh.mu.Lock()
		before, _ := sh.m.Watermark(local)
		whole := sh.m.RaiseWatermark(local, w, ceiling)
		after, _ := sh.m.Watermark(local)
		sh.mu.Unlock()
		if before.Less(after) {
			s.stats.marksAdopted.Add(1)
		}
		if whole {
			delete(s.marks.pending, leaf)
		}
	}
}

// WatermarksAdopted returns Stats().WatermarksAdopted without the rest.
func (s *Store) WatermarksAdopted() uint64 { return s.stats.marksAdopted.Load() }
