package store

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/bcache-go/bcache/lww"
)

// item is a key's resident value as readers see it. Its key, hash and
// entry are fixed; its value and expiry change in place when the key is
// written again, under the shard's lock, behind a sequence count that
// readers check (a seqlock), so that a write allocates nothing but the
// value's copy. An item removed from the index (the key deleted, evicted,
// collected) is never written again; a later write of the key publishes a
// new item.
//
// Its fields are laid out to fit 64 bytes, one size class of the allocator
// and one cache line: hash is the store's own hash of the key, which the
// index probes with, and shard is the key's shard.
type item struct {
	key     string
	entry   *lww.Entry           // where the shard's map holds the record; writers only
	data    atomic.Pointer[byte] // the value's first byte
	expires atomic.Int64         // Unix ns; 0 means never
	seq     atomic.Uint32        // odd while a writer is changing the value
	size    atomic.Int32         // the value's length (at most the wire's value limit)
	hash    uint32               // the key's index hash (Store.indexHash)
	slot    int32                // place in the eviction policy, under its lock
	use     atomic.Uint32        // reads, for the eviction policy (evict.Touch)
	shard   uint8                // the key's shard
}

// noBytes is where empty values point, so that they read back as empty and
// not nil.
var noBytes byte

// newItem returns an item holding value, not yet published.
func newItem(key string, hash uint32, shard uint8, e *lww.Entry, value []byte, expires int64) *item {
	it := &item{key: key, hash: hash, shard: shard, entry: e}
	it.storeFields(value, expires)
	return it
}

// store replaces the value and expiry. The caller holds the shard's lock:
// writers never race each other, only readers.
func (it *item) store(value []byte, expires int64) {
	it.seq.Add(1) // odd: readers retry
	it.storeFields(value, expires)
	it.seq.Add(1)
}

func (it *item) storeFields(value []byte, expires int64) {
	p := unsafe.SliceData(value)
	if len(value) == 0 {
		p = &noBytes
	}
	it.data.Store(p)
	it.size.Store(int32(len(value)))
	it.expires.Store(expires)
}

// load returns the value and expiry as of one write. The value is shared
// and must not be modified; its capacity is its length, so that appending
// to it copies.
func (it *item) load() ([]byte, int64) {
	for spins := 0; ; spins++ {
		if s := it.seq.Load(); s&1 == 0 {
			p, n, exp := it.data.Load(), it.size.Load(), it.expires.Load()
			if it.seq.Load() == s {
				return unsafe.Slice(p, n), exp
			}
		}
		if spins >= 4 {
			runtime.Gosched() // the writer may have been preempted mid-update
		}
	}
}

// valueLen returns the length of the value (writer side, under the lock).
func (it *item) valueLen() int { return int(it.size.Load()) }

// Hash implements evict.Entry: the store's own seeded hash of the key.
func (it *item) Hash() uint32 { return it.hash }

// Written implements evict.Entry: the wall time of the value's write.
// Called with the shard's lock held.
func (it *item) Written() int64 { return it.entry.Time().Wall }

// Use implements evict.Entry.
func (it *item) Use() *atomic.Uint32 { return &it.use }

// Slot implements evict.Entry.
func (it *item) Slot() int { return int(it.slot) }

// SetSlot implements evict.Entry.
func (it *item) SetSlot(i int) { it.slot = int32(i) }
