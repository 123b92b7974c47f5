// Package metrics exports a bcache member's statistics to Prometheus:
//
//	prometheus.MustRegister(metrics.New(cache))
//	http.Handle("/metrics", promhttp.Handler())
//
// Every metric carries a "member" label, the Cache's name, so that several
// Caches of one process register side by side. A scrape reads
// Cache.Stats and Cache.Status, which take each lock they need only for a
// copy; the write path does no work for it.
//
// What a replicated cache's operator needs beyond a local cache's hit
// ratio is whether the members converge, and how fast:
//
//   - bcache_replication_lag_seconds{path="delta"|"repair"}: per record
//     applied here, the time from its write (on the writer's clock) to its
//     arrival (on this member's). The members' clock difference enters it;
//     a lag below that difference counts as zero. It costs no traffic:
//     every record carries its write time.
//   - bcache_peer_last_exchange_age_seconds{peer}: time since this member
//     last completed an anti-entropy exchange with each live peer, and
//     bcache_peer_exchanged{peer}, 0 for a live peer with none yet.
//   - bcache_antientropy_differing_buckets: per exchange this member
//     started, the digest buckets found differing (0 when in sync).
//   - bcache_deltas_pending, bcache_deltas_dropped_total: writes not yet
//     sent, and those left to anti-entropy for lack of room.
//   - bcache_frames_rejected_total{reason}, bcache_records_rejected_total{reason},
//     bcache_join_failures_total, bcache_synced.
//
// The README lists every metric with its meaning.
package metrics

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/transport"
)

// Collector is a prometheus.Collector for one Cache.
type Collector struct {
	c     *bcache.Cache
	descs map[string]*prometheus.Desc
	kinds map[string]prometheus.ValueType
}

// metric is one exported metric: its name, help, kind and variable labels.
type metric struct {
	name, help string
	kind       prometheus.ValueType // or 0 for a histogram
	labels     []string
}

const histogram prometheus.ValueType = 0

