package store

// Stats are a store's counters and sizes.
type Stats struct {
	// Hits and Misses count Get calls that found a live value and those
	// that did not.
	Hits, Misses uint64
	// Keys and Bytes are the resident values and their key and value bytes.
	Keys  int
	Bytes int64
	// Records, Tombstones and Evicted count the records held: every kind,
	// deletes, and versions whose value was evicted. Expired counts the
	// values past their expiry that the last Collect kept.
	Records, Tombstones, Evicted, Expired int
	// Evictions counts values evicted by the bounds (or Evict), and
	// Expirations values past their TTL that were collected.
	Evictions, Expirations uint64
	// Oversized counts records received or restored with a value over
	// MaxValueSize, kept as evicted versions.
	Oversized uint64
	// CollectedEarly counts dead records collected before their horizon
	// because every member held them (lww rule 6); CollectedByBound those
	// collected because the member held more than MaxDead (rule 7).
	CollectedEarly, CollectedByBound uint64
	// Restamped counts local writes stamped again because a session's cut
	// or their bucket's watermark overtook them (see Store.Overtaken).
	Restamped uint64
	// WatermarksAdopted counts the watermarks a peer's mark raised here
	// (OfferMarks), once per raise.
	WatermarksAdopted uint64
}

// Stats returns the store's counters. It takes each shard's lock for a
// moment, one at a time.
func (s *Store) Stats() Stats {
	st := Stats{
		Keys: s.Len(), Bytes: s.bytes.Load(),
		Evictions: s.stats.evictions.Load(), Expirations: s.stats.expirations.Load(),
		Oversized: s.stats.oversized.Load(), CollectedByBound: s.stats.byBound.Load(),
		Restamped: s.stats.restamped.Load(), WatermarksAdopted: s.stats.marksAdopted.Load(),
	}
	for i := range s.shards {
		sh := &s.shards[i]
		st.Hits += sh.stats.hits.Load()
		st.Misses += sh.stats.misses.Load()
		sh.mu.Lock()
		st.Records += sh.m.Records()
		st.Tombstones += sh.m.Tombstones()
		st.Evicted += sh.m.Evicted()
		st.Expired += sh.m.Expired()
		st.CollectedEarly += sh.m.CollectedEarly()
		sh.mu.Unlock()
	}
	return st
}
