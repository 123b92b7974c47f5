package store

import (
	"slices"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// SetFounder changes Config.Founder: a member whose seed peers turn out
// to name no member but itself is a founder from then on, until they name
// another.
func (s *Store) SetFounder(founder bool) { s.founder.Store(founder) }

// BoundsDead reports whether Collect holds the store to MaxDead and
// MaxDeadBytes: it is a founder, or has synced with a peer (see
// collect). For the property harness's check of those bounds.
func (s *Store) BoundsDead() bool { return s.founder.Load() || s.everSynced.Load() }

// Collect collects the dead records (tombstones, expired values) that the
// rules of package lww allow at now, and returns their versions: those dead
// for the horizon, and, early, those dead since before stable (a tombstone
// written before it, a value expired before it), a bound below which every
// member is known to hold every record (the sync protocol's Node.Stable,
// which lies its margin for the clocks' disagreement behind this member's
// clock; lww.NoStable for none). alone says that no other member is alive
// now.
//
// A member alone counts itself synced at now, and so collects what has
// been dead for a horizon, when it may stand for the whole cluster: it has
// completed an exchange with a peer since it started (its peers have left
// or failed: it is one side of a partition, like any group of members),
// or it is a founder (Config.Founder: started with no peers to join). A
// member that has never synced and was given peers to join collects
// nothing: it is a member coming back (an edge device booting offline, a
// restart from an old snapshot) and must not be the one whose watermarks
// decide, on its return, which of the cluster's records survive (package
// lww, rule 3): it collects nothing early either, nor under MaxDead.
//
// Nor does a founder alone collect early (before the horizon) until it
// has completed an exchange with a peer: it knows of no other member, and
// its stable bound would be its own clock less the margin; but a founder
// restarted empty (no snapshot) cannot tell that it is not the whole
// cluster, and an early watermark of its would reject the writes of the
// members that joined it before, still on their way (found by the
// property harness: TestFounderRestartedAloneCollectsNothingEarly).
//
// Past MaxDead dead records, or MaxDeadBytes bytes of their keys,
// Collect takes the oldest at once, until both bounds hold, raising
// their buckets' watermarks (package lww, rule 7): a write older than such
// a watermark that the member has not received yet is then rejected, and
// lost everywhere. It takes last the values that expired less than
// MaxClockSkew ago: a member whose clock is behind may serve one still, and
// collected here, its copy would be rejected and the answer would delete
// it there.
//
// It walks a shard's digest leaves that hold a tombstone or a record with
// an expiry (lww.Map.GCStep), walkStep records at a time under the
// shard's lock, and lets go of it between: writers and readers of the
// shard wait for a step, not for the whole walk; a record merged meanwhile
// is judged at its leaf's step, as if merged before or after the walk.
//
// The versions it returns are for tests and the property harness: a
// member that only needs to know whether it collected anything calls
// CollectCount, which keeps none of them (a million collected at once
// made one slice of 48 MB, grown under a shard's lock, and the
// collector's assist that its growth paid held that lock 460 ms in one
// run: BenchmarkCollect/mass).
func (s *Store) Collect(now int64, alone bool, stable int64) []crdt.Version {
	var all []crdt.Version
	s.collect(now, alone, stable, func(vs []crdt.Version) { all = append(all, vs...) })
	return all
}

// CollectCount collects as Collect does, and returns how many records it
// collected.
func (s *Store) CollectCount(now int64, alone bool, stable int64) int {
	return s.collect(now, alone, stable, nil)
}

// collect is Collect: it passes the versions it collects to keep, if not
// nil, a step at a time, and returns how many there were.
func (s *Store) collect(now int64, alone bool, stable int64, keep func([]crdt.Version)) int {
	// One at a time: two collections' steps of a shard made one count of
	// its dead records, begun again by the other's first step, and the
	// one that ended last took for dead twice as many as there were, and
	// collected below MaxDead (found by review).
	s.collecting.Lock()
	defer s.collecting.Unlock()
	standsAlone := s.founder.Load() || s.everSynced.Load()
	if alone && standsAlone {
		s.markSynced(now)
	}
	if !s.everSynced.Load() {
		// Alone or not: a member restarted with its members file takes
		// back the cuts it had, and once its peers are in view again its
		// bound came from them before it had synced with any (found by
		// review: it was ignored only while the member was alone).
		stable = lww.NoStable
	}
	s.adoptMarks(min(stable, now))
	var step []crdt.Version // a step's versions, reused
	collected, dead, deadKeys := 0, 0, int64(0)
	for i := range s.shards {
		sh := &s.shards[i]
		for leaf, done := uint32(0), false; !done; {
			sh.mu.Lock()
			step, leaf, done = sh.m.GCStep(step[:0], now, stable, leaf, walkStep)
			s.unpublish(sh)
			if done {
				// What collectOldest can take at now: tombstones stamped
				// after it (a peer's clock ahead) counted, the bound took
				// that many of the others, fresh deletes among them, with
				// fewer than MaxDead dead (found by review).
				dead += sh.m.DeadTombstones() + sh.m.Expired()
				deadKeys += int64(sh.m.DeadKeyBytes())
			}
			sh.mu.Unlock()
			collected += s.collected(step, keep)
			if betweenSteps != nil {
				betweenSteps(i, done)
			}
		}
	}
	var over int
	var overKeys int64
	if s.maxDead > 0 {
		over = max(dead-s.maxDead, 0)
	}
	if s.maxDeadBytes > 0 {
		overKeys = max(deadKeys-s.maxDeadBytes, 0)
	}
	if (over > 0 || overKeys > 0) && standsAlone {
		n := s.collectOldest(now, over, overKeys, keep)
		s.stats.byBound.Add(uint64(n))
		collected += n
	}
	return collected
}

// collected counts the values among vs, versions just collected, as
// expirations, passes vs to keep (if not nil), and returns their number.
func (s *Store) collected(vs []crdt.Version, keep func([]crdt.Version)) int {
	expired := 0
	for _, v := range vs {
		if !v.Tombstone {
			expired++
		}
	}
	s.stats.expirations.Add(uint64(expired))
	if keep != nil && len(vs) > 0 {
		keep(vs)
	}
	return len(vs)
}

// walkStep is how many records Collect and WriteSnapshot look at in a
// shard (at least: they end the digest leaf they began) before they let
// go of the shard's lock for its writers and readers (lww.Map.GCStep,
// lww.Map.RangeStep): about 0.2-1 ms at a million keys. A walk held a
// whole shard: a collection of a million keys (3,900 a shard), 1 ms or so
// a shard with a few expiring values among them and several in a mass
// expiry; at 4 million, 3-4 ms and 10-51 ms. See BenchmarkCollect.
const walkStep = 256

// betweenSteps, if set, is called by Collect and WriteSnapshot after each
// step of their walk of a shard, with its lock let go of: the shard's
// index, and whether the step was its last (tests).
var betweenSteps func(shard int, done bool)

// afterOldestScan, if set, is called by collectOldest once it has looked
// for the oldest dead records, before it collects them, no lock held
// (tests).
var afterOldestScan func()

// unpublish lets go of the items (expired values) that the collection
// step just made took out of shard sh (held locked): they leave the
// eviction policy and the counts, and are reported.
func (s *Store) unpublish(sh *shard) {
	for i, it := range sh.dropped {
		sh.dropped[i] = nil
		ch := lost(crdt.Applied, it)
		s.track(ch, false)
		s.account(ch)
		// Read once the value is gone, as apply reads it (see there).
		if watch := s.watching(); watch != nil {
			sh.report(watch, Event{Kind: EventExpire, Here: true, Record: crdt.Record{Key: it.Key(), Time: it.Time()}})
		}
	}
	sh.dropped = sh.dropped[:0]
}

// collectOldest collects the dead records with the oldest timestamps in
// the whole store (lww rule 7: MaxDead, MaxDeadBytes), at least n of them
// and at least keyBytes bytes of keys, no more than its own scan finds
// over the bounds, so that the watermarks it raises stay as low as the
// bounds allow; of those dead on every clock within MaxClockSkew of this
// one first (tombstones, values that expired at least that long ago),
// then of the values that expired since. It passes the versions it
// collects to keep, as collect does, and returns how many there were.
func (s *Store) collectOldest(now int64, n int, keyBytes int64, keep func([]crdt.Version)) int {
	type dead struct {
		recent bool // a value that expired less than MaxClockSkew ago
		time   crdt.Timestamp
		key    string
		shard  int
	}
	everywhere := crdt.SubSat(now, s.skew)
	var all []dead
	for i := range s.shards {
		sh := &s.shards[i]
		for leaf, done := uint32(0), false; !done; {
			sh.mu.Lock()
			leaf, done = sh.m.RangeMortalStep(leaf, walkStep, func(r crdt.Record) {
				if since, dies := r.DeadSince(); dies && since <= now {
					all = append(all, dead{!r.Tombstone && since > everywhere, r.Time, r.Key, i})
				}
			})
			sh.mu.Unlock()
		}
	}
	if afterOldestScan != nil {
		afterOldestScan()
	}
	slices.SortFunc(all, func(a, b dead) int {
		if a.recent != b.recent {
			if a.recent {
				return 1
			}
			return -1
		}
		return a.time.Compare(b.time)
	})
	// The walk's counts are as of each leaf's step: a dead record written
	// again since (a value) was still counted, and a long key's bytes
	// taken for over the bound made the bound collect as many bytes of
	// the oldest other dead records, the bound holding (found by review:
	// TestARevivedLongKeyMakesTheBoundCollectNothing). Over by the
	// scan's counts too, then, which are newer.
	var scanned int64
	for _, d := range all {
		scanned += int64(len(d.key))
	}
	if s.maxDead > 0 {
		n = min(n, max(len(all)-s.maxDead, 0))
	}
	if s.maxDeadBytes > 0 {
		keyBytes = min(keyBytes, max(scanned-s.maxDeadBytes, 0))
	}
	take := 0
	for ; take < len(all) && (take < n || keyBytes > 0); take++ {
		keyBytes -= int64(len(all[take].key))
	}
	all = all[:take]
	slices.SortStableFunc(all, func(a, b dead) int { return a.shard - b.shard }) // a lock per shard, per walkStep records
	var dst []crdt.Version
	collected := 0
	for len(all) > 0 {
		sh := &s.shards[all[0].shard]
		sh.mu.Lock()
		dst = dst[:0]
		for step := 0; step < walkStep && len(all) > 0 && &s.shards[all[0].shard] == sh; step++ {
			// Only the record found: one the key took since (a delete
			// made again, a value just expired) is not among the oldest,
			// and its watermark rejected writes of its bucket stamped
			// long after them (found by review).
			if e := sh.m.Entry(all[0].key); e != nil && e.Time() == all[0].time {
				if v, ok := sh.m.CollectDead(all[0].key, now); ok {
					dst = append(dst, v)
				}
			}
			all = all[1:]
		}
		if s.broken == boundUnreported {
			sh.dropped = sh.dropped[:0]
		}
		s.unpublish(sh)
		sh.mu.Unlock()
		collected += s.collected(dst, keep)
	}
	return collected
}