var metricList = []metric{
	{"bcache_reads_total", "Local reads (Get, and the lookups of GetWithFiller, GetOrFill and GetAfter), by whether they found a live value.", prometheus.CounterValue, []string{"result"}},
	{"bcache_values", "Values held (one past its TTL until it is collected).", prometheus.GaugeValue, nil},
	{"bcache_value_bytes", "Key and value bytes of the values held.", prometheus.GaugeValue, nil},
	{"bcache_records", "Records held, of every kind: each key written and not yet collected.", prometheus.GaugeValue, nil},
	{"bcache_tombstones", "Deletes held (until collected).", prometheus.GaugeValue, nil},
	{"bcache_evicted_records", "Versions held without their value (evicted here, or over MaxValueSize).", prometheus.GaugeValue, nil},
	{"bcache_expired_values", "Records past their TTL that the last collection kept (values, and versions held without one).", prometheus.GaugeValue, nil},
	{"bcache_dead_key_bytes", "Bytes of the keys of the dead records the last collection kept (what MaxDeadBytes bounds).", prometheus.GaugeValue, nil},
	{"bcache_evictions_total", "Values dropped here by the MaxKeys or MaxBytes bound.", prometheus.CounterValue, nil},
	{"bcache_expirations_total", "Records past their TTL collected (values, and versions held without one).", prometheus.CounterValue, nil},
	{"bcache_oversized_records_total", "Records received or restored with a value over MaxValueSize (or, with its key, over MaxBytes), kept without it.", prometheus.CounterValue, nil},
	{"bcache_writes_restamped_total", "Local writes stamped again as they were applied, a session's cut or their bucket's watermark having passed their stamp.", prometheus.CounterValue, nil},
	{"bcache_watermarks_adopted_total", "Watermarks of this member's digest buckets raised to a peer's, asked for once synced.", prometheus.CounterValue, nil},
	{"bcache_collected_total", "Dead records collected, by how: horizon (dead for the tombstone horizon), early (every member held them) or bound (past MaxDeadRecords or MaxDeadBytes).", prometheus.CounterValue, []string{"how"}},
	{"bcache_fills_total", "Filler calls.", prometheus.CounterValue, nil},
	{"bcache_fills_superseded_total", "Fills whose value was not stored: the key was written or deleted since the filler began (or its bucket had a delete collected).", prometheus.CounterValue, nil},
	{"bcache_fill_errors_total", "Filler calls that ended in an error: the filler's own or its panic, FillTimeout or Close giving up on it, or its value refused.", prometheus.CounterValue, nil},
	{"bcache_fills_forwarded_total", "GetOrFill requests sent to a key's owner.", prometheus.CounterValue, nil},
	{"bcache_fill_fallbacks_total", "Fills run here after the key's owner did not answer, or answered that it held nothing.", prometheus.CounterValue, nil},
	{"bcache_fill_answers_bad_total", "Answers to this member's fill requests, GetAfter pulls and asks for watermarks that were none of an answer's forms (taken as no answer).", prometheus.CounterValue, nil},
	{"bcache_requests_bad_total", "Peers' fill and fetch requests this member could not read (answered as holding nothing).", prometheus.CounterValue, nil},
	{"bcache_fills_for_peers_total", "Fills run here for peers that asked this member, as a key's owner (a request answered with the value held, or refused, is none).", prometheus.CounterValue, nil},
	{"bcache_records_pulled_total", "Records asked of peers (fill answers, GetAfter's pulls, the values of evicted stubs) that changed this member's state.", prometheus.CounterValue, nil},
	{"bcache_stub_asks_total", "Keys held as evicted stubs whose values this member asked its peers for, with room for values, by result: asked, or dropped (the queue full).", prometheus.CounterValue, []string{"result"}},
	{"bcache_peers", "Other live members.", prometheus.GaugeValue, nil},
	{"bcache_synced", "1 once an anti-entropy exchange with a peer has completed since start, else 0.", prometheus.GaugeValue, nil},
	{"bcache_ready", "1 while the member is ready to serve (Status.Ready, the node's /readyz: synced with a peer and not alone while it has peers to join, or with none to sync with, or its cluster's founder not yet synced with the members it met), else 0.", prometheus.GaugeValue, nil},
	{"bcache_founder", "1 while the member is its cluster's founder and has met no other member (Status.Founder: ready without a sync), else 0.", prometheus.GaugeValue, nil},
	{"bcache_peer_exchanged", "1 for each live peer with which an anti-entropy exchange has completed on this member, 0 for one with none yet.", prometheus.GaugeValue, []string{"peer"}},
	{"bcache_peer_last_exchange_age_seconds", "Time since the last completed anti-entropy exchange with a live peer (absent before the first); a peer's session found in step at its opening does not count on this member.", prometheus.GaugeValue, []string{"peer"}},
	{"bcache_join_failing_addresses", "Addresses this member failed to join the last time it tried, and those of members it refused in the last minute and has not taken since (a name conflict, other keys; a member whose messages it cannot read at all, with a key it does not know or none, is dropped by memberlist, which logs it, and is not counted here: the member itself reports \"wrong key\").", prometheus.GaugeValue, nil},
	{"bcache_peers_ended_total", "Other members' ends this member saw, by how: left (the member closed and said so) or failed (a crash, a partition, or a leave this member heard nothing of: early collection then waits for it).", prometheus.CounterValue, []string{"how"}},
	{"bcache_leave_pulls_total", "Pulls this member made from members that closed and asked it to (a closing member hands over the writes its deltas may have lost), by result: pulled (this member then holds every write the leaver acknowledged) or failed (the leaver gone first, the leave's wait over, this member closing).", prometheus.CounterValue, []string{"result"}},
	{"bcache_joins_total", "Re-join attempts that reached a member.", prometheus.CounterValue, nil},
	{"bcache_join_failures_total", "Re-join attempts that reached none.", prometheus.CounterValue, nil},
	{"bcache_peer_lookup_failures_total", "Peers that could not be looked up (a name that did not resolve, a PeerSource that failed), once per look at the seeds.", prometheus.CounterValue, nil},
	{"bcache_key_refusals_total", "Members' messages refused because their keys and this member's do not read each other (a key rotation's step skipped, or an old key): every alive message of such a member, relayed ones too, not members.", prometheus.CounterValue, nil},
	{"bcache_streams_refused_total", "Streams closed because as many as allowed were open: at once, past 64 from their address or IPv6 /64 (with a key) or 64 in all (without); or, with a key, the oldest of 128 from addresses of no member, to make room; or unread, because the streams being read held 256 MiB. Their senders retry.", prometheus.CounterValue, nil},
	{"bcache_calls_busy_total", "Peers' calls (cluster fills, fetches) refused at once because every place to serve one was taken (256, 32 for one asker), or the requests served held 64 MiB; a fill's asker asks again until its fill timeout.", prometheus.CounterValue, nil},
	{"bcache_call_repeats_total", "Peers' calls received again while served or once answered (resends, replays), not served again.", prometheus.CounterValue, nil},
	{"bcache_udp_read_buffer_bytes", "Receive buffer of the member's UDP socket as the kernel reports it (Linux: twice the size set); the member asks for 16 MiB (0: not read).", prometheus.GaugeValue, nil},
	{"bcache_deltas_pending", "Local writes not yet sent to the peers.", prometheus.GaugeValue, nil},
	{"bcache_deltas_dropped_total", "Local writes not sent as deltas for lack of room (anti-entropy carries them).", prometheus.CounterValue, nil},
	{"bcache_delta_records_sent_total", "Records of this member's writes sent as deltas.", prometheus.CounterValue, nil},
	{"bcache_delta_records_received_total", "Delta records received from peers (once each).", prometheus.CounterValue, nil},
	{"bcache_records_applied_total", "Records received from peers that changed this member's state.", prometheus.CounterValue, nil},
	{"bcache_records_rejected_total", "Records received and not applied, by reason: watermark (older than a collected delete), clock_drift (too far ahead), late (a delta older than the horizon); counted at each arrival, unlike bcache_delta_records_received_total: a record that comes again (a copy of its batch, duplicated or replayed on the way, or sent again by anti-entropy) counts again; watermark and clock_drift include records asked of peers (fill answers, GetAfter's pulls).", prometheus.CounterValue, []string{"reason"}},
	{"bcache_values_dropped_total", "Live values dropped after an absence longer than the horizon.", prometheus.CounterValue, nil},
	{"bcache_frames_rejected_total", "Frames refused before anything was applied, by reason (incomplete: received in part, as datagram fragments, and given up).", prometheus.CounterValue, []string{"reason"}},
	{"bcache_antientropy_sessions_started_total", "Anti-entropy exchanges this member started.", prometheus.CounterValue, nil},
	{"bcache_antientropy_sessions_completed_total", "Anti-entropy exchanges this member started and completed.", prometheus.CounterValue, nil},
	{"bcache_antientropy_sessions_responded_total", "Anti-entropy exchanges peers started that completed on this member, and their openings found in step (which complete nothing here).", prometheus.CounterValue, nil},
	{"bcache_antientropy_sessions_timed_out_total", "Anti-entropy exchanges this member started and abandoned (timed out, the peer gone or restarted, its replies moving nothing); not those it gave up, still comparing digests, to a peer holding nothing that had one under way with it.", prometheus.CounterValue, nil},
	{"bcache_antientropy_listings_refused_total", "Peers' anti-entropy listing requests left unanswered because the peer had spent its budget of listing work on crowded digest buckets (100,000 versions and records a second); the peer sends them again.", prometheus.CounterValue, nil},
	{"bcache_antientropy_sessions_yielded_total", "Anti-entropy exchanges this member gave up, still comparing digests, or did not start, because the peer, holding nothing, had one under way with it (which moves everything).", prometheus.CounterValue, nil},
	{"bcache_antientropy_repair_records_total", "Records sent and received by anti-entropy.", prometheus.CounterValue, []string{"direction"}},
	{"bcache_antientropy_differing_buckets", "Digest buckets found differing, per anti-entropy exchange this member started and completed.", histogram, nil},
	{"bcache_replication_lag_seconds", "Per record received and applied: from its write (writer's clock) to its arrival (this member's clock), by path; a filled value's includes its filler's run (it is stamped when the filler began).", histogram, []string{"path"}},
	{"bcache_network_sent_bytes_total", "Bytes sent, memberlist's own traffic included, by transport.", prometheus.CounterValue, []string{"transport"}},
	{"bcache_frames_dropped_total", "Frames not sent, by reason: no_room (the sync protocol's, for lack of room on streams), call_no_room (calls' requests and answers larger than a datagram, for lack of room on streams), no_route (to a member gone), send_error (failed to send; calls' included).", prometheus.CounterValue, []string{"reason"}},
	{"bcache_memberlist_errors_total", "memberlist's error lines (garbage from a process without the cluster key makes one a datagram).", prometheus.CounterValue, nil},
	{"bcache_snapshots_total", "Snapshots written.", prometheus.CounterValue, nil},
	{"bcache_snapshot_errors_total", "Snapshots that failed.", prometheus.CounterValue, nil},
	{"bcache_log_records_total", "Records the write log made durable.", prometheus.CounterValue, nil},
	{"bcache_log_syncs_total", "Syncs of the write log.", prometheus.CounterValue, nil},
	{"bcache_log_errors_total", "Write-log syncs and segment changes that failed.", prometheus.CounterValue, nil},
	{"bcache_damage_resets_total", "Damaged files set aside at start (OnDamage reset): the snapshot with its log, the members file, the clock floor.", prometheus.CounterValue, nil},
	{"bcache_clock_floor_errors_total", "Writes of the clock floor kept beside the snapshot that failed; while they fail, this member's cuts lag.", prometheus.CounterValue, nil},
}

