package bcache

import "sync/atomic"

type counters struct {
	fills, fillErrors                                 atomic.Uint64
	restored, driftRejects, snapshots, snapshotErrors atomic.Uint64
}

// Stats are a member's counters since New. All counts only grow, except
// Keys and Bytes.
type Stats struct {
	// Local reads: Get (and GetWithFiller's lookups) that found a live value
	// and those that did not.
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	// Keys and Bytes are the values held now and their key and value bytes.
	Keys  int   `json:"keys"`
	Bytes int64 `json:"bytes"`
	// Evictions counts values dropped locally by the MaxKeys/MaxBytes bound;
	// Expirations values past their TTL that were collected.
	Evictions   uint64 `json:"evictions"`
	Expirations uint64 `json:"expirations"`
	// Fills counts filler calls, FillErrors those that failed.
	Fills      uint64 `json:"fills"`
	FillErrors uint64 `json:"fill_errors"`

	// Replication. DeltasSent counts records this member shipped in delta
	// batches (its own writes), DeltaBatchesSent the batches; DeltasReceived
	// the batches received. BytesSent and BytesReceived count the protocol's
	// frames; WireBytesSent everything on the wire, memberlist included.
	DeltasSent       uint64 `json:"deltas_sent"`
	DeltaBatchesSent uint64 `json:"delta_batches_sent"`
	DeltasReceived   uint64 `json:"deltas_received"`
	BytesSent        uint64 `json:"bytes_sent"`
	BytesReceived    uint64 `json:"bytes_received"`
	WireBytesSent    uint64 `json:"wire_bytes_sent"`
	// AntiEntropyRounds counts completed sessions, RepairedKeys the records
	// received through them.
	AntiEntropyRounds uint64 `json:"anti_entropy_rounds"`
	RepairedKeys      uint64 `json:"repaired_keys"`
	// DroppedDeltas counts writes not shipped as deltas for lack of room (a
	// full buffer never blocks a write; anti-entropy carries them instead).
	DroppedDeltas uint64 `json:"dropped_deltas"`
	// Rejected frames by reason, and records refused because their
	// timestamp was too far ahead of the local clock.
	RejectedMalformed   uint64 `json:"rejected_malformed"`
	RejectedTooLarge    uint64 `json:"rejected_too_large"`
	RejectedVersion     uint64 `json:"rejected_version"`
	RejectedUnknownKind uint64 `json:"rejected_unknown_kind"`
	ClockDriftRejects   uint64 `json:"clock_drift_rejects"`
	// Forgotten counts live values dropped after a long absence (see
	// Config.OnDrop).
	Forgotten uint64 `json:"forgotten"`

	// Restored counts the records New restored from the snapshot;
	// Snapshots the snapshots written since, SnapshotErrors those that
	// failed (see Config.SnapshotPath).
	Restored       uint64 `json:"restored"`
	Snapshots      uint64 `json:"snapshots"`
	SnapshotErrors uint64 `json:"snapshot_errors"`
}

// Stats returns the member's counters.
func (c *Cache) Stats() Stats {
	st := c.store.Stats()
	s := Stats{
		Hits: st.Hits, Misses: st.Misses, Keys: c.Len(), Bytes: st.Bytes,
		Evictions: st.Evictions, Expirations: st.Expirations,
		Fills: c.stats.fills.Load(), FillErrors: c.stats.fillErrors.Load(),
	}
	r := c.repl.Stats()
	p := r.Protocol
	s.DeltasSent, s.DeltaBatchesSent, s.DeltasReceived = p.DeltaRecords, p.DeltaBatches, p.DeltasReceived
	s.BytesSent, s.BytesReceived, s.WireBytesSent = p.BytesSent, p.BytesReceived, r.WirePacketBytes+r.WireStreamBytes
	s.AntiEntropyRounds, s.RepairedKeys = p.SessionsCompleted, p.RepairRecordsReceived
	s.DroppedDeltas = p.DeltasDropped + r.WritesDropped + r.StreamsDropped
	s.RejectedMalformed, s.RejectedTooLarge = p.RejectedMalformed, p.RejectedTooLarge
	s.RejectedVersion, s.RejectedUnknownKind = p.RejectedVersion, p.RejectedUnknownKind
	s.ClockDriftRejects, s.Forgotten = p.ClockDriftRejects+c.stats.driftRejects.Load(), p.Forgotten
	s.Restored, s.Snapshots, s.SnapshotErrors = c.stats.restored.Load(), c.stats.snapshots.Load(), c.stats.snapshotErrors.Load()
	return s
}
