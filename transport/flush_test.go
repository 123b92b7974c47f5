package transport

import (
	"math"
	"testing"
	"time"
)

// TestALongFlushIntervalDoesNotWrap: a write made while the
// node is busy waits until one FlushInterval after the last flush, a time
// sum that wrapped for an interval past the end of Unix nanosecond time
// (time.Duration(math.MaxInt64), the common "forever"): the deadline fell
// before now, and every busy write went at once, unbatched.
func TestALongFlushIntervalDoesNotWrap(t *testing.T) {
	n := newTestNet(t, 8, Config{FlushInterval: time.Duration(math.MaxInt64), AntiEntropyInterval: time.Hour}, "a", "b")
	n.now.Set(1_750_000_000_000_000_000) // 2025
	n.nodes["a"].Tick(n.now.Now())
	if out := n.write("a", "k", "1"); len(out) != 1 {
		t.Fatalf("idle write sent %d frames, want 1", len(out))
	}
	n.now.Advance(time.Millisecond)
	if out := n.write("a", "k", "2"); len(out) != 0 {
		t.Fatalf("a busy write sent %d frames at once: its deadline, one FlushInterval after the last flush, wrapped to %d", len(out), n.nodes["a"].out.due)
	}
}
