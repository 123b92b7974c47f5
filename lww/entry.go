package lww

import (
	"math"
	"sync/atomic"
	"unsafe"

	"github.com/bcache-go/bcache/crdt"
)

// Entry is where a map keeps a key's record. A caller that remembers the
// Entry of a key can merge into it again with [Map.Merge] and skip the
// key lookup.
//
// It holds the record's fields one by one in 64 bytes, one size class of
// the allocator and one cache line, where a crdt.Record (80 bytes) with
// the key hash and the bucket link took 96: the value as a pointer and a
// length (its capacity is not kept), the flags in the length's top bits,
// and no key hash (HashKey of the key again, where a merge needs it). Its
// key never changes once the entry is made.
//
// The value, its length and the expiry are atomic words, so that a caller
// may read them ([Entry.LoadParts]) from other goroutines than the map's
// while the map writes them; the map itself is not safe for concurrent
// use.
type Entry struct {
	key     string
	value   atomic.Pointer[byte] // the value's first byte; nil for none
	wall    int64
	node    crdt.NodeID
	expires atomic.Int64
	next    *Entry // next entry in the same digest bucket; removed once unlinked
	logical uint32
	size    atomic.Uint32 // the value's length, with tombstoneBit, evictedBit and tooLongBit
}

const (
	tombstoneBit = 1 << 31
	evictedBit   = 1 << 30
	// tooLongBit marks an evicted stub that stands for a value too long
	// for the map's holder (MergeTooLong) or for the map, merged as the
	// stub or in a tie with it: a Refill does not put another value of
	// its version on it (see Refill).
	tooLongBit = 1 << 29
	// MaxValueLen is the longest value a map holds (512 MiB less a
	// byte): Merge keeps a longer one's version only, as an evicted stub.
	MaxValueLen = tooLongBit - 1
	// fpBit marks a stub of a value of this map's own eviction, or of a
	// stub a value of its version tied with, that knows that value by a
	// fingerprint in the length bits (a stub holds no value and has no
	// length): a Refill puts back that value only. contested, in the
	// fingerprint's place, says two values of the version came: the
	// stub is filled by none (see Refill).
	fpBit     = 1 << 28
	fpMask    = fpBit - 1
	contested = fpMask
)

// removed marks an Entry that is no longer in its map.
var removed = new(Entry)

// newEntry returns an entry for r, made by m's Alloc if r holds a value;
// key is the key's string, the map's copy if it has one.
func (m *Map) newEntry(r *crdt.Record, key string) *Entry {
	var e *Entry
	if m.alloc != nil && holdsValue(r) {
		e, key = m.alloc(key)
	} else {
		e = new(Entry)
	}
	e.key = key
	e.set(r)
	return e
}

// holdsValue reports whether r is neither a tombstone nor evicted: an
// entry for it is one of Config.Alloc's.
func holdsValue(r *crdt.Record) bool { return !r.Tombstone && !r.Evicted }

// set stores r's fields but its key.
func (e *Entry) set(r *crdt.Record) {
	size := uint32(len(r.Value))
	if r.Tombstone {
		size |= tombstoneBit
	}
	if r.Evicted {
		size |= evictedBit
	}
	e.value.Store(unsafe.SliceData(r.Value))
	e.size.Store(size)
	e.wall, e.logical, e.node = r.Time.Wall, r.Time.Logical, r.Time.Node
	e.expires.Store(r.Expires)
}

// Key returns the entry's key, which never changes.
func (e *Entry) Key() string { return e.key }

// Load returns the value (nil for none) and the expiry. It is for the
// map's own goroutine (or one holding its lock): a caller reading while
// the map may merge into e uses [Entry.LoadParts] and its own check that
// the parts come from one write (a sequence count around [Map.Merge],
// say), since Load makes the slice of parts that may not be one value's
// (under the race detector, the runtime's pointer checks stop the
// process on it).
func (e *Entry) Load() ([]byte, int64) {
	p, n, exp := e.LoadParts()
	if p == nil {
		return nil, exp
	}
	return unsafe.Slice(p, n), exp
}