// New returns a collector of c's metrics.
func New(c *bcache.Cache) *Collector {
	col := &Collector{c: c, descs: map[string]*prometheus.Desc{}, kinds: map[string]prometheus.ValueType{}}
	member := prometheus.Labels{"member": labelValue(c.Name())}
	for _, m := range metricList {
		col.descs[m.name] = prometheus.NewDesc(m.name, m.help, m.labels, member)
		col.kinds[m.name] = m.kind
	}
	return col
}

// Describe implements prometheus.Collector.
func (col *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range metricList {
		ch <- col.descs[m.name]
	}
}

// Collect implements prometheus.Collector.
func (col *Collector) Collect(ch chan<- prometheus.Metric) {
	st, status := col.c.Stats(), col.c.Status()
	p, r := st.Replication.Protocol, st.Replication
	emit := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(col.descs[name], col.kinds[name], v, labels...)
	}
	emit("bcache_reads_total", float64(st.Hits), "hit")
	emit("bcache_reads_total", float64(st.Misses), "miss")
	emit("bcache_values", float64(st.Keys))
	emit("bcache_value_bytes", float64(st.Bytes))
	emit("bcache_records", float64(st.Records))
	emit("bcache_tombstones", float64(st.Tombstones))
	emit("bcache_evicted_records", float64(st.Evicted))
	emit("bcache_expired_values", float64(st.Expired))
	emit("bcache_dead_key_bytes", float64(st.DeadKeyBytes))
	emit("bcache_evictions_total", float64(st.Evictions))
	emit("bcache_expirations_total", float64(st.Expirations))
	emit("bcache_oversized_records_total", float64(st.Oversized))
	emit("bcache_writes_restamped_total", float64(st.Restamped))
	emit("bcache_watermarks_adopted_total", float64(st.WatermarksAdopted))
	emit("bcache_collected_total", float64(st.CollectedAtHorizon), "horizon")
	emit("bcache_collected_total", float64(st.CollectedEarly), "early")
	emit("bcache_collected_total", float64(st.CollectedByBound), "bound")
	emit("bcache_fills_total", float64(st.Fills))
	emit("bcache_fills_superseded_total", float64(st.FillsSuperseded))
	emit("bcache_fill_errors_total", float64(st.FillErrors))
	emit("bcache_fills_forwarded_total", float64(st.FillsForwarded))
	emit("bcache_fill_fallbacks_total", float64(st.FillFallbacks))
	emit("bcache_fill_answers_bad_total", float64(st.FillAnswersBad))
	emit("bcache_requests_bad_total", float64(st.RequestsBad))
	emit("bcache_fills_for_peers_total", float64(st.FillsForPeers))
	emit("bcache_records_pulled_total", float64(st.Pulled))
	emit("bcache_stub_asks_total", float64(st.StubAsks), "asked")
	emit("bcache_stub_asks_total", float64(st.StubAsksDropped), "dropped")

	emit("bcache_peers", float64(len(status.Peers)))
	emit("bcache_synced", bool01(status.Synced))
	emit("bcache_ready", bool01(status.Ready()))
	emit("bcache_founder", bool01(status.Founder))
	peerSeries(status.Peers, status.At, emit) // the member's clock, as its times are
	emit("bcache_join_failing_addresses", float64(len(status.Joining)))
	emit("bcache_peers_ended_total", float64(r.PeersLeft), "left")
	emit("bcache_peers_ended_total", float64(r.PeersFailed), "failed")
	emit("bcache_leave_pulls_total", float64(r.LeavePulls), "pulled")
	emit("bcache_leave_pulls_total", float64(r.LeavePullsFailed), "failed")
	emit("bcache_joins_total", float64(r.Joins))
	emit("bcache_join_failures_total", float64(r.JoinFailures))
	emit("bcache_peer_lookup_failures_total", float64(r.LookupFailures))
	emit("bcache_key_refusals_total", float64(r.KeyRefusals))
	emit("bcache_streams_refused_total", float64(r.StreamsRefused))
	emit("bcache_calls_busy_total", float64(r.CallsBusy))
	emit("bcache_call_repeats_total", float64(r.CallRepeats))
	emit("bcache_udp_read_buffer_bytes", float64(r.ReadBuffer))

	emit("bcache_deltas_pending", float64(status.PendingDeltas))
	emit("bcache_deltas_dropped_total", float64(p.DeltasDropped+r.WritesDropped))
	emit("bcache_frames_dropped_total", float64(r.StreamsDropped), "no_room")
	emit("bcache_frames_dropped_total", float64(r.CallsDropped), "call_no_room")
	emit("bcache_frames_dropped_total", float64(r.NoRoute), "no_route")
	emit("bcache_frames_dropped_total", float64(r.SendErrors), "send_error")
	emit("bcache_memberlist_errors_total", float64(r.MemberlistErrors))
	emit("bcache_delta_records_sent_total", float64(p.DeltaRecordsSent))
	emit("bcache_delta_records_received_total", float64(p.DeltaRecordsReceived))
	emit("bcache_records_applied_total", float64(p.RecordsApplied))
	emit("bcache_records_rejected_total", float64(p.WatermarkRejects), "watermark")
	emit("bcache_records_rejected_total", float64(p.ClockDriftRejects), "clock_drift")
	emit("bcache_records_rejected_total", float64(p.LateDeltas), "late")
	emit("bcache_values_dropped_total", float64(p.Dropped))
	for _, f := range []struct {
		reason string
		n      uint64
	}{
		{"malformed", p.RejectedMalformed}, {"too_large", p.RejectedTooLarge}, {"version", p.RejectedVersion},
		{"unknown_kind", p.RejectedUnknownKind}, {"stray", p.Stray}, {"not_ours", r.BadFrames},
		{"incomplete", r.FragmentsDropped},
	} {
		emit("bcache_frames_rejected_total", float64(f.n), f.reason)
	}
	emit("bcache_antientropy_sessions_started_total", float64(p.SessionsStarted))
	emit("bcache_antientropy_sessions_completed_total", float64(p.SessionsCompleted))
	emit("bcache_antientropy_sessions_responded_total", float64(p.SessionsResponded))
	emit("bcache_antientropy_sessions_timed_out_total", float64(p.SessionsTimedOut))
	emit("bcache_antientropy_sessions_yielded_total", float64(p.SessionsYielded))
	emit("bcache_antientropy_listings_refused_total", float64(p.ListingsRefused))
	emit("bcache_antientropy_repair_records_total", float64(p.RepairRecordsSent), "sent")
	emit("bcache_antientropy_repair_records_total", float64(p.RepairRecordsReceived), "received")
	ch <- differing(col.descs["bcache_antientropy_differing_buckets"], p)
	ch <- lag(col.descs["bcache_replication_lag_seconds"], st.DeltaLag, "delta")
	ch <- lag(col.descs["bcache_replication_lag_seconds"], st.RepairLag, "repair")
	emit("bcache_network_sent_bytes_total", float64(r.WirePacketBytes), "udp")
	emit("bcache_network_sent_bytes_total", float64(r.WireStreamBytes), "tcp")

	emit("bcache_snapshots_total", float64(st.Snapshots))
	emit("bcache_snapshot_errors_total", float64(st.SnapshotErrors))
	emit("bcache_log_records_total", float64(st.Logged))
	emit("bcache_log_syncs_total", float64(st.LogSyncs))
	emit("bcache_log_errors_total", float64(st.LogErrors))
	emit("bcache_damage_resets_total", float64(st.DamageResets))
	emit("bcache_clock_floor_errors_total", float64(st.FloorErrors))
}

