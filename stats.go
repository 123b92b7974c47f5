package bcache

import (
	"sync/atomic"

	"github.com/bcache-go/bcache/transport/gossip"
)

type counters struct {
	fills, fillErrors, fillsSuperseded           atomic.Uint64
	restored, restoreDrifted, restoreLowered     atomic.Uint64
	snapshots, snapshotErrors, logSnapshots      atomic.Uint64
	replayed, logErrors, damageResets            atomic.Uint64
	floorErrors                                  atomic.Uint64
	fillsForwarded, fillFallbacks, fillsForPeers atomic.Uint64
	fillAnswersBad, callRequestsBad              atomic.Uint64
	pulled, pulledDrifted, pulledRejected        atomic.Uint64
	stubAsks, stubAsksDropped                    atomic.Uint64
	pulls                                        atomic.Uint64 // rounds of asks GetAfter made (tests)
	pullsEscalated                               atomic.Uint64 // first rounds GetAfter widened to every peer (tests)
}

// Stats are a member's counters since New, and what it holds now. All
// counts only grow, except Keys, Bytes, Records, Tombstones, Evicted and
// Expired (what is held now), and Replication's StreamBytes and
// ReadBuffer (gauges).
type Stats struct {
	// Hits and Misses count local reads (Get, and the lookups of
	// GetWithFiller, GetOrFill and GetAfter) that found a live value and
	// those that did not.
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	// Keys and Bytes are the values held now and their key and value bytes.
	Keys  int   `json:"keys"`
	Bytes int64 `json:"bytes"`
	// Records, Tombstones and Evicted count the records held now: of every
	// kind (each key ever written and not yet collected), deletes, and
	// versions whose value was evicted or was over MaxValueSize. Expired
	// counts the records past their TTL that the last collection kept:
	// values, and versions held without their value (counted in Evicted
	// too), all dead records that MaxDeadRecords bounds.
	Records    int `json:"records"`
	Tombstones int `json:"tombstones"`
	Evicted    int `json:"evicted"`
	Expired    int `json:"expired"`
	// DeadKeyBytes is the bytes of the keys of the dead records the last
	// collection kept, dead at its time (the expired values, and the
	// deletes not stamped ahead of this member's clock): what
	// MaxDeadBytes bounds.
	DeadKeyBytes int64 `json:"dead_key_bytes"`
	// Evictions counts values dropped locally by the MaxKeys/MaxBytes
	// bound; Expirations records past their TTL that were collected
	// (values, and versions held without theirs);
	// Oversized records received or restored with a value over
	// MaxValueSize (or, with its key, over MaxBytes), kept without it;
	// Restamped local writes stamped again as they were applied because a
	// session's cut, or the watermark of their key's bucket (a delete of
	// another key collected under MaxDeadRecords), had passed their stamp
	// (a writer descheduled between its clock and the store; see
	// Guarantees in the README), and values of this process's a peer's
	// answer from before its start would have deleted (a member without
	// files restarted with its clock stepped back: see "A restart with
	// the clock stepped back" in the README).
	Evictions   uint64 `json:"evictions"`
	Expirations uint64 `json:"expirations"`
	Oversized   uint64 `json:"oversized"`
	Restamped   uint64 `json:"restamped"`
	// CollectedAtHorizon counts dead records (deletes, and values past
	// their expiry) collected once dead for the horizon
	// (Config.TombstoneHorizon); CollectedEarly those collected within seconds
	// because every member was known to hold them; CollectedByBound those
	// collected, at a price, because the member held more than
	// MaxDeadRecords, or more than MaxDeadBytes bytes of their keys (see
	// Config). Their sum is every dead record
	// collected here in this process.
	CollectedAtHorizon uint64 `json:"collected_at_horizon"`
	CollectedEarly     uint64 `json:"collected_early"`
	CollectedByBound   uint64 `json:"collected_by_bound"`
	// WatermarksAdopted counts the watermarks of this member's digest
	// buckets that a peer's raised (asked for once synced: see Guarantees
	// in the README, "A member that joins"), once per raise.
	WatermarksAdopted uint64 `json:"watermarks_adopted"`
	// Fills counts filler calls run here, FillErrors those that ended in
	// an error: the filler's own or its panic, FillTimeout or Close giving
	// up on it, or its value refused (ErrValueTooLarge, say).
	// FillsForwarded counts GetOrFill's requests to a key's owner, and
	// FillsForPeers the owners' fills asked by peers (run here, shared
	// with any fill of the key under way; a request answered with the
	// value held is none); FillAnswersBad the answers to
	// this member's requests that were none of an answer's forms: owners'
	// to fills (taken as no answer: the member asks the next owner or
	// fills itself), peers' to GetAfter's pulls (dropped) and to the ask
	// for their watermarks (the member asks another);
	// RequestsBad the peers' requests this member could not read (empty,
	// of an unknown kind, a fill of a key over MaxKeySize, or a pull of
	// one over 64 KiB: answered as holding nothing). FillFallbacks counts the fills run here after an
	// owner was asked and did not answer, or answered that it held
	// nothing (it has no Filler, or its fill was not stored), unless the
	// value came meanwhile (then none runs).
	Fills uint64 `json:"fills"`
	// FillsSuperseded counts fills whose value was not stored: the key
	// was written or deleted since the filler began, or a delete of its
	// digest bucket was collected since (see GetWithFiller).
	FillsSuperseded uint64 `json:"fills_superseded"`
	FillErrors      uint64 `json:"fill_errors"`
	FillsForwarded  uint64 `json:"fills_forwarded"`
	FillFallbacks   uint64 `json:"fill_fallbacks"`
	FillsForPeers   uint64 `json:"fills_for_peers"`
	FillAnswersBad  uint64 `json:"fill_answers_bad"`
	RequestsBad     uint64 `json:"requests_bad"`
	// Pulled counts the records asked of peers that changed this member's
	// state: owners' answers to GetOrFill, GetAfter's pulls, and the
	// values of evicted stubs (StubAsks) put back (the sync
	// protocol's are Replication.Protocol.RecordsApplied); those refused
	// for being stamped too far ahead of this member's clock are counted
	// in Replication.Protocol.ClockDriftRejects, and those refused for
	// being older than a delete collected here in
	// Replication.Protocol.WatermarkRejects, with the protocol's (the
	// latter were counted nowhere: found by review).
	Pulled uint64 `json:"pulled"`
	// StubAsks counts the keys this member asked its peers the values of
	// because it held them only as evicted stubs while it had room for
	// values (a peer's eviction, taken with the version, or a read of
	// such a key: see "Eviction is local" in the README); the values put
	// back count in Pulled. StubAsksDropped counts those not asked, the
	// queue of keys waiting for an ask full.
	StubAsks        uint64 `json:"stub_asks"`
	StubAsksDropped uint64 `json:"stub_asks_dropped"`
	// Restored counts the records New restored from the snapshot,
	// RestoreDrifted those of the snapshot and of the write log it skipped
	// for being too far ahead of the clock (OnDamage DamageReset) and
	// RestoreLowered the watermarks it lowered for the same reason;
	// Snapshots counts the snapshots written since, SnapshotErrors those
	// that failed (see Config.SnapshotPath), and those written whose
	// members file, written after them, failed (the log they cover stays
	// until the next), and LogSnapshots those
	// tried before their interval because the write log had grown past
	// twice the last snapshot's size (and 4 MiB), whether written or
	// failed (a failed one counts in SnapshotErrors too, and is tried
	// again later, twice as late each time up to a minute).
	Restored       uint64 `json:"restored"`
	RestoreDrifted uint64 `json:"restore_drifted"`
	RestoreLowered uint64 `json:"restore_lowered"`
	Snapshots      uint64 `json:"snapshots"`
	SnapshotErrors uint64 `json:"snapshot_errors"`
	LogSnapshots   uint64 `json:"log_snapshots"`
	// Replayed counts the records New applied from the write log after
	// the snapshot; Logged the writes the log has made durable since,
	// in LogSyncs syncs (each shared by the writes that came while the
	// one before ran), and LogErrors the syncs and segment changes that
	// failed (a removal of segments a snapshot covers too). LogDirect says the log writes with direct I/O, bypassing the
	// page cache (SyncInterval on Linux, on a file system that takes it).
	// DamageResets counts the damaged files New set aside (OnDamage
	// DamageReset): the snapshot with its log and the members file, each
	// moved aside, and the clock floor file, removed, each once (all three
	// damaged, one start counts 3).
	Replayed     uint64 `json:"replayed"`
	Logged       uint64 `json:"logged"`
	LogSyncs     uint64 `json:"log_syncs"`
	LogErrors    uint64 `json:"log_errors"`
	LogDirect    bool   `json:"log_direct"`
	DamageResets uint64 `json:"damage_resets"`
	// FloorErrors counts the writes of the clock floor kept beside the
	// snapshot (SnapshotPath.clock) that failed. While they fail, the cuts
	// this member reports stay at the floor last written: its peers'
	// early collection waits, and a newcomer adopts the cluster's
	// watermarks only up to that floor (see the README's clock floor).
	FloorErrors uint64 `json:"floor_errors"`
	// DeltaLag and RepairLag are the records received from peers and
	// applied here, as deltas and as anti-entropy repairs (and records
	// asked of peers, Pulled: as repairs, but for a value put back on its
	// version's stub, evicted here, whose version had arrived before),
	// by their lag:
	// from the write, on the writer's clock, to the arrival, on this
	// member's. The members' clock difference enters it (a lag below it
	// counts as zero); repairs' lag includes how long the delta was
	// missing; a filled value's includes how long its filler ran (it is
	// stamped when the filler began: see GetWithFiller), which a peer
	// cannot tell apart.
	DeltaLag  Histogram `json:"delta_lag"`
	RepairLag Histogram `json:"repair_lag"`
	// Replication holds the counters of replication: the network's
	// (memberlist's traffic included, drops, joins) and, in
	// Replication.Protocol, the sync protocol's (deltas and their records,
	// anti-entropy sessions and repaired records, frames refused by
	// reason, clock-drift and watermark rejects, forgotten values; the
	// clock-drift and watermark rejects include the records asked of
	// peers, Pulled's).
	Replication gossip.Stats `json:"replication"`
}

