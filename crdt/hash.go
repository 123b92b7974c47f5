package crdt

import "math/bits"

// The hash functions here must give the same answer on every replica, in
// every process, forever: they place keys in digest buckets and sum record
// identities. They are fixed, unseeded 64-bit hashes built from 128-bit
// multiply-fold steps: good dispersion, and no input block can zero a
// product, but they are neither keyed nor collision resistant. Someone who
// chooses keys can make many share a digest bucket, which costs
// anti-entropy time linear in that bucket's size, and can make keys share
// a whole HashKey with no search (a fold is symmetric in its factors, and
// both of a 16-byte step's are the key's bytes and known constants: found
// by review). Anti-entropy, which matches versions by key hash, repairs
// such keys all the same (package transport); making the hash stronger
// would move every key's bucket, a format change for snapshots and for
// peers of every release before. Local structures that chosen keys could
// slow down quadratically (a member's index of resident values) use a
// seeded hash of their own.

const (
	k0 = 0xa0761d6478bd642f
	k1 = 0xe7037ed1a0b428db
	k2 = 0x8ebc6af09c88c6e3
	k3 = 0x589965cc75374cc3
)

// fold multiplies a and b into 128 bits and folds the halves together.
func fold(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// mixIn is fold for inputs drawn from a key. A zero factor would make the
// product zero whatever the other holds, so that every key with one chosen
// 8-byte block hashed alike (keys starting with the bytes of k1, say); a
// zero factor is replaced by a constant. For non-zero inputs it is fold, so
// the hash of every key without such a block is what it always was: the
// digest buckets of existing replicas and snapshots do not move.
func mixIn(a, b uint64) uint64 {
	if a == 0 {
		a = k3
	}
	if b == 0 {
		b = k0
	}
	return fold(a, b)
}

// mixTag is fold with a zero factor replaced, as mixIn does, and the
// product then set apart by a tag: mixIn's substitute is an input too
// (a node id of k2 hashed as one of k0^k2), so a peer choosing two
// versions could make two hash alike at no cost (found by review). For
// non-zero inputs it is fold: record hashes of every version without such
// a field are what they always were. That is no defence against a peer
// that searches: fold is symmetric and the hash unkeyed, so a peer with
// the key can find, in about 2^31 folds, a version that hashes as a given
// one and that anti-entropy then never tells apart (found by review; a
// keyed or wider record digest would close it, at a format change). Two
// versions a peer chooses both of cost it nothing: RecordHash's second
// step folds the first step's product with the node id, and fold is
// symmetric, so versions (W1, N1) and (W2, N2) of one key whose node ids
// are each the other's first-step product (xored with k2) hash alike
// (found by review; TestRecordHashCollidesForTwoChosenVersions). That is no
// more than such a peer can do anyway, by sending one timestamp with two
// values: values are in no digest.
func mixTag(a, b uint64) uint64 {
	switch {
	case a == 0 && b == 0:
		return zeroTag
	case a == 0:
		return fold(k3, b) ^ zeroTag
	case b == 0:
		return fold(a, k0) ^ zeroTag>>1
	}
	return fold(a, b)
}

// zeroTag sets the products of mixTag's substitutes apart.
const zeroTag = 0x9e3779b97f4a7c15

// le64 reads eight bytes of s at i, little-endian.
func le64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// HashKey returns the 64-bit hash of a key. Its top bits choose the key's
// digest bucket (and, in the root package, its shard).
func HashKey(key string) uint64 {
	h := k0 ^ uint64(len(key))*k1
	i := 0
	for ; i+16 <= len(key); i += 16 {
		h = mixIn(le64(key, i)^k1, le64(key, i+8)^h)
	}
	if i+8 <= len(key) {
		h = mixIn(le64(key, i)^k2, h^k1)
		i += 8
	}
	var tail uint64
	for j := len(key) - 1; j >= i; j-- {
		tail = tail<<8 | uint64(key[j])
	}
	return fold(mixIn(tail^k3, h^k2), k0^uint64(len(key)))
}

// RecordHash returns the digest hash of a record with the given key hash,
// timestamp and tombstone flag.
func RecordHash(keyHash uint64, t Timestamp, tombstone bool) uint64 {
	var flags uint64 = uint64(t.Logical) << 1
	if tombstone {
		flags |= 1
	}
	// mixTag, not fold: a node id of k2 made every version of a key
	// stamped with it hash alike whatever its time or tombstone, and a wall
	// time of k1 made the hash blind to the node, so anti-entropy never
	// repaired such differences (a peer chooses both; found by review).
	h := mixTag(keyHash^k0, uint64(t.Wall)^k1)
	h = mixTag(h^flags, uint64(t.Node)^k2)
	return mixTag(h^k3, keyHash^k1)
}