// LoadParts returns the value's first byte (nil for none), its length and
// the expiry, each read atomically but not together, for a reader that
// checks they come from one write before it makes the value of them
// (unsafe.Slice(p, n)): a slice of one value's pointer and a longer
// value's length is not one to make even to throw away (under the race
// detector, the runtime's pointer checks stop the process on it).
func (e *Entry) LoadParts() (*byte, int, int64) {
	return e.value.Load(), int(e.size.Load() & MaxValueLen), e.expires.Load()
}

// HoldsValue reports whether the entry holds a value: it is neither a
// tombstone nor evicted (an expired value holds one until it is
// collected).
func (e *Entry) HoldsValue() bool { return e.size.Load()&(tombstoneBit|evictedBit) == 0 }

// Refillable reports whether the entry is an evicted stub that a value of
// its version may be put back on (see Map.Refill): not one of a value
// too long for the map.
func (e *Entry) Refillable() bool {
	return e.size.Load()&(tombstoneBit|evictedBit|tooLongBit) == evictedBit
}

// Retire lets go of the value of an entry no longer in its map (a key
// that lost its value moved to another entry), for its holder to make it
// read as expired long ago by whoever still holds the entry: its value
// freed whoever keeps a string of its key, or the entry. A caller with
// readers of the entry makes this write under the same check as a merge
// (see Load).
func (e *Entry) Retire() {
	e.value.Store(nil)
	e.size.Store(evictedBit)
	e.expires.Store(math.MinInt64) // expired on any clock, one before 1970 too (found by review)
}

// Record returns the record the entry holds. Its Value belongs to the map.
// Like Load, it is for the map's own goroutine.
func (e *Entry) Record() crdt.Record {
	r := crdt.Record{Key: e.key, Time: e.Time(), Expires: e.expires.Load(), Tombstone: e.tombstone(), Evicted: e.evicted()}
	if p := e.value.Load(); p != nil {
		r.Value = unsafe.Slice(p, e.size.Load()&MaxValueLen)
	}
	return r
}

// Time returns the timestamp of the entry's record.
func (e *Entry) Time() crdt.Timestamp {
	return crdt.Timestamp{Wall: e.wall, Logical: e.logical, Node: e.node}
}

// Tombstone says the entry holds a delete.
func (e *Entry) Tombstone() bool { return e.tombstone() }

func (e *Entry) tombstone() bool { return e.size.Load()&tombstoneBit != 0 }
func (e *Entry) evicted() bool   { return e.size.Load()&evictedBit != 0 }
func (e *Entry) tooLong() bool   { return e.size.Load()&tooLongBit != 0 }
func (e *Entry) valueLen() int   { return int(e.size.Load() & MaxValueLen) }

// markTooLong says the entry, a stub, stands for a value too long here.
// Only a stub's: no reader loads a stub's value.
func (e *Entry) markTooLong() { e.size.Store(e.size.Load() | tooLongBit) }

// stubFP returns the fingerprint of the value a stub stands for, and
// false if it has none. Only a stub's: no reader loads a stub's value.
func (e *Entry) stubFP() (uint32, bool) {
	s := e.size.Load()
	return s & fpMask, s&fpBit != 0
}

// setStubFP makes fp the fingerprint of the value the stub e stands for.
func (e *Entry) setStubFP(fp uint32) { e.size.Store(e.size.Load()&^(fpBit|fpMask) | fpBit | fp) }

func (e *Entry) version() crdt.Version {
	return crdt.Version{Key: e.key, Time: e.Time(), Tombstone: e.tombstone()}
}

// hash is the entry's digest hash, given its key hash.
func (e *Entry) hash(khash uint64) uint64 { return crdt.RecordHash(khash, e.Time(), e.tombstone()) }

func (e *Entry) deadSince() (int64, bool) {
	r := e.Record()
	return r.DeadSince()
}
