package bcache

import (
	"sync"
	"sync/atomic"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// The key space is split in 256 shards by the top 8 bits of the key hash.
// Each shard is an lww.Map over its 256-leaf subtree of the 65,536-leaf
// digest, plus the index readers use. Writers hold the shard's lock;
// readers take none.
const (
	shardBits  = 8
	shardCount = 1 << shardBits
	digestBits = 16 // of the whole cache; each shard holds digestBits-shardBits
)

type shard struct {
	mu    sync.Mutex
	m     *lww.Map
	idx   index
	stats struct{ hits, misses atomic.Uint64 }
	_     [64]byte // keep neighbouring shards' hot words off one cache line
}

func shardOf(hash uint64) int { return int(hash >> (64 - shardBits)) }

// change is what applying a record did to a shard's resident values.
type change struct {
	outcome crdt.Outcome
	added   *item // newly resident item
	removed *item // item no longer resident
}

// apply merges rec (local or received) and keeps the index and the
// eviction ring in step, with the shard's lock held. rec.Value must not be
// modified afterwards.
func (s *shard) apply(rec crdt.Record, hash uint64, delta bool, now int64) change {
	o, stored := s.m.Merge(rec, delta, now)
	if o != crdt.Applied {
		return change{outcome: o}
	}
	if rec.Tombstone || rec.Evicted {
		return change{outcome: o, removed: s.unpublish(rec.Key, hash)}
	}
	it := &item{key: stored.Key, hash: hash, value: stored.Value, expires: stored.Expires}
	it.ref.Store(true) // a second chance before the first eviction sweep
	return change{outcome: o, added: it, removed: s.idx.put(it)}
}

// unpublish takes key's item, if any, out of the index.
func (s *shard) unpublish(key string, hash uint64) *item {
	return s.idx.remove(key, hash)
}

// forget drops a version a peer rejected.
func (s *shard) forget(v crdt.Version, hash uint64) (crdt.Record, *item, bool) {
	r, ok := s.m.Forget(v)
	if !ok {
		return r, nil, false
	}
	return r, s.unpublish(v.Key, hash), true
}

// evict drops it's value if it is still the resident item of its key.
func (s *shard) evict(it *item) bool {
	if s.idx.get(it.key, it.hash) != it {
		return false
	}
	s.m.Evict(it.key)
	s.idx.remove(it.key, it.hash)
	return true
}

// gc collects dead records and returns how many were expired values and the
// items that stopped being resident.
func (s *shard) gc(now int64) (expired int, removed []*item) {
	for _, v := range s.m.GC(now) {
		if !v.Tombstone {
			expired++
		}
		if it := s.unpublish(v.Key, crdt.HashKey(v.Key)); it != nil {
			removed = append(removed, it)
		}
	}
	return expired, removed
}
