// Package lww is the last-writer-wins element map at the core of bcache: one
// [crdt.Record] per key, merged by timestamp, with tombstones for deletes, an
// absolute expiry for TTLs, local eviction of values, garbage collection of
// dead records, and a Merkle digest kept up to date on every change.
//
// A [Map] is pure and not safe for concurrent use: it does no I/O, starts no
// goroutines and reads no clock (time comes in as an argument). The root
// package holds the locks.
//
// # Merge
//
// [Map.Merge] keeps, for each key, the record with the greatest timestamp.
// That is commutative, associative and idempotent, so replicas that have
// applied the same set of records hold the same state whatever the order,
// duplication or grouping of deliveries. Expiry never takes part in the
// comparison: a later write with a shorter TTL beats an earlier write with a
// longer one.
//
// # Eviction
//
// [Map.Evict] drops a record's value to free memory but keeps its key and
// version. The evicted record still shadows every older version, so the node
// never accepts or serves a stale write for that key, and it still counts in
// the digest, so anti-entropy does not see a difference and does not ship
// the key back. An evicted record travels between replicas as a stub; a
// replica that receives one treats it as evicted too (a read is a miss).
//
// # Garbage collection and the rule that keeps it safe
//
// A tombstone, or a value past its expiry, is dead. Dead records are kept
// for a horizon H and then collected. Collecting is what makes resurrection
// possible: once the tombstone for k is gone, an older write to k arriving
// from a replica that missed the delete (one that was away, on the other
// side of a partition, or a delta replayed late) would look new. Three rules
// prevent that.
//
//  1. Watermark guard. Each leaf (bucket) of the digest has a watermark: the
//     greatest wall time of any record collected from that bucket. A record
//     for a key the map does not hold is rejected when its wall time is at or
//     below its bucket's watermark. A map therefore never again holds a
//     record older than one it collected for the same key: deleted keys do
//     not come back through late deltas, replays or stale replicas, whatever
//     the network does. A rejection is reported ([crdt.Rejected]), not applied.
//
//  2. Collect only what the cluster has surely seen. A map collects only
//     records dead since before min(now, synced) - H, where synced is the
//     start of the last anti-entropy exchange that completed
//     ([Map.MarkSynced]). A map that has never completed one collects
//     nothing, so its watermarks stay empty and a fresh replica accepts
//     every live record its peers ship. A replica that has been away keeps
//     its own offline deletes until it has caught up, so it cannot reject
//     writes the cluster made while it was gone.
//
//  3. Rejoin: below the watermark, the replica that collected is right. When
//     a peer rejects a record, the sender drops its copy ([Map.Forget]) and
//     raises its own bucket watermark to that record's wall time, so the
//     record cannot bounce back to it from a third replica. This is how a
//     replica that returns after an absence longer than H loses what the
//     cluster deleted and collected meanwhile. Its writes newer than the
//     peers' watermarks survive; older ones the cluster no longer holds are
//     dropped, and the caller reports them.
//
//  4. Watermarks stay in the past. Collection raises a watermark to the
//     write time of a record dead for a horizon, and a value is dead from
//     its expiry but never before its write time, so collection cannot
//     raise one above now - H, whatever a record's fields say (a wrapped
//     TTL, a peer's expiry of 1 ns on a record stamped in the future).
//     [Map.Forget] and [Map.RaiseWatermark] take input from outside (a
//     peer's rejection, a snapshot file) and never raise one above
//     now - H + MaxClockDrift: no honest peer rejects a newer record, and a
//     snapshot from a clock far ahead is brought down to that ceiling. A
//     watermark in the future would make the map reject fresh writes of
//     every key in its bucket, and their writers forget them. Every time
//     sum here saturates instead of wrapping.
//
//  5. Late deltas are dropped. A delta (a replica's push of its own fresh
//     write) older than H is not applied ([Map.Merge] of a delta): a replica that
//     has collected nothing yet could not tell it from a deleted write.
//     Anti-entropy, which compares versions first, carries old records.
//
// The assumption behind rules 2 and 3 is that every record reaches every
// connected replica within H (anti-entropy runs every few seconds; H is an
// hour by default) and that physical clocks differ by less than H. When it
// fails, the rules stay safe and give up data instead: after a partition
// longer than H, or an absence without a completed exchange, a record older
// than H that one side holds and the other does not may be dropped on both
// (a cache miss), never resurrected. Repairs ship records in ascending
// timestamp order, so a replica that collects between two repair batches
// has already received the older records of the bucket it collects in.
package lww
