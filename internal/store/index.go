package store

import (
	"sync/atomic"
)

// index maps keys to their resident items. Lookups take no lock and write
// no shared memory: readers load the table, then slot pointers, with atomic
// loads. Writers (add, remove) must hold the owning shard's lock. It is an
// open-addressing table with linear probing; removal leaves a tombstone so
// that probes continue past it, and the table is rebuilt, and published
// with one atomic store, when live entries and tombstones fill three
// quarters of it, or live entries fill less than a sixteenth of it (after
// mass expiry: the table gives its memory back).
//
// It probes with the store's own seeded hash of the key (Store.indexHash),
// not with the key hash replicas agree on: that one is public, and keys
// chosen to share its low bits would make every probe walk them all.
type index struct {
	tab  atomic.Pointer[table]
	live int // items in the table (writer side)
	used int // slots holding an item or a tombstone (writer side)
}

type table struct {
	slots []atomic.Pointer[item]
	mask  uint32
	tomb  *item // marks a removed entry
}

const minIndexSize = 8

func newTable(size int, tomb *item) *table {
	return &table{slots: make([]atomic.Pointer[item], size), mask: uint32(size - 1), tomb: tomb}
}

func (x *index) init() { x.tab.Store(newTable(minIndexSize, &item{})) }

// get returns the resident item for key, or nil. It is safe to call from
// any goroutine at any time.
func (x *index) get(key string, h uint32) *item {
	t := x.tab.Load()
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		it := t.slots[i].Load()
		switch {
		case it == nil:
			return nil
		case it != t.tomb && it.hash == h && it.Key() == key:
			return it
		}
	}
}

// add publishes it, whose key the index does not hold: it takes the first
// free slot (empty or a tombstone) of its probe, reading no item on the
// way (a probe that compared keys read an item at every slot it passed).
func (x *index) add(it *item) {
	t := x.tab.Load()
	i := it.hash & t.mask
	for {
		cur := t.slots[i].Load()
		if cur == nil || cur == t.tomb {
			break
		}
		i = (i + 1) & t.mask
	}
	if t.slots[i].Load() == nil {
		x.used++
	}
	t.slots[i].Store(it)
	x.live++
	if 4*x.used >= 3*len(t.slots) {
		x.rebuild()
	}
}

// remove unpublishes key and returns its item, or nil.
func (x *index) remove(key string, h uint32) *item {
	t := x.tab.Load()
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		cur := t.slots[i].Load()
		switch {
		case cur == nil:
			return nil
		case cur != t.tomb && cur.hash == h && cur.Key() == key:
			t.slots[i].Store(t.tomb)
			x.live--
			if 16*x.live < len(t.slots) && len(t.slots) > minIndexSize {
				x.rebuild()
			}
			return cur
		}
	}
}

// rebuild replaces the table with one sized for twice the live items,
// without the tombstones.
func (x *index) rebuild() {
	t := x.tab.Load()
	size := minIndexSize
	for size < 2*x.live {
		size *= 2
	}
	n := newTable(size, t.tomb)
	for i := range t.slots {
		if it := t.slots[i].Load(); it != nil && it != t.tomb {
			j := it.hash & n.mask
			for n.slots[j].Load() != nil {
				j = (j + 1) & n.mask
			}
			n.slots[j].Store(it)
		}
	}
	x.used = x.live
	x.tab.Store(n)
}

// len returns the number of items (writer side).
func (x *index) len() int { return x.live }
