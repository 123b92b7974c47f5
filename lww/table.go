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
// It grows to twice its size when a put would fill more than 13/16 of it,
// and halves when removals leave less than a sixteenth used, so that a
// burst of short-lived keys does not cost its peak for good.
type table struct {
	slots []*Entry
	n     int
	seed  maphash.Seed
}

const minTableSize = 8

func newTable() table {
	return table{slots: make([]*Entry, minTableSize), seed: maphash.MakeSeed()}
}

func (t *table) hash(key string) int { return int(maphash.String(t.seed, key)) & (len(t.slots) - 1) }

// get returns key's entry, or nil.
func (t *table) get(key string) *Entry {
	mask := len(t.slots) - 1
	for i := t.hash(key); ; i = (i + 1) & mask {
		e := t.slots[i]
		if e == nil || e.key == key {
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
	i := t.hash(e.key)
	for t.slots[i] != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = e
}

// remove removes key's entry, if it holds one.
func (t *table) remove(key string) {
	mask := len(t.slots) - 1
	i := t.hash(key)
	for ; t.slots[i] != nil && t.slots[i].key != key; i = (i + 1) & mask {
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
		home := t.hash(e.key)
		if (i < j && i < home && home <= j) || (j < i && (i < home || home <= j)) {
			continue // still reachable from its home
		}
		t.slots[i] = e
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
	t.slots = make([]*Entry, size)
	for _, e := range old {
		if e != nil {
			t.place(e)
		}
	}
}
