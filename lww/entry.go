package lww

import (
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
type Entry struct {
	key     string
	value   *byte // the value's first byte; nil for none
	wall    int64
	node    crdt.NodeID
	expires int64
	next    *Entry // next entry in the same digest bucket; removed once unlinked
	logical uint32
	size    uint32 // the value's length, with tombstoneBit and evictedBit
}

const (
	tombstoneBit = 1 << 31
	evictedBit   = 1 << 30
	// MaxValueLen is the longest value a map holds (1 GiB less a byte):
	// Merge keeps a longer one's version only, as an evicted stub.
	MaxValueLen = evictedBit - 1
)

// removed marks an Entry that is no longer in its map.
var removed = new(Entry)

func newEntry(r *crdt.Record, next *Entry) *Entry {
	e := &Entry{key: r.Key, next: next}
	e.set(r)
	return e
}

// set stores r's fields but its key.
func (e *Entry) set(r *crdt.Record) {
	e.value, e.size = unsafe.SliceData(r.Value), uint32(len(r.Value))
	e.wall, e.logical, e.node = r.Time.Wall, r.Time.Logical, r.Time.Node
	e.expires = r.Expires
	if r.Tombstone {
		e.size |= tombstoneBit
	}
	if r.Evicted {
		e.size |= evictedBit
	}
}

// Record returns the record the entry holds. Its Value belongs to the map.
func (e *Entry) Record() crdt.Record {
	r := crdt.Record{Key: e.key, Time: e.Time(), Expires: e.expires, Tombstone: e.tombstone(), Evicted: e.evicted()}
	if e.value != nil {
		r.Value = unsafe.Slice(e.value, e.size&MaxValueLen)
	}
	return r
}

// Time returns the timestamp of the entry's record.
func (e *Entry) Time() crdt.Timestamp {
	return crdt.Timestamp{Wall: e.wall, Logical: e.logical, Node: e.node}
}

func (e *Entry) tombstone() bool { return e.size&tombstoneBit != 0 }
func (e *Entry) evicted() bool   { return e.size&evictedBit != 0 }
func (e *Entry) valueLen() int   { return int(e.size & MaxValueLen) }

func (e *Entry) version() crdt.Version {
	return crdt.Version{Key: e.key, Time: e.Time(), Tombstone: e.tombstone()}
}

// hash is the entry's digest hash, given its key hash.
func (e *Entry) hash(khash uint64) uint64 { return crdt.RecordHash(khash, e.Time(), e.tombstone()) }

func (e *Entry) deadSince() (int64, bool) {
	r := e.Record()
	return r.DeadSince()
}
