package lww

import "hash/maphash"

// table maps keys to their entries: open addressing with linear probing
// over a power-of-two array of entry pointers, 8 bytes a slot, where a Go
// map of string to pointer takes about 32 bytes an entry (the key's
// header again, control bytes, and room to grow). A removal shifts the
// entries after it back into place, so no slot is ever a tombstone
// (except in the old slots of a resize under way, below). It
// probes with a hash seeded per table (as a Go map does), not with the key
// hash replicas agree on: that one is public, and keys chosen to share its
// low bits would make every probe walk them all.
//
// Beside each slot it keeps 32 bits of its entry's hash: a probe reads an
// entry and compares keys only where those match, and a resize or a
// removal's back-shift places entries from their stored hashes without
// reading them. With a byte of the hash (a tag) instead, a resize read
// every entry to hash its key again, a cache miss each: 5.3 ms under the
// map's lock for the insert that took a map past 26,624 keys, which all
// the members of a test cluster did at the same write. Without any, a
// lookup of a new key at a load near 13/16 read a dozen entries and
// compared their keys, each likely a cache miss, and keys that share a
// long prefix (key:000000001234) compare byte by byte: 13% of the scale
// simulator's time, and the most of merging a repair into a large map.
// The hashes cost four bytes a slot, 5 to 10 bytes a key.
//
// It grows to twice its size when a put would fill more than 13/16 of it,
// and halves when removals leave less than a sixteenth used, so that a
// burst of short-lived keys does not cost its peak for good.
//
// Growing moves the entries a few at a time, not at once: a table being
// resized keeps its old slots beside the new ones, and every put and
// removal moves the entries of the next migrateStep old slots until none
// is left (removals mark the old slots they empty, as moved, rather than
// shifting entries back: the old slots are scanned in order).
// Moved at once, the entries of a map of 26,624 keys took 2-6 ms (0.3 ms
// of it placing them, the rest the first touch of the new arrays' fresh
// pages, about 10 us a page on this project's VM), and of 851,968 keys
// 73 ms with the collector off, 130-138 ms with it on, under the map's
// lock, on every member that took a key table past the same size at the
// same write (a test cluster's replicas did). Now a put touches a few
// slots of the new arrays, whatever the table's size: the put that
// starts a resize takes what allocating the new arrays takes, which is
// little unless a collection is under way, when the runtime has the
// goroutine that allocates help it or wait for it in proportion to the
// size (the slowest of a million puts into one map took 1 ms with the
// collector off, 60-85 ms with it on, that put; a map split into shards,
// as the store's is, allocates a shard's share).
type table struct {
	slots  []*Entry
	hashes []uint32 // of each slot's entry: its home slot is hash & (len-1)
	n      int      // entries in slots and old
	seed   maphash.Seed
	// While a resize is under way, old holds the slots not moved yet:
	// below cursor, every entry is moved (marked moved; holes stay nil);
	// from it on, entries still found there, holes (nil), or entries
	// removed since the resize began (moved, so that a probe for a later
	// entry goes on past them).
	old       []*Entry
	oldHashes []uint32
	cursor    int
}

// moved marks a slot of the old array whose entry is gone: moved to the
// new slots, or removed during the resize.
var moved = new(Entry)

// migrateStep is the old slots a put or a removal moves while a resize is
// under way.
// A resize starts with at most 13/16 of the old slots used, and the new
// slots, twice as many, leave room for at least 13/16 of the old
// slots' count of puts before they fill past 13/16, so 4 a put empties the
// old slots long before.
const migrateStep = 4

const minTableSize = 8

func newTable() table {
	return table{slots: make([]*Entry, minTableSize), hashes: make([]uint32, minTableSize), seed: maphash.MakeSeed()}
}

// hash returns key's hash.
func (t *table) hash(key string) uint32 { return uint32(maphash.String(t.seed, key)) }

// get returns key's entry, or nil.
func (t *table) get(key string) *Entry {
	h := t.hash(key)
	if i := find(t.slots, t.hashes, key, h); i >= 0 {
		return t.slots[i]
	}
	if t.old != nil {
		if i := find(t.old, t.oldHashes, key, h); i >= 0 {
			return t.old[i]
		}
	}
	return nil
}

