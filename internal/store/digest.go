package store

import (
	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// The store presents its shards to the sync protocol as one replica over
// its whole digest: the levels above the shards are sums of the shard
// roots (node counts and hash sums add up), the level of the shards holds
// their roots, and the levels below are the shards' own trees. The methods
// here and Apply, Lookup, Tombstone and MarkSynced implement
// transport.Replica.

// DigestBits returns the leaf-index width of the store's digest.
func (s *Store) DigestBits() int { return s.digestBits }

// shardLevel is the digest level whose nodes are the shard roots.
func (s *Store) shardLevel() int { return s.shardBits / crdt.FanoutBits }

// node returns the digest node at a level and index of the whole store.
func (s *Store) node(level int, i uint32) crdt.TreeNode {
	if top := s.shardLevel(); level >= top {
		local := level - top
		sh := &s.shards[i>>(crdt.FanoutBits*local)]
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return sh.m.Tree().Level(local)[i&(1<<(crdt.FanoutBits*local)-1)]
	}
	// Above the shards: add up the shard roots below node i.
	span := uint32(1) << (crdt.FanoutBits * (s.shardLevel() - level))
	var sum crdt.TreeNode
	for sh := i * span; sh < (i+1)*span; sh++ {
		n := s.node(s.shardLevel(), sh)
		sum.Count += n.Count
		sum.Sum += n.Sum
	}
	return sum
}

// AppendHashes appends node hashes at a level: the root's alone at level
// 0, otherwise the crdt.Fanout children of each parent.
func (s *Store) AppendHashes(dst []uint64, level int, parents []uint32) []uint64 {
	if level == 0 {
		return append(dst, s.node(0, 0).Hash())
	}
	for _, p := range parents {
		for c := range uint32(crdt.Fanout) {
			dst = append(dst, s.node(level, p*crdt.Fanout+c).Hash())
		}
	}
	return dst
}

// leafShard splits a leaf of the whole digest into its shard and the
// shard's own leaf.
func (s *Store) leafShard(leaf uint32) (*shard, uint32) {
	local := s.digestBits - s.shardBits
	return &s.shards[leaf>>local], leaf & (1<<local - 1)
}

// AppendVersions appends the versions held in a digest leaf.
func (s *Store) AppendVersions(dst []crdt.Version, leaf uint32) []crdt.Version {
	sh, local := s.leafShard(leaf)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m.AppendVersions(dst, local)
}

// AppendRecords appends the records held in a digest leaf. Values are
// never modified in place, so they are safe to encode without the lock.
func (s *Store) AppendRecords(dst []crdt.Record, leaf uint32) []crdt.Record {
	sh, local := s.leafShard(leaf)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m.AppendRecords(dst, local)
}

// MarkSynced records that an anti-entropy exchange that started at the
// given time completed (package lww, rule 2).
func (s *Store) MarkSynced(at int64) {
	s.everSynced.Store(true)
	s.markSynced(at)
}

// StepBack moves every shard's sync mark back by d: the node's clock
// stepped back that far (transport.ClockStepper, lww.Map.StepBack).
func (s *Store) StepBack(d int64) { s.eachMap(func(m *lww.Map) { m.StepBack(d) }) }

// markSynced moves every shard's sync mark to at.
func (s *Store) markSynced(at int64) { s.eachMap(func(m *lww.Map) { m.MarkSynced(at) }) }

// eachMap calls f with each shard's map, under the shard's lock.
func (s *Store) eachMap(f func(*lww.Map)) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		f(sh.m)
		sh.mu.Unlock()
	}
}
