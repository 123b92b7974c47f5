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
// Beside each slot it keeps a byte of its entry's hash, its tag: a probe
// reads an entry and compares keys only where the tag matches. Without
// tags, a lookup of a new key at a load near 13/16 read a dozen entries
// and compared their keys, each likely a cache miss, and keys that share
// a long prefix (key:000000001234) compare byte by byte: 13% of the scale
// simulator's time, and the most of merging a repair into a large map.
// The tags cost a byte a slot, 1.2 to 2.5 bytes a key.
//
// It grows to twice its size when a put would fill more than 13/16 of it,
// and halves when removals leave less than a sixteenth used, so that a
// burst of short-lived keys does not cost its peak for good.
type table struct {
	slots []*Entry
	tags  []uint8
	n     int
	seed  maphash.Seed
}

const minTableSize = 8

func newTable() table {
	return table{slots: make([]*Entry, minTableSize), tags: make([]uint8, minTableSize), seed: maphash.MakeSeed()}
}

// hash returns key's home slot and its tag.
func (t *table) hash(key string) (int, uint8) {
	h := maphash.String(t.seed, key)
	return int(h) & (len(t.slots) - 1), uint8(h >> 56)
}

// get returns key's entry, or nil.
func (t *table) get(key string) *Entry {
	mask := len(t.slots) - 1
	i, tag := t.hash(key)
	for ; ; i = (i + 1) & mask {
		e := t.slots[i]
		if e == nil || t.tags[i] == tag && e.key == key {
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
	mask := len(t.slots) - 1
	i, tag := t.hash(e.key)
	for t.slots[i] != nil {
		i = (i + 1) & mask
	}
	t.slots[i], t.tags[i] = e, tag
}

// replace puts e in the slot of the entry of its key, which the table
// holds.
func (t *table) replace(e *Entry) {
	mask := len(t.slots) - 1
	i, tag := t.hash(e.key)
	for t.tags[i] != tag || t.slots[i].key != e.key {
		i = (i + 1) & mask
	}
	t.slots[i] = e
}

// remove removes key's entry, if it holds one.
func (t *table) remove(key string) {
	mask := len(t.slots) - 1
	i, tag := t.hash(key)
	for ; t.slots[i] != nil && (t.tags[i] != tag || t.slots[i].key != key); i = (i + 1) & mask {
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
		home, _ := t.hash(e.key)
		if (i < j && i < home && home <= j) || (j < i && (i < home || home <= j)) {
			continue // still reachable from its home
		}
		t.slots[i], t.tags[i] = e, t.tags[j]
		i = j
	}
	t.slots[i] = nil
	t.n--
	if 16*t.n < len(t.slots) && len(t.slots) > minTableSize {
		t.resize(len(t.slots) / 2)
	}
}

func (t *table) resize(size int) {
	old := t.slots
	t.slots, t.tags = make([]*Entry, size), make([]uint8, size)
	for _, e := range old {
		if e != nil {
			t.place(e)
		}
	}
}
