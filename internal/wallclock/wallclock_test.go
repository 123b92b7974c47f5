package wallclock

import (
	"testing"
	"time"
)

// TestNowTracksWallClock checks the source against time.Now before and
// after a forced re-anchoring; the tolerance covers scheduling, not logic.
func TestNowTracksWallClock(t *testing.T) {
	s := New()
	for range 2 {
		before := time.Now().UnixNano()
		got := s.Now()
		after := time.Now().UnixNano()
		if got < before-int64(time.Millisecond) || got > after+int64(time.Millisecond) {
			t.Fatalf("Now = %d, wall clock between %d and %d", got, before, after)
		}
		s.a.Store(&anchor{wall: 0, mono: time.Now().Add(-2 * reanchorEvery)}) // an old, wrong anchor
	}
}

func BenchmarkNow(b *testing.B) {
	s := New()
	for b.Loop() {
		s.Now()
	}
}
