// Package store is the replica a bcache member runs: every key's record,
// sharded, with a digest of the whole for anti-entropy, lock-free reads
// of the resident values, local eviction past a bound,
// collection of dead records, and the snapshot file format.
//
// A [Store] implements transport.Replica, so a transport.Node keeps it in
// sync; package bcache drives the two over memberlist, and package
// proptest drives the very same composition over a simulated network. The
// store is safe for concurrent use, but it starts no goroutine, opens no
// socket and reads no clock: time comes in as an argument, and the
// snapshot functions take an io.Writer, an io.Reader or a path.
//
// # Layout
//
// The key space is split into 1, 16 or 256 shards by the top bits of the
// key hash. Each shard is an lww.Map over its subtree of the store's
// digest, under the shard's lock, whose key table readers probe with
// atomic loads only (lww.Finder): one table a key for the writers and the
// readers, where an index of the resident values beside the map's took
// 20 bytes a key more (BenchmarkHeapPerKey: 270.9 B a key at 100,000 keys
// before, 250.5 after) and a probe and an insert more a new key. A
// resident value is an item that is its lww entry, so writing a resident
// key looks it up once, and whose value changes in place behind a
// sequence count (a seqlock built from atomics). The digest seen by the protocol is
// assembled from the shards' trees: the levels above the shards are sums
// of their roots.
//
// # Locks
//
// A shard's lock guards its map's writes. The eviction ring has
// its own lock, taken inside a shard's and never the other way round;
// eviction takes the ring's lock, picks a victim, releases it, then takes
// the victim's shard lock. No user callback runs under any of them.
package store
