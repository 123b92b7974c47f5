package store

import "github.com/bcache-go/bcache/crdt"

// Collect collects the dead records (tombstones, expired values) that the
// rules of package lww allow at now, and returns their versions. alone
// says that no other member is alive now.
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
// lww, rule 3).
func (s *Store) Collect(now int64, alone bool) []crdt.Version {
	if alone && (s.founder || s.everSynced.Load()) {
		s.MarkSynced(now)
	}
	var collected []crdt.Version
	var removed []change
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		start := len(collected)
		collected = sh.m.AppendGC(collected, now)
		for _, v := range collected[start:] {
			if ch := sh.unpublish(crdt.Applied, v.Key, s.indexHash(v.Key)); ch.removed != nil {
				s.track(ch)
				removed = append(removed, ch)
			}
		}
		sh.mu.Unlock()
	}
	expired := 0
	for _, v := range collected {
		if !v.Tombstone {
			expired++
		}
	}
	for _, ch := range removed {
		s.account(ch)
	}
	s.stats.expirations.Add(uint64(expired))
	return collected
}
