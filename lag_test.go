package bcache

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// TestLagSumPastADurationsRange: a sum of lags past what a time.Duration
// holds (292 years: 300,000 records a year old, repaired to a member that
// joins) is kept in seconds, positive and close. It was a Duration: it
// wrapped negative, and the exported histogram's sum with it.
func TestLagSumPastADurationsRange(t *testing.T) {
	var h lagHistogram
	const n, lag = 300_000, 366 * 24 * time.Hour
	for range n {
		h.observe(lag)
	}
	got := h.snapshot()
	if want := n * lag.Seconds(); math.Abs(got.SumSeconds-want) > want*1e-9 || got.Count != n {
		t.Fatalf("count %d, sum %g s; want %d, %g s", got.Count, got.SumSeconds, n, want)
	}
}

// TestLagHistogramIsConsistent: a snapshot taken while lags are observed
// never counts more in its buckets than in all (the exported histogram's
// +Inf bucket fell below its 1-hour bucket): its count is their sum.
func TestLagHistogramIsConsistent(t *testing.T) {
	var h lagHistogram
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			h.observe(time.Duration(i%5000) * time.Millisecond)
		}
	})
	defer func() { stop.Store(true); wg.Wait() }()
	for range 100_000 {
		s := h.snapshot()
		var buckets uint64
		for _, c := range s.Counts {
			buckets += c
		}
		if buckets != s.Count {
			t.Fatalf("buckets hold %d, count %d", buckets, s.Count)
		}
	}
}

// TestLagBoundsAreACopy: changing LagBounds, or the Bounds of a Stats
// histogram, changes neither the buckets counted nor later Stats. A bound
// appended to LagBounds panicked the next lag past the old last bound;
// the Stats' Bounds were LagBounds itself (found by review).
func TestLagBoundsAreACopy(t *testing.T) {
	saved := slices.Clone(LagBounds)
	defer func() { LagBounds = saved }()
	LagBounds = append(LagBounds, 2*time.Hour)
	LagBounds[0] = time.Hour
	var h lagHistogram
	h.observe(3 * time.Hour)
	h.observe(time.Microsecond)
	got := h.snapshot()
	got.Bounds[1] = time.Hour
	again := h.snapshot()
	if !slices.Equal(again.Bounds, saved) || again.Counts[0] != 1 || again.Counts[len(again.Counts)-1] != 1 {
		t.Fatalf("bounds %v counts %v; want %v and one in the first and the last", again.Bounds, again.Counts, saved)
	}
}

// TestLagSumNeverPastItsCount: a snapshot's sum holds no lag its counts
// do not: every lag observed is an hour, so no snapshot may sum more
// than its count of hours. The sum, read after the counts, held lags
// observed in between (a mean above every lag observed, and, with a
// count of 0, a sum of nothing that was not zero: found by review).
func TestLagSumNeverPastItsCount(t *testing.T) {
	var h lagHistogram
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 { // two observers: their retries on the sum widen the window
		wg.Go(func() {
			for !stop.Load() {
				h.observe(time.Hour)
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()
	for i := range 200_000 {
		s := h.snapshot()
		if s.SumSeconds > float64(s.Count)*3600*(1+1e-9) {
			t.Fatalf("snapshot %d: count %d, sum %g s: a mean of %v", i, s.Count, s.SumSeconds,
				time.Duration(s.SumSeconds/float64(max(s.Count, 1))*float64(time.Second)))
		}
	}
}

// TestAnswersHaveNoLag: a peer's answer to a record it rejected (a
// tombstone of node 0, stamped just above a watermark) has no writer and
// no write time, and is not counted in the lag histograms; a peer's write
// is (the answers, applied on every member they passed through, made lags
// of up to the horizon: found by review).
func TestAnswersHaveNoLag(t *testing.T) {
	s, err := store.New(store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := lagReplica{Store: s, deltas: new(lagHistogram), repairs: new(lagHistogram)}
	now := time.Now().UnixNano()
	answer := crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: now - int64(time.Hour), Logical: 1}}
	if o := r.Apply(answer, false, now); o != crdt.Applied {
		t.Fatalf("the answer: %v", o)
	}
	if n := r.repairs.snapshot().Count; n != 0 {
		t.Fatalf("an answer counted %d lags", n)
	}
	write := crdt.Record{Key: "k2", Value: []byte("v"), Time: crdt.Timestamp{Wall: now - int64(time.Second), Node: 7}}
	if o := r.Apply(write, false, now); o != crdt.Applied || r.repairs.snapshot().Count != 1 {
		t.Fatalf("a peer's write: %v, %d lags counted", o, r.repairs.snapshot().Count)
	}
}
