// Package lww is the last-writer-wins element map at the core of bcache: one
// [crdt.Record] per key, merged by timestamp, with tombstones for deletes, an
// absolute expiry for TTLs, local eviction of values, garbage collection of
// dead records, and a Merkle digest kept up to date on every change.
//
// A [Map] is pure and not safe for concurrent use: it does no I/O, starts no
// goroutines and reads no clock (time comes in as an argument). The root
// package holds the locks. Its one exception is its [Finder], through
// which other goroutines look keys up in its table while it works, with
// no lock.
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
// replica that receives one treats it as evicted too (a read is a miss;
// bcache's Cache then asks its peers for the value of that version, and
// Map.Refill puts it back).
//
// # Garbage collection and the rules that keep it safe
//
// A tombstone, or a value past its expiry, is dead. Dead records are
// collected: after a horizon H in any case, and earlier once the cluster is
// known to hold them. Collecting is what makes resurrection possible: once
// the tombstone for k is gone, an older write to k arriving from a replica
// that missed the delete (one that was away, on the other side of a
// partition, or a delta replayed late) would look new. These rules prevent
// that.
//
//  1. Watermark guard. Each leaf (bucket) of the digest has a watermark: the
//     greatest timestamp of any record collected from that bucket, with the
//     greatest node id (every node's timestamp at that wall time and
//     logical counter is at or below it, so that the answer of rule 3, above
//     it, deletes nothing a replica takes as above it). A record
//     for a key the map does not hold is rejected when its timestamp is at
//     or below its bucket's watermark. A map therefore never again holds a
//     record older than one it collected for the same key: deleted keys do
//     not come back through late deltas, replays or stale replicas, whatever
//     the network does. A rejection is reported ([crdt.Rejected]), not applied.
//
//  2. Collect only what the cluster has surely seen. Without more
//     knowledge, a map collects only records dead since before
//     min(now, synced) - H, where synced is the start of the last
//     anti-entropy exchange that completed ([Map.MarkSynced]). A map that
//     has never completed one collects nothing, so its watermarks stay
//     empty and a fresh replica accepts every live record its peers ship. A
//     replica that has been away keeps its own offline deletes until it has
//     caught up, so it cannot reject writes the cluster made while it was
//     gone.
//
//  3. Below the watermark, the replica that collected is right. A rejected
//     record is answered with a tombstone for its key written just above
//     the watermark by no replica ([Map.Tombstone]); the sender merges it
//     like any record, and so loses every version of the key at or below
//     the watermark, as the rejecting replica did when it collected. This
//     is how a replica that returns after an absence loses what the cluster
//     deleted and collected meanwhile, and how a late delta or a stale
//     snapshot is put right where it came from. Nothing is forgotten
//     without a trace, nothing bounces: the answer is a write, newer than
//     what it replaces, that travels and is collected like any other. Its
//     writes newer than the peers' watermarks survive; a live value a
//     tombstone replaces is reported by the caller.
//
//  4. Watermarks stay in the past. A value is dead from its expiry but
//     never before its write time, so collection raises a watermark only to
//     the write time of a record dead now, whatever the record's fields say
//     (a wrapped TTL, a peer's expiry of 1 ns on a record stamped in the
//     future); rule 2 keeps it below now - H, and rule 6 below the stable
//     bound. A watermark restored from a snapshot is lowered to a ceiling
//     the caller gives ([Map.RaiseWatermark]). Every time sum here
//     saturates instead of wrapping.
//
//  5. Late deltas are dropped. A delta (a replica's push of its own fresh
//     write) older than H is not applied ([Map.Merge] of a delta): a
//     replica that has collected nothing yet could not tell it from a
//     deleted write. Anti-entropy, which compares versions first, carries
//     old records.
//
//  6. Early collection below the stable bound. [Map.GC] also collects,
//     at once, every record dead since before a stable bound the caller
//     gives (a tombstone written before it, a value expired before it): a
//     time below which every member of the cluster is known to hold every
//     record, which the sync protocol learns from the cuts of completed
//     exchanges (package transport), less a margin for the clocks'
//     disagreement. A value expired before the bound has expired on every
//     member's clock too, the ones behind this member's by up to the
//     margin included: collected when it had expired here alone, its
//     watermark would reject, and its answer (rule 3) delete, the copy a
//     member behind still serves (found by the property harness, which
//     moved a clock back after a collection). The argument: the
//     watermark such a collection raises is below the bound; a record
//     below the bound is, on every member that counts, already held here
//     or superseded by one held here, so this map rejects nothing a member
//     still has; and every member stamps what it writes later above its
//     cut, so above the bound. A member that joins later has written
//     nothing below it; one that restarts writes above its last cut less
//     the clocks' disagreement, which the bound's margin covers, or, its
//     clock stepped back further, above a floor of its clock it kept on
//     disk past every cut it reported (bcache: beside its snapshot; one
//     without files writes again a value of its own that an answer of
//     rule 3 from before its start would delete). The key of
//     a collected record cannot come back either: every counted member
//     holds its dead record or a newer one, and so collects it or
//     supersedes it, and an older version arriving from anywhere meets the
//     watermark. A member that vanishes without leaving keeps the bound
//     still for the sync protocol's failed timeout (bcache: H), so early
//     collection waits for it; one that leaves on purpose, until its
//     records held elsewhere have reached the collector and, if it keeps
//     its state (bcache: a snapshot under a name of its own), it has come
//     back under its name and synced (what it held alone, a write whose
//     delta was lost, is in its snapshot), or for the failed timeout. The
//     horizon of rule 2 remains for everything else.
//
//  7. A bound may collect early, at a price. [Map.CollectDead] collects
//     any dead record at once, raising its watermark like any collection,
//     for a caller that holds more dead records than it may (bcache's
//     MaxDeadRecords and MaxDeadBytes, oldest first). Nothing is
//     resurrected; but a record at or below the raised watermark (older,
//     or of another node at its very wall time and counter) that the map
//     has not received yet (in flight, or held by a member that was away)
//     is rejected, and by rule 3 lost everywhere; a value collected this
//     way that has expired here but not yet on a member whose clock is
//     behind is rejected there too, and lost before its expiry by that
//     clock (bcache takes such values last).
//
//  8. A peer's watermarks, adopted within the stable bound. A replica that
//     joins receives its peers' records, not what they collected, and
//     would accept an older write of a key whose delete they collected
//     from a replica that still holds it (back from an absence past H, or
//     an old snapshot under a new name). So a replica, once synced, may
//     raise its watermarks to a peer's ([Map.RaiseWatermark]), each at
//     most to the last timestamp below its own stable bound of rule 6
//     (bcache's store does, internal/store/marks.go): below that bound
//     every member it counts holds every record, so such a watermark
//     rejects nothing a counted member holds that this map lacks, by rule
//     6's argument, and what it rejects the peer rejects too (its
//     watermark is at or above). A peer's forged watermark reaches no
//     higher than that bound.
//
// The assumption behind rules 2 and 3 is that every record reaches every
// connected replica within H (anti-entropy runs every few seconds; H is an
// hour by default) and that physical clocks differ by less than H; rule 6
// assumes they differ by less than its margin (bcache: MaxClockSkew, 1 s).
// When they fail, the rules stay safe and give up data instead, never
// resurrecting anything: a member whose clock is behind the collector's
// by more than rule 6's margin may lose a value before its expiry by its
// own clock; after a partition or an absence longer than H, a
// record that one side holds and the other does not may be deleted on
// both (a cache miss) if it is older than H, and, once the sides have
// stopped waiting for each other (rule 6), if it was written during the
// separation in a bucket where the other side collected. Repairs ship records in ascending timestamp
// order, so a replica that collects between two repair batches has already
// received the older records of the bucket it collects in.
package lww
