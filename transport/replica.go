package transport

import "github.com/bcache-go/bcache/crdt"

// Replica is the state a [Node] keeps in sync. A Node calls it from the
// goroutine that drives the Node, one call at a time; an implementation
// shared with other goroutines (the root package's sharded cache) does its
// own locking. No method may block on the network.
type Replica interface {
	// DigestBits returns the leaf-index width of the replica's digest tree.
	// Every replica of a cluster must use the same width.
	DigestBits() int
	// AppendHashes appends node hashes (crdt.TreeNode.Hash) at the given level:
	// the root's alone at level 0, otherwise the crdt.Fanout children of
	// each parent (a node index at level-1), in order.
	AppendHashes(dst []uint64, level int, parents []uint32) []uint64
	// AppendVersions appends the versions held in a leaf, in any order.
	AppendVersions(dst []crdt.Version, leaf uint32) []crdt.Version
	// AppendRecords appends the records held in a leaf. The Node only reads
	// their values, and encodes them before its next call to the replica;
	// they may be shared with the replica.
	AppendRecords(dst []crdt.Record, leaf uint32) []crdt.Record
	// Apply merges a record received from a peer, which arrived as a delta
	// or as an anti-entropy repair, and says what it did. The replica owns
	// r.Value afterwards. Its clock has already been moved past r.Time.
	Apply(r crdt.Record, delta bool, now int64) crdt.Outcome
	// Forget drops the record for v.Key if it is exactly version v, because
	// a peer rejected it (package lww, rule 3). It returns the record it
	// dropped, and false if it held no such version or refused: a version
	// too new for any honest peer to have rejected at now is kept.
	Forget(v crdt.Version, now int64) (crdt.Record, bool)
	// MarkSynced records that an exchange which started at the given
	// physical time completed (package lww, rule 2).
	MarkSynced(at int64)
}