// Stats returns the member's counters. It takes each shard's lock for a
// moment, one at a time, and the protocol's only for a copy.
func (c *Cache) Stats() Stats {
	st := c.store.Stats()
	s := Stats{
		Hits: st.Hits, Misses: st.Misses, Keys: c.store.Len(), Bytes: st.Bytes, // also after Close, as Bytes and Records
		Records: st.Records, Tombstones: st.Tombstones, Evicted: st.Evicted, Expired: st.Expired, DeadKeyBytes: st.DeadKeyBytes,
		Evictions: st.Evictions, Expirations: st.Expirations, Oversized: st.Oversized, Restamped: st.Restamped,
		CollectedAtHorizon: st.CollectedAtHorizon, CollectedEarly: st.CollectedEarly, CollectedByBound: st.CollectedByBound, WatermarksAdopted: st.WatermarksAdopted,
		Fills: c.stats.fills.Load(), FillErrors: c.stats.fillErrors.Load(), FillsSuperseded: c.stats.fillsSuperseded.Load(),
		FillsForwarded: c.stats.fillsForwarded.Load(), FillFallbacks: c.stats.fillFallbacks.Load(), FillAnswersBad: c.stats.fillAnswersBad.Load(),
		RequestsBad:   c.stats.callRequestsBad.Load(),
		FillsForPeers: c.stats.fillsForPeers.Load(), Pulled: c.stats.pulled.Load(),
		StubAsks: c.stats.stubAsks.Load(), StubAsksDropped: c.stats.stubAsksDropped.Load(),
		Restored: c.stats.restored.Load(), RestoreDrifted: c.stats.restoreDrifted.Load(),
		RestoreLowered: c.stats.restoreLowered.Load(),
		Snapshots:      c.stats.snapshots.Load(), SnapshotErrors: c.stats.snapshotErrors.Load(), LogSnapshots: c.stats.logSnapshots.Load(),
		Replayed: c.stats.replayed.Load(), LogErrors: c.stats.logErrors.Load(), DamageResets: c.stats.damageResets.Load(),
		FloorErrors: c.stats.floorErrors.Load(),
		Replication: c.repl.Stats(), DeltaLag: c.deltaLag.snapshot(), RepairLag: c.repairLag.snapshot(),
	}
	s.Replication.Protocol.ClockDriftRejects += c.stats.pulledDrifted.Load()
	s.Replication.Protocol.WatermarkRejects += c.stats.pulledRejected.Load()
	if c.journal != nil {
		ls := c.journal.Stats()
		s.Logged, s.LogSyncs, s.LogDirect = ls.Records, ls.Frames, ls.Direct
	}
	return s
}
