package bcache

import (
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// Histogram is a distribution of durations, as counts in buckets: Counts[i]
// counts the observations at or below Bounds[i] and above the bound
// before it; the last count, one past the bounds, those above them all.
type Histogram struct {
	Bounds []time.Duration `json:"bounds"`
	Counts []uint64        `json:"counts"`
	// Count is the sum of Counts; SumSeconds the sum of the observations,
	// in seconds (a sum of lags can pass the 292 years a time.Duration
	// holds: 100,000 keys a day old, repaired to a member that joins).
	Count      uint64  `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
}

// lagBounds are the buckets the histograms count in (LagBounds).
var lagBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
	30 * time.Second, time.Minute, 5 * time.Minute, time.Hour,
}

// LagBounds are the buckets of Stats.DeltaLag and Stats.RepairLag: from a
// millisecond, where a delta on a LAN lands, to an hour, the default
// TombstoneHorizon. It is a copy: changing it changes nothing (the
// histograms counted by it, and one bound appended panicked the next
// apply of a lag past the old last bound: found by review).
var LagBounds = slices.Clone(lagBounds[:])

// lagHistogram counts replication lags without a lock.
type lagHistogram struct {
	counts [len(lagBounds) + 1]atomic.Uint64
	sum    atomic.Uint64 // the bits of a float64, in seconds
}

func (h *lagHistogram) observe(d time.Duration) {
	d = max(d, 0) // a writer's clock ahead of this member's
	i := 0
	for i < len(lagBounds) && d > lagBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d.Seconds())) {
			return
		}
	}
}

func (h *lagHistogram) snapshot() Histogram {
	out := Histogram{Bounds: slices.Clone(lagBounds[:]), Counts: make([]uint64, len(h.counts))}
	// The sum first: observe counts before it sums, so every lag in the
	// sum read is in the counts read after it (read last, the sum held
	// lags not counted: a mean above every lag observed, found by review).
	out.SumSeconds = math.Float64frombits(h.sum.Load())
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
		out.Count += out.Counts[i] // so never less than the buckets, read one by one
	}
	return out
}

// lagReplica is the store as replication sees it, measuring each applied
// record's lag: the time from its write, on the writer's clock, to its
// arrival here, on this member's (clock skew between them enters it).
type lagReplica struct {
	*store.Store
	deltas, repairs *lagHistogram
	// stub, if set, is told of each peer's evicted version applied (see
	// Cache.stubArrived).
	stub func(key string)
}

func (r lagReplica) Apply(rec crdt.Record, delta bool, now int64) crdt.Outcome {
	o := r.Store.Apply(rec, delta, now)
	if o == crdt.Applied && rec.Evicted && !rec.Expired(now) && r.stub != nil { // an expired one is put back on by no answer
		r.stub(rec.Key)
	}
	// A peer's answer to a record it rejected (a tombstone of node 0,
	// stamped just above a watermark) has no writer and no write time: it
	// made lags of up to the horizon (found by review).
	if o == crdt.Applied && (!rec.Tombstone || rec.Time.Node != 0) {
		h := r.repairs
		if delta {
			h = r.deltas
		}
		h.observe(time.Duration(crdt.SubSat(now, rec.Time.Wall)))
	}
	return o
}
