// Package crdt holds the value types every replica of bcache speaks and the
// clock that orders them.
//
// A write is a [Record]: a key, a value, a hybrid logical clock [Timestamp],
// a tombstone flag for deletes and an absolute expiry for TTLs. Timestamps
// are totally ordered (wall nanoseconds, then a logical counter, then the id
// of the node incarnation that issued them), so two different writes never
// tie and "the record with the greater timestamp wins" is a well-defined,
// commutative, associative and idempotent merge.
//
// [HLC] issues timestamps. It reads physical time through an injected
// source (use [ManualTime] in tests), never goes backwards, and refuses to
// follow a remote timestamp that is further ahead of local physical time
// than its maximum drift, so one node with a bad clock cannot pin keys.
//
// [Tree] is the fixed-shape Merkle digest replicas compare during
// anti-entropy: 2^bits leaves addressed by the top bits of a key's hash,
// each leaf holding a count and a wrapping sum of per-record hashes, with
// fan-out 16 above the leaves. Sums are additive, so every insert, replace
// and removal updates one path from leaf to root in O(bits/4) steps.
//
// The package is pure: it starts no goroutines, does no I/O and never reads
// the wall clock itself.
package crdt