// find returns the slot of key's entry in slots, or -1. moved slots
// (only in an old array) are passed over.
func find(slots []*Entry, hashes []uint32, key string, h uint32) int {
	mask := len(slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := slots[i]
		if e == nil {
			return -1
		}
		if e != moved && hashes[i] == h && e.key == key {
			return i
		}
	}
}

// put adds e, whose key the table does not hold.
func (t *table) put(e *Entry) {
	t.migrate()
	if 16*(t.n+1) > 13*len(t.slots) {
		t.finish() // never two resizes at once (the step makes it rare)
		t.begin(2 * len(t.slots))
		t.migrate()
	}
	place(t.slots, t.hashes, e, t.hash(e.key))
	t.n++
}

// place puts e, whose key hashes to h, in the first free slot from its
// home.
func place(slots []*Entry, hashes []uint32, e *Entry, h uint32) {
	mask := len(slots) - 1
	i := int(h) & mask
	for slots[i] != nil {
		i = (i + 1) & mask
	}
	slots[i], hashes[i] = e, h
}

// replace puts e in the slot of the entry of its key, which the table
// holds.
func (t *table) replace(e *Entry) {
	h := t.hash(e.key)
	if i := find(t.slots, t.hashes, e.key, h); i >= 0 {
		t.slots[i] = e
		return
	}
	t.old[find(t.old, t.oldHashes, e.key, h)] = e
}

// remove removes key's entry, if it holds one.
func (t *table) remove(key string) {
	t.migrate() // removals alone finish a resize too
	h := t.hash(key)
	i := find(t.slots, t.hashes, key, h)
	if i < 0 {
		if t.old == nil {
			return
		}
		j := find(t.old, t.oldHashes, key, h)
		if j < 0 {
			return
		}
		t.old[j] = moved // a probe for an entry after it goes on
		t.n--
		return
	}
	// Move back every later entry of the run whose home slot is not
	// between the hole and itself: a probe for it would stop at the hole.
	mask := len(t.slots) - 1
	for j := i; ; {
		j = (j + 1) & mask
		e := t.slots[j]
		if e == nil {
			break
		}
		home := int(t.hashes[j]) & mask
		if (i < j && i < home && home <= j) || (j < i && (i < home || home <= j)) {
			continue // still reachable from its home
		}
		t.slots[i], t.hashes[i] = e, t.hashes[j]
		i = j
	}
	t.slots[i] = nil
	t.n--
	if t.old == nil && 16*t.n < len(t.slots) && len(t.slots) > minTableSize {
		// At once: the new slots are few, the old ones were touched, and
		// moved a few at a time by removals alone, a table emptied by a
		// collection would wait for puts to shrink again.
		t.begin(len(t.slots) / 2)
		t.finish()
	}
}

// begin starts a resize to size slots: the slots become the old ones.
func (t *table) begin(size int) {
	t.old, t.oldHashes, t.cursor = t.slots, t.hashes, 0
	t.slots, t.hashes = make([]*Entry, size), make([]uint32, size)
}

// migrate moves the entries of the next migrateStep old slots, if a
// resize is under way.
func (t *table) migrate() {
	if t.old == nil {
		return
	}
	for end := min(t.cursor+migrateStep, len(t.old)); t.cursor < end; t.cursor++ {
		if e := t.old[t.cursor]; e != nil && e != moved {
			place(t.slots, t.hashes, e, t.oldHashes[t.cursor])
			t.old[t.cursor] = moved
		}
	}
	if t.cursor == len(t.old) {
		t.old, t.oldHashes = nil, nil
	}
}

// idleStep is the old slots migrateIdle moves: a table whose writes
// stopped during a resize (a shard after a bulk load) kept both arrays,
// and probed both for every key it did not hold, until writes came again
// (found by review).
const idleStep = 4096

// migrateIdle moves the entries of the next idleStep old slots, if a
// resize is under way: the map's collections call it (every GCInterval
// in a Cache), so that a resize ends without writes too.
func (t *table) migrateIdle() {
	for range idleStep / migrateStep {
		if t.old == nil {
			return
		}
		t.migrate()
	}
}

// finish moves every entry left in the old slots.
func (t *table) finish() {
	for t.old != nil {
		t.migrate()
	}
}

// each calls fn with every entry.
func (t *table) each(fn func(*Entry)) {
	for _, slots := range [][]*Entry{t.slots, t.old} {
		for _, e := range slots {
			if e != nil && e != moved {
				fn(e)
			}
		}
	}
}
