package store

import (
	"sync"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// shard is one part of the key space, chosen by the top bits of the key
// hash: an lww.Map over its subtree of the store's digest, whose key
// table readers probe through find. Writers hold the shard's lock;
// readers take none.
type shard struct {
	// find looks keys up in m for readers, taking no lock: its table is
	// the readers' index (lww.Config.Finder, kept here to save them a
	// pointer). Every read reads it, and the map writes it only as its
	// table moves entries: a line apart from the words written on every
	// write (mu, and those written under it).
	find lww.Finder
	m    *lww.Map
	id   uint8 // the shard's place in the store
	_    [64]byte
	mu   sync.Mutex
	// ev is the change being reported to the store's watcher, written
	// under mu while there is one: off the lines readers use.
	ev Event
	// fills holds the keys being filled (Store.WatchFill), under mu; nil
	// until the first fill.
	fills map[string]*fillWatch
	// dropped holds the items m's collection step just removed
	// (lww.Config.Dropped), under mu, until the store has let go of them.
	dropped []*item
	_       [64]byte
}

// merge is how shard.apply merges a record.
type merge struct {
	// delta says the record came as a delta, not a repair or a local
	// write (lww.Map.Merge).
	delta bool
	// refill says the record only puts a value back on an evicted stub
	// of its version (lww.Map.Refill).
	refill bool
	// prior asks the change to say what the key held before.
	prior bool
	// tooLong says the record is a value over this member's bounds, made
	// a stub (lww.Map.MergeTooLong).
	tooLong bool
}

// change is what applying a record did to a shard's resident values.
type change struct {
	outcome   crdt.Outcome
	added     *item // newly resident item
	removed   *item // item no longer resident
	rewritten *item // resident item with a new value
	// returning says the added item's key had a record here before (its
	// value evicted, deleted or expired): demand that came back.
	returning bool
	bytes     int64 // change in resident key and value bytes
	// prior is the time of the record the key held before, when apply
	// was asked for it (zero if none); priorDead says it was a tombstone.
	prior     crdt.Timestamp
	priorDead bool
}

// apply merges rec (local or received) and keeps the eviction policy in
// step, with the shard's lock held. at is key's entry in the shard's map
// (s.m.Entry), nil if none. rec.Value must not be modified afterwards. A
// key's resident item is its entry, so that writing a resident key looks
// it up once, in the map's table, and merges into its item in place,
// behind the item's sequence count. That table is the readers' index too
// (s.find): a new item is theirs as the map puts it there, whole, and an
// item whose key moves to a tombstone or a stub is theirs no longer as
// the map puts that in its place. how says how rec is merged.
func (s *shard) apply(rec crdt.Record, ih uint32, how merge, now int64, at *lww.Entry) change {
	var cur *item
	records, size := 0, 0
	if at != nil && at.HoldsValue() {
		// Every entry holding a value is a published item (it loses its
		// item only as it loses its value, or is dropped).
		cur = itemOf(at)
		size = cur.valueLen()
	} else {
		records = s.m.Records()
	}
	var was crdt.Timestamp
	wasDead := false
	if how.prior && at != nil {
		was, wasDead = at.Time(), at.Tombstone()
	}
	if cur != nil {
		cur.seq.Add(1) // odd: readers retry
	}
	var o crdt.Outcome
	var e *lww.Entry
	if how.refill && how.tooLong {
		// A value over this member's bounds is put back on no stub. Of
		// the stub's very version and expiry, it is merged as Apply
		// merges it (a tie it loses, a stub over a stub), which marks
		// the stub as standing for a value too long here: a Refill of
		// another value of that version is refused after it, as after
		// Apply (Refill left the stub unmarked: found by review). Of
		// another version it changes nothing, as any Refill.
		o = crdt.Stale
		if at != nil && !at.HoldsValue() && !at.Tombstone() {
			if r := at.Record(); r.Time == rec.Time && r.Expires == rec.Expires {
				o, e = s.m.MergeTooLong(rec, false, now, at)
			}
		}
	} else if how.refill {
		o, e = s.m.Refill(rec, at)
	} else if how.tooLong {
		o, e = s.m.MergeTooLong(rec, how.delta, now, at)
	} else {
		o, e = s.m.Merge(rec, how.delta, now, at)
	}
	if cur != nil {
		cur.seq.Add(1)
	}
	if o != crdt.Applied {
		return change{outcome: o}
	}
	if len(s.fills) != 0 && !how.refill { // a fill of the key under way must not store over it (a refill is no write: its version was held)
		if w := s.fills[rec.Key]; w != nil {
			w.applied++
		}
	}
	var ch change
	switch {
	case !e.HoldsValue(): // a tombstone or an evicted stub: the key moved off cur's entry
		ch = lost(o, cur)
	case cur != nil && e == &cur.Entry:
		ch = change{outcome: o, rewritten: cur, bytes: int64(len(rec.Value) - size)}
	default: // a new entry holding a value (a key keeps its entry while it holds one)
		it := itemOf(e)
		it.hash = ih
		ch = change{outcome: o, added: it, bytes: int64(len(it.Key()) + len(rec.Value)), returning: s.m.Records() == records}
	}
	ch.prior, ch.priorDead = was, wasDead
	return ch
}

// lost returns the change of it (if not nil), no longer its key's
// resident item: its key moved to another entry, or left the map.
func lost(o crdt.Outcome, it *item) change {
	if it == nil {
		return change{outcome: o}
	}
	return change{outcome: o, removed: it, bytes: -int64(len(it.Key()) + it.valueLen())}
}

// resident returns key's resident item, or nil.
func (s *shard) resident(key string) *item {
	if e := s.m.Entry(key); e != nil && e.HoldsValue() {
		return itemOf(e) // every entry holding a value is an item
	}
	return nil
}

// evict drops it's value if it is still the resident item of its key.
func (s *shard) evict(it *item) (change, bool) {
	if s.resident(it.Key()) != it {
		return change{}, false
	}
	s.m.Evict(it.Key()) // moves the key to a stub: it is not written again
	return lost(crdt.Applied, it), true
}
