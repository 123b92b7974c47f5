package bcache

import (
	"testing"
	"time"
)

// TestMarksBackoffSpansTwoMinutes: a member asks again after each answer
// that was not complete, later each time, up to a minute apart, so that
// its maxIncompleteMarks answers span about two minutes at the default
// collection interval: long enough for a peer that joined a moment
// before to have its own answer, even after a silent peer's timeout.
func TestMarksBackoffSpansTwoMinutes(t *testing.T) {
	var total time.Duration
	for n := int32(1); n < maxIncompleteMarks; n++ {
		d := marksBackoff(n, DefaultGCInterval)
		if d <= 0 || d > time.Minute || n > 1 && d < marksBackoff(n-1, DefaultGCInterval) {
			t.Fatalf("backoff after answer %d: %v", n, d)
		}
		total += d
	}
	if total < 2*time.Minute || total > 3*time.Minute {
		t.Fatalf("%d answers span %v, want about two minutes", maxIncompleteMarks, total)
	}
	if d := marksBackoff(1000, time.Hour); d != time.Minute {
		t.Fatalf("backoff of a long interval: %v, want a minute at most", d)
	}
}

// TestMarksBackoffOfAForeverInterval: a GCInterval long enough that its
// doubling wraps (4.5 years and more, "forever") still waits a minute:
// doubled six times, 2^57 ns went below zero, and the member asked again
// at once.
func TestMarksBackoffOfAForeverInterval(t *testing.T) {
	for _, interval := range []time.Duration{1 << 57, time.Duration(1<<63 - 1)} {
		for n := int32(0); n < maxIncompleteMarks; n++ {
			if d := marksBackoff(n, interval); d != time.Minute {
				t.Fatalf("GCInterval %v, answer %d: backoff %v, want a minute", interval, n, d)
			}
		}
	}
}
