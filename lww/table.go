package lww

import (
	"encoding/binary"
	"hash/maphash"
	"runtime"
	"sync/atomic"
	"unsafe"
)

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
//
// Readers on other goroutines may look keys up while the map's writer
// works (through its Finder), taking no lock and writing no shared
// memory: the slots and hashes are atomic words, and the arrays a reader
// probes are published together (view). A put fills an empty slot and a
// replace swaps one pointer, which a reader sees or does not, as if it
// came before or after. A removal's back-shift and a resize's steps
// (migrate) carry an entry past a reader that may be probing for it: the
// writer makes its change count odd while it moves entries, and a reader
// that found nothing trusts that only if the count was even and the same
// before and after its probe; else it probes again. A resize finished at
// once (finish) copies without the count: it moves nothing past a
// reader. A reader that finds the entry needs no check: it was the key's
// at a moment of the call (an array a reader still holds after the
// writer dropped it is never written again, and holds what the key held
// then). (This table is also the store's readers' index: one table a
// key where there were two, 20 bytes a key less, and one probe a write
// less.)
type table struct {
	slots  []atomic.Pointer[Entry]
	hashes []atomic.Uint32 // of each slot's entry: its home slot is hash & (len-1)
	n      int             // entries in slots and old
	// While a resize is under way, old holds the slots not moved yet:
	// below cursor, every entry is moved (marked moved; holes stay nil);
	// from it on, entries still found there, holes (nil), or entries
	// removed since the resize began (moved, so that a probe for a later
	// entry goes on past them).
	old       []atomic.Pointer[Entry]
	oldHashes []atomic.Uint32
	cursor    int
	// shared is what readers on other goroutines read: the map's
	// Finder, never replaced.
	shared *Finder
}

// Finder looks keys up in a map from other goroutines than the map's own
// while it works, taking no lock (see Map.Finder): a table's part for
// them, the arrays they probe, and the count of the writer's changes
// that move entries.
type Finder struct {
	view atomic.Pointer[view]
	// changes is odd while the writer moves entries from slot to slot
	// (see table).
	changes atomic.Uint64
	seed    maphash.Seed // of the table's hash: one per table (see table)
	viewed  func()       // tests: called as a reader has loaded the view (each time)
}

