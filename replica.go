package bcache

import (
	"github.com/bcache-go/bcache/crdt"
)

// replica presents the shards to the sync protocol as one transport.Replica
// over a 16-bit digest: levels 0 and 1 of the digest are sums of the shard
// roots (node counts and hash sums add up), level 2 holds the shard roots,
// and the levels below are the shards' own trees.
type replica struct{ c *Cache }

func (r replica) DigestBits() int { return digestBits }

// node returns the digest node at a level and index of the whole cache.
func (r replica) node(level int, i uint32) crdt.Node {
	if level >= shardBits/4 {
		local := level - shardBits/4
		s := &r.c.shards[i>>(4*local)]
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.m.Tree().Level(local)[i&(1<<(4*local)-1)]
	}
	// Above the shards: add up the shard roots below node i.
	span := uint32(1) << (4 * (shardBits/4 - level))
	var sum crdt.Node
	for s := i * span; s < (i+1)*span; s++ {
		n := r.node(shardBits/4, s)
		sum.Count += n.Count
		sum.Sum += n.Sum
	}
	return sum
}

func (r replica) AppendHashes(dst []uint64, level int, parents []uint32) []uint64 {
	if level == 0 {
		return append(dst, r.node(0, 0).Hash())
	}
	for _, p := range parents {
		for c := range uint32(crdt.Fanout) {
			dst = append(dst, r.node(level, p*crdt.Fanout+c).Hash())
		}
	}
	return dst
}

// leafShard splits a leaf of the whole digest into its shard and the
// shard's own leaf.
func leafShard(leaf uint32) (int, uint32) {
	return int(leaf >> (digestBits - shardBits)), leaf & (1<<(digestBits-shardBits) - 1)
}

func (r replica) AppendVersions(dst []crdt.Version, leaf uint32) []crdt.Version {
	si, local := leafShard(leaf)
	s := &r.c.shards[si]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.AppendVersions(dst, local)
}

func (r replica) AppendRecords(dst []crdt.Record, leaf uint32) []crdt.Record {
	si, local := leafShard(leaf)
	s := &r.c.shards[si]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.AppendRecords(dst, local) // values are never modified in place: safe to encode unlocked
}

func (r replica) Apply(rec crdt.Record, delta bool, now int64) crdt.Outcome {
	return r.c.apply(rec, delta, now)
}

func (r replica) Forget(v crdt.Version) (crdt.Record, bool) { return r.c.forget(v) }

func (r replica) MarkSynced(at int64) {
	for i := range r.c.shards {
		s := &r.c.shards[i]
		s.mu.Lock()
		s.m.MarkSynced(at)
		s.mu.Unlock()
	}
}