// peerSeries emits the per-peer series: for every live peer whether an
// exchange with it has completed, and, once one has, the time since the
// last. A peer that never completes one still has a series (0), which an
// alert can watch (found by review: with the age alone, absent until the
// first exchange, such a peer left no trace). A name listed twice
// has one series (two would fail the scrape): exchanged if either has,
// the age of the latest exchange; labelValue gives no two names one. now is the
// member's time (Status.At): its exchanges' times are on its clock (taken
// on the process's, an exchange of a member whose clock ran 20 s behind
// read 20 s old, and one ahead never aged: found by review).
func peerSeries(peers []bcache.PeerStatus, now time.Time, emit func(name string, v float64, labels ...string)) {
	last := map[string]time.Time{}
	var names []string
	for _, peer := range peers {
		name := labelValue(peer.Name)
		t, seen := last[name]
		if !seen {
			names = append(names, name)
		}
		if peer.LastSync.After(t) {
			t = peer.LastSync
		}
		last[name] = t
	}
	for _, name := range names {
		t := last[name]
		emit("bcache_peer_exchanged", bool01(!t.IsZero()), name)
		if !t.IsZero() {
			emit("bcache_peer_last_exchange_age_seconds", max(now.Sub(t).Seconds(), 0), name)
		}
	}
}