// view is the arrays of a table at one time: its slots and hashes, and
// the old ones while a resize is under way.
type view struct {
	slots, old        []atomic.Pointer[Entry]
	hashes, oldHashes []atomic.Uint32
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

// newTable returns an empty table that publishes its arrays for readers
// in f, or in a Finder of its own if f is nil.
func newTable(f *Finder) table {
	if f == nil {
		f = new(Finder)
	}
	*f = Finder{}
	f.seed = maphash.MakeSeed()
	t := table{shared: f}
	t.slots, t.hashes = make([]atomic.Pointer[Entry], minTableSize), make([]atomic.Uint32, minTableSize)
	t.publish()
	return t
}

// publish shows readers the table's arrays as they are now.
func (t *table) publish() {
	t.shared.view.Store(&view{slots: t.slots, hashes: t.hashes, old: t.old, oldHashes: t.oldHashes})
}

// moving and movedAll bracket a change that moves entries from slot to
// slot (see table).
func (t *table) moving()   { t.shared.changes.Add(1) }
func (t *table) movedAll() { t.shared.changes.Add(1) }

// hash returns key's hash.
func (t *table) hash(key string) uint32 { return uint32(maphash.String(t.shared.seed, key)) }

// get returns key's entry, or nil. For the map's writer.
func (t *table) get(key string) *Entry {
	h := t.hash(key)
	if i := index(t.slots, t.hashes, key, h); i >= 0 {
		return t.slots[i].Load()
	}
	if t.old != nil {
		if i := index(t.old, t.oldHashes, key, h); i >= 0 {
			return t.old[i].Load()
		}
	}
	return nil
}

// Find returns key's entry, or nil, as of a moment during the call. Any
// goroutine may call it at any time, while the map's writer works (see
// table). The entry may be one the map lets go of at once (a key that
// gains or loses its value moves to another): its holder reads it as
// Entry.LoadParts says, and takes an entry it retires (Entry.Retire) for
// none.
func (s *Finder) Find(key string) *Entry {
	h := uint32(maphash.String(s.seed, key))
	c := s.changes.Load()
	v := s.view.Load()
	if s.viewed != nil {
		s.viewed()
	}
	// probe's loop, written out: with sameKey, probe is past what the
	// compiler inlines, and the call cost a store's Get 1-2 ns of 36.
	slots, hashes := v.slots, v.hashes[:len(v.slots)]
	mask := len(slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := slots[i].Load()
		if e == nil {
			break
		}
		if hashes[i].Load() == h && e != moved && sameKey(e.key, key) {
			return e // the key was there: no check needed
		}
	}
	if v.old != nil { // a resize under way: the key may not be moved yet
		if e := probe(v.old, v.oldHashes, key, h); e != nil {
			return e
		}
	}
	if c&1 == 0 && s.changes.Load() == c {
		return nil // no entry moved during the probe: it found all there were
	}
	return s.findAgain(key, h)
}

// findAgain is Find's lookup of a key its first probes did not find
// while entries moved: probed again, in the new slots and the old ones,
// and found missing only if no entry moved meanwhile.
func (s *Finder) findAgain(key string, h uint32) *Entry {
	for spins := 0; ; spins++ {
		c := s.changes.Load()
		v := s.view.Load()
		if s.viewed != nil {
			s.viewed()
		}
		if e := probe(v.slots, v.hashes, key, h); e != nil {
			return e
		}
		if v.old != nil {
			if e := probe(v.old, v.oldHashes, key, h); e != nil {
				return e
			}
		}
		if c&1 == 0 && s.changes.Load() == c {
			return nil // no entry moved during the probe: it found all there were
		}
		if spins >= 4 {
			runtime.Gosched() // the writer may have been preempted mid-change
		}
	}
}

// probe returns key's entry in slots, or nil, for a reader on another
// goroutine than the writer's (see Find).
func probe(slots []atomic.Pointer[Entry], hashes []atomic.Uint32, key string, h uint32) *Entry {
	mask := len(slots) - 1
	hashes = hashes[:len(slots)]
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := slots[i].Load()
		if e == nil {
			return nil
		}
		if hashes[i].Load() == h && e != moved && sameKey(e.key, key) {
			return e
		}
	}
}

