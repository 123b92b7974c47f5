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
	// Lookup returns the record held for key, whatever its state.
	Lookup(key string) (crdt.Record, bool)
	// Tombstone returns the answer to a record of key that Apply rejected
	// as below its bucket's watermark: a tombstone just above the
	// watermark, which the peer that sent the record merges (package lww,
	// rule 3).
	Tombstone(key string) crdt.Record
	// MarkSynced records that an exchange which started at the given
	// physical time completed (package lww, rule 2).
	MarkSynced(at int64)
}

// A ClockStepper is a Replica that keeps times of the node's clock (its
// sync mark, MarkSynced's). The node calls StepBack when the time it is
// given steps back by d (a second or more: the steps it moves its own
// timers for), so that the replica moves them back as well: a sync mark
// left where it was is d ahead of the clock, and a replica collecting
// below min(now, mark) less its horizon takes itself for synced at now
// until the clock is back up to it (package lww, rule 2).
type ClockStepper interface {
	StepBack(d int64)
}
