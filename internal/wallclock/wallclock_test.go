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

// TestNowFollowsTheWallClockSoonAfterASuspend: an anchor taken before a
// suspend (its wall reading an hour behind the wall clock now, its
// monotonic reading a few milliseconds ago: the monotonic clock stood
// still while the machine slept) is used no longer than about a
// millisecond. Re-anchored every second, Now read an hour behind for up
// to a second after the machine woke.
func TestNowFollowsTheWallClockSoonAfterASuspend(t *testing.T) {
	s := New()
	now := time.Now()
	s.a.Store(&anchor{wall: now.Add(-time.Hour).UnixNano(), mono: now.Add(-5 * time.Millisecond)})
	if before, got := time.Now().UnixNano(), s.Now(); got < before-int64(time.Millisecond) {
		t.Fatalf("5 ms after waking from an hour's suspend, Now is %v behind the wall clock", time.Duration(before-got))
	}
}

func BenchmarkNow(b *testing.B) {
	s := New()
	for b.Loop() {
		s.Now()
	}
}
