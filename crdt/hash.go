package crdt

import "math/bits"

// The hash functions here must give the same answer on every replica, in
// every process, forever: they place keys in digest buckets and sum record
// identities. They are fixed, unseeded 64-bit hashes built from 128-bit
// multiply-fold steps; good dispersion, not resistance to chosen keys.

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
		h = fold(le64(key, i)^k1, le64(key, i+8)^h)
	}
	if i+8 <= len(key) {
		h = fold(le64(key, i)^k2, h^k1)
		i += 8
	}
	var tail uint64
	for j := len(key) - 1; j >= i; j-- {
		tail = tail<<8 | uint64(key[j])
	}
	return fold(fold(tail^k3, h^k2), k0^uint64(len(key)))
}

// RecordHash returns the digest hash of a record with the given key hash,
// timestamp and tombstone flag.
func RecordHash(keyHash uint64, t Timestamp, tombstone bool) uint64 {
	var flags uint64 = uint64(t.Logical) << 1
	if tombstone {
		flags |= 1
	}
	h := fold(keyHash^k0, uint64(t.Wall)^k1)
	h = fold(h^flags, uint64(t.Node)^k2)
	return fold(h^k3, keyHash^k1)
}
