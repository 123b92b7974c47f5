package lww

import "hash/maphash"

// table maps keys to their entries: open addressing with linear probing
// over a power-of-two array of entry pointers, 8 bytes a slot, where a Go
// map of string to pointer takes about 32 bytes an entry (the key's
// header again, control bytes, and room to grow). A removal shifts the
// entries after it back into place, so no slot is ever a tombstone. It
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
type table struct {
	slots  []*Entry
	hashes []uint32 // of each slot's entry: its home slot is hash & (len-1)
	n      int
	seed   maphash.Seed
}

const minTableSize = 8

func newTable() table {
	return table{slots: make([]*Entry, minTableSize), hashes: make([]uint32, minTableSize), seed: maphash.MakeSeed()}
}

// hash returns key's home slot and its hash.
func (t *table) hash(key string) (int, uint32) {
	h := uint32(maphash.String(t.seed, key))
	return int(h) & (len(t.slots) - 1), h
}

// get returns key's entry, or nil.
func (t *table) get(key string) *Entry {
	mask := len(t.slots) - 1
	i, h := t.hash(key)
	for ; ; i = (i + 1) & mask {
		e := t.slots[i]
		if e == nil || t.hashes[i] == h && e.key == key {
			return e
		}
	}
}

// put adds e, whose key the table does not hold.
func (t *table) put(e *Entry) {
	if 16*(t.n+1) > 13*len(t.slots) {
		t.resize(2 * len(t.slots))
	}
	t.place(e)
	t.n++
}

func (t *table) place(e *Entry) {
	_, h := t.hash(e.key)
	t.placeHashed(e, h)
}

// placeHashed puts e, whose key hashes to h, in the first free slot from
// its home.
func (t *table) placeHashed(e *Entry, h uint32) {
	mask := len(t.slots) - 1
	i := int(h) & mask
	for t.slots[i] != nil {
		i = (i + 1) & mask
	}
	t.slots[i], t.hashes[i] = e, h
}

// replace puts e in the slot of the entry of its key, which the table
// holds.
func (t *table) replace(e *Entry) {
	mask := len(t.slots) - 1
	i, h := t.hash(e.key)
	for t.hashes[i] != h || t.slots[i].key != e.key {
		i = (i + 1) & mask
	}
	t.slots[i] = e
}

// remove removes key's entry, if it holds one.
func (t *table) remove(key string) {
	mask := len(t.slots) - 1
	i, h := t.hash(key)
	for ; t.slots[i] != nil && (t.hashes[i] != h || t.slots[i].key != key); i = (i + 1) & mask {
	}
	if t.slots[i] == nil {
		return
	}
	// Move back every later entry of the run whose home slot is not
	// between the hole and itself: a probe for it would stop at the hole.
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
	if 16*t.n < len(t.slots) && len(t.slots) > minTableSize {
		t.resize(len(t.slots) / 2)
	}
}

func (t *table) resize(size int) {
	old, hashes := t.slots, t.hashes
	t.slots, t.hashes = make([]*Entry, size), make([]uint32, size)
	for j, e := range old {
		if e != nil {
			t.placeHashed(e, hashes[j])
		}
	}
}
