package store

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/bcache-go/bcache/lww"
)

// item is a key's resident value: the shard's map entry of the key
// (lww.Config.Alloc makes the entries of records that hold a value as
// items), what readers and the eviction policy need beside it, and the
// key's bytes if they fit. One allocation per resident key of up to 16
// bytes, 96 bytes in all, where an item of its own beside the entry (the
// key, the value and its length, the expiry again) took 64 + 64 and the
// key 16 more.
//
// Readers take no lock: they find the item in the map's table (through
// its lww.Finder) and read the
// entry's value and expiry, which the map writes as atomic words, behind
// a sequence count that a writer makes odd around every merge into the
// entry (a seqlock), so that a write allocates nothing but the value's
// copy. A key that loses its value (deleted, evicted) moves to another
// entry, which takes the item's place in the table, and the item is never
// written again; a later write of the key puts a new item there.
//
// A 96-byte object spans two cache lines wherever it lies, and a read
// touches both: the entry's key header and value pointer are in the
// first, the sequence count, the policy's hash, the use word and the
// key's bytes in the second (the expiry and length in one or the other,
// as the object lies). So a read costs the table's slot and hash and two
// lines, as a 64-byte item and its separate key did; a key over 16 bytes
// costs a third.
//
// hash is the store's own hash of the key, which the eviction policy
// counts the key's reads and evictions by (evict.Entry.Hash).
type item struct {
	lww.Entry
	seq    atomic.Uint32 // odd while a writer is merging into the entry
	hash   uint32        // the key's hash for the policy (Store.policyHash)
	slot   int32         // place in the eviction policy, under its lock
	use    atomic.Uint32 // reads, for the eviction policy (evict.Touch)
	keyBuf [inlineKey]byte
}

// inlineKey is the longest key an item holds in its own bytes.
const inlineKey = 16

// newEntry is the shards' lww.Config.Alloc: an item, holding key in its
// own bytes if it fits (key need not be the store's), else key itself
// (which must be).
func newEntry(key string) (*lww.Entry, string) {
	it := &item{}
	if len(key) <= inlineKey && len(key) > 0 {
		n := copy(it.keyBuf[:], key)
		key = unsafe.String(&it.keyBuf[0], n)
	}
	return &it.Entry, key
}

// itemOf returns the item whose entry e is. e must hold a value (made by
// newEntry, see lww.Config.Alloc): the entry is the item's first field.
func itemOf(e *lww.Entry) *item { return (*item)(unsafe.Pointer(e)) }

// noBytes is where empty values point, so that they read back as empty and
// not nil.
var noBytes byte

// load returns the value and expiry as of one write. The value is shared
// and must not be modified; its capacity is its length, so that appending
// to it copies.
func (it *item) load() ([]byte, int64) {
	for spins := 0; ; spins++ {
		if s := it.seq.Load(); s&1 == 0 {
			p, n, exp := it.LoadParts()
			if it.seq.Load() == s { // p and n are one value's: make the slice
				if p == nil {
					return unsafe.Slice(&noBytes, 0), exp
				}
				return unsafe.Slice(p, n), exp
			}
		}
		if spins >= 4 {
			runtime.Gosched() // the writer may have been preempted mid-update
		}
	}
}

// retire lets go of the value of an item no longer in its map (see
// lww.Entry.Retire): a reader that still holds the item sees it expired,
// as it would see the key deleted or evicted a moment later. The item
// kept its value alive for as long as anyone kept its key's string (in
// the item's bytes: a subscriber's list of keys kept every value dropped
// since; found by review) or the item. Called with the shard's lock held,
// after the eviction policy has let go of the item (which reads its size).
func (it *item) retire() {
	it.seq.Add(1)
	it.Retire()
	it.seq.Add(1)
}

// valueLen returns the length of the value (writer side, under the lock).
func (it *item) valueLen() int {
	v, _ := it.Load()
	return len(v)
}

// Hash implements evict.Entry: the store's own seeded hash of the key.
func (it *item) Hash() uint32 { return it.hash }

// Written implements evict.Entry: the wall time of the value's write.
// Called with the shard's lock held.
func (it *item) Written() int64 { return it.Time().Wall }

// Use implements evict.Entry.
func (it *item) Use() *atomic.Uint32 { return &it.use }

// Slot implements evict.Entry.
func (it *item) Slot() int { return int(it.slot) }

// SetSlot implements evict.Entry.
func (it *item) SetSlot(i int) { it.slot = int32(i) }

// Size implements evict.Entry: the key's and value's bytes, read without
// a lock.
func (it *item) Size() int {
	_, n, _ := it.LoadParts()
	return len(it.Key()) + n
}
