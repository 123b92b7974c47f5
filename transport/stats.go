package transport

import "github.com/bcache-go/bcache/transport/wire"

// Stats are a node's counters since it was created. All only grow.
type Stats struct {
	// Traffic, per message kind (indexed by wire.Kind) and in total.
	// Sent counts the frames this node addressed, one per Envelope
	// returned to the host, when it returns them: before the host writes
	// them, so those the host then drops or fails to write are counted
	// too (the host's own counters tell those, and what reached the
	// network: gossip's Stats.Wire*). Received counts frames given to
	// Receive.
	FramesSent       uint64                      `json:"frames_sent"`
	BytesSent        uint64                      `json:"bytes_sent"`
	FramesReceived   uint64                      `json:"frames_received"`
	BytesReceived    uint64                      `json:"bytes_received"`
	FramesSentByKind [wire.KindDirect + 1]uint64 `json:"frames_sent_by_kind"`
	BytesSentByKind  [wire.KindDirect + 1]uint64 `json:"bytes_sent_by_kind"`

	// Deltas: batches and the records in them, sent (this node's own
	// writes, counted once per tree) and received (counted once, however
	// many copies arrive).
	DeltaBatchesSent     uint64 `json:"delta_batches_sent"`
	DeltaRecordsSent     uint64 `json:"delta_records_sent"`
	DeltasCoalesced      uint64 `json:"deltas_coalesced"` // writes that replaced a queued record of the same key
	DeltasDropped        uint64 `json:"deltas_dropped"`   // writes not queued because the buffer was full
	DeltaBatchesReceived uint64 `json:"delta_batches_received"`
	DeltaRecordsReceived uint64 `json:"delta_records_received"`
	DuplicateDeltas      uint64 `json:"duplicate_deltas"` // batches (relayed or direct) that brought nothing new here (copies, a batch passed on with refused records among them, records past the horizon or below a watermark): not relayed on, not counted as received
	DeltasForwarded      uint64 `json:"deltas_forwarded"` // copies relayed down another origin's tree
	LateDeltas           uint64 `json:"late_deltas"`      // delta records older than the GC horizon, not applied: at every copy, as the rejects below

	// Records received by any path. The rejects count arrivals, not
	// records: a record that comes again (a copy of its batch, by the
	// network or a replay, or anti-entropy sending it again) is counted
	// again: the node keeps nothing that tells a rejected record's copy
	// from its first arrival (see receiveDelta).
	RecordsApplied    uint64 `json:"records_applied"`     // records that changed the replica
	WatermarkRejects  uint64 `json:"watermark_rejects"`   // records below a GC watermark, not applied
	ClockDriftRejects uint64 `json:"clock_drift_rejects"` // records stamped too far ahead of local time
	Dropped           uint64 `json:"dropped"`             // live values replaced by a peer's answer to their rejection

	// Anti-entropy.
	SessionsStarted   uint64 `json:"sessions_started"`
	SessionsCompleted uint64 `json:"sessions_completed"`
	SessionsTimedOut  uint64 `json:"sessions_timed_out"` // or abandoned: the peer left or restarted, or its replies moved nothing, or it lasted 64 timeouts
	// SessionsResponded counts sessions peers started that completed on
	// this side: every Repair the initiator sent applied here; and the
	// openings found in step, which complete nothing here (no synced
	// mark, cut or exchange: an opening carries no token, and may be
	// forged under a member's name).
	SessionsResponded uint64 `json:"sessions_responded"`
	// SessionsYielded counts sessions this node did not start, or
	// abandoned while comparing digests, because the peer, holding
	// nothing, had one in progress with it: that one moves everything.
	SessionsYielded uint64 `json:"sessions_yielded"`
	// OpeningsDeferred counts sessions a peer opened that this node left
	// unanswered because its own session with that peer was already
	// repairing: the peer opens again later.
	OpeningsDeferred uint64 `json:"openings_deferred"`
	// ListingsRefused counts Versions of a peer's sessions left
	// unanswered because the peer had spent its budget of listing work
	// on crowded leaves (see listingRate): the peer sends them again, and
	// is answered once the budget has come back. As the initiator, it
	// counts the peer's Repairs left unanswered so (their steps go again
	// at their retries).
	ListingsRefused uint64 `json:"listings_refused"`
	// StepsRetried counts requests of a session sent again because no
	// reply came in time (a datagram lost on the way, or its reply).
	StepsRetried          uint64 `json:"steps_retried"`
	RepairRecordsSent     uint64 `json:"repair_records_sent"`
	RepairRecordsReceived uint64 `json:"repair_records_received"`
	// DifferingLeaves counts the sessions this node started and
	// completed by the digest leaves they found differing:
	// DifferingLeaves[i] those with at most DifferingBounds()[i] and
	// more than the bound before; the last, more than every bound.
	// DifferingLeavesSum is the leaves found in all of them.
	DifferingLeaves    [len(differingBounds) + 1]uint64 `json:"differing_leaves"`
	DifferingLeavesSum uint64                           `json:"differing_leaves_sum"`

	// Frames refused before anything was applied, by reason.
	RejectedMalformed   uint64 `json:"rejected_malformed"`
	RejectedTooLarge    uint64 `json:"rejected_too_large"`
	RejectedVersion     uint64 `json:"rejected_version"`
	RejectedUnknownKind uint64 `json:"rejected_unknown_kind"`
	// Stray counts well-formed messages that fit no session or break the
	// protocol (a leaf index out of range, a digest of the wrong shape).
	Stray uint64 `json:"stray"`
	// EncodeErrors counts messages that could not be encoded (a record over
	// the decoder's limits).
	EncodeErrors uint64 `json:"encode_errors"`
}

// differingBounds are the buckets the sessions count in
// (DifferingBounds).
var differingBounds = [...]int{0, 1, 4, 16, 64, 256, 1024, 4096}

// DifferingBounds returns the buckets of Stats.DifferingLeaves.
func DifferingBounds() [len(differingBounds)]int { return differingBounds }

// DifferingLeavesBounds are the buckets of Stats.DifferingLeaves, as
// DifferingBounds returns them.
//
// Deprecated: it is a copy, which changing changes nothing (the metrics
// read it to label the buckets the sessions counted by the original:
// found by review); use DifferingBounds.
var DifferingLeavesBounds = differingBounds

// countDiffering counts a completed session that found n leaves differing.
func (s *Stats) countDiffering(n int) {
	i := 0
	for i < len(differingBounds) && n > differingBounds[i] {
		i++
	}
	s.DifferingLeaves[i]++
	s.DifferingLeavesSum += uint64(n)
}

// RejectedFrames returns the frames refused for any reason.
func (s Stats) RejectedFrames() uint64 {
	return s.RejectedMalformed + s.RejectedTooLarge + s.RejectedVersion + s.RejectedUnknownKind
}

func (s *Stats) countReject(reason string) {
	switch reason {
	case "too_large":
		s.RejectedTooLarge++
	case "version":
		s.RejectedVersion++
	case "unknown_kind":
		s.RejectedUnknownKind++
	default:
		s.RejectedMalformed++
	}
}

func (s *Stats) countSent(k wire.Kind, bytes int) {
	s.FramesSent++
	s.BytesSent += uint64(bytes)
	if k <= wire.KindDirect {
		s.FramesSentByKind[k]++
		s.BytesSentByKind[k] += uint64(bytes)
	}
}
