package wire

import (
	"hash/maphash"
	"sync"
)

// An Interner lets the codecs of many members in one process share the
// keys and values they decode: a key or value equal to one decoded before
// is the earlier one, not a new copy. Decoded records are never modified
// (the replicas keep their values as they are), so sharing them is safe.
// It is for simulations (proptest's scale simulator runs a thousand
// members, each holding every record, in one process); a member of a real
// cluster has no one to share with. It holds everything it has seen until
// it is dropped. Safe for concurrent use: it is split in shards by the
// hash of what is looked up, each with a lock of its own, so that the
// simulator's workers rarely wait for each other.
type Interner struct {
	seed   maphash.Seed
	shards [internShards]internShard
}

const internShards = 64

type internShard struct {
	mu   sync.Mutex
	strs map[string]string
	bins map[string][]byte
	_    [64]byte // a shard's lock on a cache line of its own
}

// NewInterner returns an empty Interner.
func NewInterner() *Interner {
	in := &Interner{seed: maphash.MakeSeed()}
	for i := range in.shards {
		in.shards[i].strs = map[string]string{}
		in.shards[i].bins = map[string][]byte{}
	}
	return in
}

func (in *Interner) shard(b []byte) *internShard {
	return &in.shards[maphash.Bytes(in.seed, b)%internShards]
}

func (in *Interner) str(b []byte) string {
	sh := in.shard(b)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s, ok := sh.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	sh.strs[s] = s
	return s
}

func (in *Interner) bin(b []byte) []byte {
	sh := in.shard(b)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if v, ok := sh.bins[string(b)]; ok {
		return v
	}
	v := append(make([]byte, 0, len(b)), b...)
	sh.bins[string(v)] = v
	return v
}

// Intern makes c share what it decodes through in (nil: copy each key and
// value, the default).
func (c *Codec) Intern(in *Interner) { c.intern = in }
