package store

import (
	"sync/atomic"
	"unsafe"
)

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
	// DeadKeyBytes is the bytes of the keys of the dead records the last
	// Collect kept (what MaxDeadBytes bounds).
	DeadKeyBytes int64
	// Evictions counts values evicted by the bounds (or Evict), and
	// Expirations values past their TTL that were collected.
	Evictions, Expirations uint64
	// Oversized counts records received or restored with a value over
	// MaxValueSize, kept as evicted versions.
	Oversized uint64
	// CollectedAtHorizon counts dead records collected once dead for the
	// horizon (lww rule 2); CollectedEarly those collected before their
	// horizon because every member held them (rule 6); CollectedByBound
	// those collected because the member held more than MaxDead (rule 7).
	CollectedAtHorizon, CollectedEarly, CollectedByBound uint64
	// Restamped counts local writes stamped again because a session's cut
	// or their bucket's watermark overtook them (see Store.Overtaken), or
	// a peer's answer from before this process would delete them (see
	// Store.KeepAnswered).
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
	for i := range s.reads {
		st.Hits += s.reads[i].hits.Load()
		st.Misses += s.reads[i].misses.Load()
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		st.Records += sh.m.Records()
		st.Tombstones += sh.m.Tombstones()
		st.Evicted += sh.m.Evicted()
		st.Expired += sh.m.Expired()
		st.DeadKeyBytes += int64(sh.m.DeadKeyBytes())
		st.CollectedEarly += sh.m.CollectedEarly()
		st.CollectedAtHorizon += sh.m.CollectedAtHorizon()
		sh.mu.Unlock()
	}
	return st
}

// readCounts are the store's counts of Get calls (and Missed), in
// stripes that keep each one's counts on cache lines of their own. A
// reader counts in the stripe that the place of its goroutine's stack
// picks (stripe), so that readers on different goroutines mostly write
// lines of their own. Counted in one word per shard, which every read
// wrote, two processors reading passed its line back and forth: the
// Cache's BenchmarkGet (Zipf keys, whose hot ones share a few shards) at
// -cpu 2 took about as long a read as one reader (45.7-47.3 ns in four
// runs beside the build with the stripes, 24.2-29.4 ns). The write log's
// per-processor slots (package near) would cost a sync.Pool Get and Put
// a read, more than the count itself.
type readCounts [readStripes]readStripe

// readStripe is 128 bytes, its counts at 64: the store is aligned to 8
// bytes only, and counts 64 bytes apart could share a line (the store
// pads the array's end too: TestReadStripesKeepLinesOfTheirOwn).
type readStripe struct {
	_            [64]byte
	hits, misses atomic.Uint64
	_            [48]byte
}

// readStripes is the number of stripes (8 KiB a store): two goroutines
// reading at once count in one by chance, about once in 64 pairs.
const (
	readStripeBits = 6
	readStripes    = 1 << readStripeBits
)

// stripe returns a stripe for the calling goroutine. A goroutine's stack
// is its own: the address of a variable on it, past its low 11 bits,
// picks the stripe. A call made deeper in the stack, or after the stack
// grew and moved, may pick another: no matter, every stripe is summed.
func (r *readCounts) stripe() *readStripe {
	var here byte
	a := uint64(uintptr(unsafe.Pointer(&here)))
	return &r[(a>>11)*0x9e3779b97f4a7c15>>(64-readStripeBits)]
}