// labelValue is s as a label value, which must be UTF-8: a member's name
// that is not (a peer's, which this member does not choose) is quoted,
// its other bytes escaped (a name the exporter refused made every scrape
// fail). A name that begins with a quote is quoted too, so that no two
// names are one label value (a member named `"a\xff"`, quotes included,
// took the label of one named "a\xff": the two Caches' collectors did
// not register side by side, and one peer's series hid the other's).
func labelValue(s string) string {
	if utf8.ValidString(s) && !strings.HasPrefix(s, `"`) {
		return s
	}
	return strconv.Quote(s)
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// differing is the histogram of digest buckets found differing per
// exchange.
func differing(desc *prometheus.Desc, p transport.Stats) prometheus.Metric {
	buckets := map[float64]uint64{}
	var count uint64
	bounds := transport.DifferingBounds()
	for i, bound := range bounds {
		count += p.DifferingLeaves[i]
		buckets[float64(bound)] = count
	}
	count += p.DifferingLeaves[len(bounds)]
	return prometheus.MustNewConstHistogram(desc, count, float64(p.DifferingLeavesSum), buckets)
}

// lag is a lag histogram in seconds.
func lag(desc *prometheus.Desc, h bcache.Histogram, path string) prometheus.Metric {
	buckets := map[float64]uint64{}
	var count uint64
	for i, bound := range h.Bounds {
		count += h.Counts[i]
		buckets[bound.Seconds()] = count
	}
	return prometheus.MustNewConstHistogram(desc, h.Count, h.SumSeconds, buckets, path)
}
