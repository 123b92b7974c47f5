// Package bcache is an in-memory cache replicated to every process of a
// service, with convergence that is checked by property tests.
//
// Each process runs a [Cache] member. A write (Set, Delete) is applied
// locally at once and shipped to every other member in batched deltas;
// periodic anti-entropy compares Merkle digests with one peer at a time and
// repairs whatever the deltas missed. Reads (Get) are local and take no
// lock. Membership, failure detection and encryption come from
// hashicorp/memberlist (package transport/gossip).
//
// # Guarantees
//
//   - Convergence: once the network heals and writes stop, every live member
//     holds the same records, whatever was lost, duplicated or reordered
//     meanwhile (package proptest checks it under all those faults).
//   - Last writer wins by write time, a hybrid logical clock timestamp,
//     never by expiry: a later Set with a shorter TTL beats an earlier Set
//     with a longer one everywhere. Two different writes never tie.
//   - Deletes are tombstones that beat every older write on every member,
//     also members that never held the key or evicted it. Tombstones, and
//     values past their TTL, are collected within seconds once every member
//     is known to hold them, and after TombstoneHorizon at the latest; the
//     rules that keep collection safe (package lww) mean a deleted key does
//     not come back, also when a member returns after a longer absence.
//   - Eviction (MaxKeys, MaxBytes) is local: it frees a value on this member
//     only. The key and its version stay, so the member returns the newest
//     value or a miss, never an older version, and anti-entropy does not
//     ship the key back.
//   - A timestamp more than MaxClockDrift ahead of local time is refused, so
//     a member with a bad clock cannot pin keys.
//   - With a SecretKey all traffic is encrypted and authenticated; a
//     process without the key can neither join nor inject writes.
//
// # Beyond Set and Get
//
//   - Fills: GetWithFiller runs one fill per key at a time on this
//     member; GetOrFill, with Config.Filler, one in the cluster (the key's
//     owner fills, the others ask it).
//   - Readiness: WaitSynced returns once this member has completed its
//     first exchange with a peer; Status says whom it reaches, when it
//     last synced with each, and why a peer cannot be joined
//     (Status.Joining).
//   - Read-your-writes across members: SetWithToken and DeleteWithToken
//     return a Token the caller carries to another member, whose GetAfter
//     returns that write or a newer one (pulling it from the peers if its
//     delta has not come), or the context's error, never older data.
//   - A change feed: Subscribe delivers the changes applied here (set here
//     or by a peer, deleted, expired, evicted, dropped), each once, in the
//     order applied, with an explicit overflow event for a reader that
//     falls behind.
//
// # Snapshots
//
// With Config.SnapshotPath a member keeps its records, and the GC
// watermarks that make collection safe, in a file that it rewrites every
// SnapshotInterval and at Close, and New restores it from that file: an
// edge member that restarts while its peers are out of reach serves what
// it held. Restoring is safe however old the file is. A member given
// peers to join then behaves as one back from an absence: it collects
// nothing until it has synced with a peer, and its old records cannot
// bring back a delete the cluster collected meanwhile. (One given no
// peers, one whose peers, looked up, are none but itself, and its
// cluster's founder, see Status.Founder, collect before a sync what has
// been dead for the horizon, or past MaxDeadRecords: see "A member
// alone" in the README.) Restored records pass the clock-drift check and
// move the member's clock past them, so later writes win over them. A
// damaged file makes New fail with ErrSnapshot; nothing of it is restored
// (with OnDamage DamageReset, it is moved aside and the member starts
// empty; the 3 newest sets of files moved aside are kept). A file that
// cannot be read is read again (New may pause 2.7 s); then the device's
// EIO is damage, and any
// other I/O error fails New whatever the policy, moving nothing aside.
//
// Between snapshots, Config.Sync keeps a write log beside the file:
// SyncWrite makes every write durable before Set or Delete returns
// (concurrent writers share each sync), SyncInterval within SyncEvery.
// New replays the log after the snapshot, through the same checks; a torn
// end, left by a crash in the middle of a write, is ignored, and any other
// damage fails New with ErrWriteLog. Each snapshot empties the log.
//
// # Limits
//
// Expiry is absolute time: members agree on it up to their clock error.
// Every key ever written costs a small record (its key and version) on
// every member until it is deleted or expires and is collected, also when
// its value was evicted: MaxKeys bounds values, not keys. After a partition
// or an absence longer than TombstoneHorizon, a value older than the
// horizon that only one side holds may be dropped (a miss, reported through
// Config.OnDrop), never resurrected; so may a write made during a
// separation in a digest bucket where the other side collected a dead
// record, or made by a member the others had not seen yet (one that joins
// a side of a partition, or writes before its first join completes) — see
// Guarantees in the README.
package bcache