// index returns the slot of key's entry in slots, or -1. moved slots
// (only in an old array) are passed over. For the map's writer.
func index(slots []atomic.Pointer[Entry], hashes []atomic.Uint32, key string, h uint32) int {
	mask := len(slots) - 1
	hashes = hashes[:len(slots)]
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := slots[i].Load()
		if e == nil {
			return -1
		}
		if hashes[i].Load() == h && e != moved && sameKey(e.key, key) {
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
// home: its hash first, so that a reader that sees e there sees its hash.
func place(slots []atomic.Pointer[Entry], hashes []atomic.Uint32, e *Entry, h uint32) {
	mask := len(slots) - 1
	i := int(h) & mask
	for slots[i].Load() != nil {
		i = (i + 1) & mask
	}
	hashes[i].Store(h)
	slots[i].Store(e)
}

// replace puts e in the slot of the entry of its key, which the table
// holds.
func (t *table) replace(e *Entry) {
	h := t.hash(e.key)
	if i := index(t.slots, t.hashes, e.key, h); i >= 0 {
		t.slots[i].Store(e)
		return
	}
	t.old[index(t.old, t.oldHashes, e.key, h)].Store(e)
}

// remove removes key's entry, if it holds one.
func (t *table) remove(key string) {
	t.migrate() // removals alone finish a resize too
	h := t.hash(key)
	i := index(t.slots, t.hashes, key, h)
	if i < 0 {
		if t.old == nil {
			return
		}
		j := index(t.old, t.oldHashes, key, h)
		if j < 0 {
			return
		}
		t.old[j].Store(moved) // a probe for an entry after it goes on
		t.n--
		return
	}
	// Move back every later entry of the run whose home slot is not
	// between the hole and itself: a probe for it would stop at the hole.
	t.moving()
	mask := len(t.slots) - 1
	for j := i; ; {
		j = (j + 1) & mask
		e := t.slots[j].Load()
		if e == nil {
			break
		}
		hj := t.hashes[j].Load()
		home := int(hj) & mask
		if (i < j && i < home && home <= j) || (j < i && (i < home || home <= j)) {
			continue // still reachable from its home
		}
		t.hashes[i].Store(hj)
		t.slots[i].Store(e)
		i = j
	}
	t.slots[i].Store(nil)
	t.movedAll()
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
	t.slots, t.hashes = make([]atomic.Pointer[Entry], size), make([]atomic.Uint32, size)
	t.publish()
}

// migrate moves the entries of the next migrateStep old slots, if a
// resize is under way.
func (t *table) migrate() {
	if t.old == nil {
		return
	}
	t.moving()
	for end := min(t.cursor+migrateStep, len(t.old)); t.cursor < end; t.cursor++ {
		if e := t.old[t.cursor].Load(); e != nil && e != moved {
			place(t.slots, t.hashes, e, t.oldHashes[t.cursor].Load())
			t.old[t.cursor].Store(moved)
		}
	}
	if t.cursor == len(t.old) {
		t.old, t.oldHashes = nil, nil
		t.publish()
	}
	t.movedAll()
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

// finish moves every entry left in the old slots, at once: it fills
// empty slots of the new ones, leaves the old ones as they are and drops
// them whole, never to be written again, so that no entry moves past a
// reader and the change count stays as it was (see table); a reader that
// still holds the old slots finds there what each key held as they were
// dropped. Moved a few at a time as migrate moves them, each step bumped
// the count, and a reader that found nothing probed again and again
// until a probe went by without a step: a shrink of a table of a million
// slots, moved at once, kept such a reader 0.47 ms (found by review).
func (t *table) finish() {
	if t.old == nil {
		return
	}
	for ; t.cursor < len(t.old); t.cursor++ {
		if e := t.old[t.cursor].Load(); e != nil && e != moved {
			place(t.slots, t.hashes, e, t.oldHashes[t.cursor].Load())
		}
	}
	t.old, t.oldHashes = nil, nil
	t.publish()
}

// each calls fn with every entry.
func (t *table) each(fn func(*Entry)) {
	for _, slots := range [][]atomic.Pointer[Entry]{t.slots, t.old} {
		for i := range slots {
			if e := slots[i].Load(); e != nil && e != moved {
				fn(e)
			}
		}
	}
}

// sameKey reports whether a and b are the same key: for a key of 8 to 16
// bytes, by two 8-byte words each (the first and the last eight bytes),
// which the compiler makes two loads where they may be unaligned (amd64,
// arm64), where == calls the runtime's memequal: a probe compares the
// key of the entry whose hash matched, nearly always the one it looks
// for, and that call was an eighth of a store's Get.
func sameKey(a, b string) bool {
	n := len(a)
	if n != len(b) {
		return false
	}
	if n < 8 || n > 16 {
		return a == b
	}
	x, y := unsafe.Slice(unsafe.StringData(a), n), unsafe.Slice(unsafe.StringData(b), n)
	return binary.LittleEndian.Uint64(x) == binary.LittleEndian.Uint64(y) &&
		binary.LittleEndian.Uint64(x[n-8:]) == binary.LittleEndian.Uint64(y[n-8:])
}
