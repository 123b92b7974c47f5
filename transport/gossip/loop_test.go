package gossip

import (
	"testing"
	"time"
)

// TestWaitOnAReachedDeadline: a deadline the Tick just before had reached
// (as the start of the next anti-entropy session is while a slow one runs)
// makes the loop wait minWait, not zero: waiting zero spun the loop for as
// long as the session lasted.
func TestWaitOnAReachedDeadline(t *testing.T) {
	r := &Replicator{}
	now := time.Now().UnixNano()
	for _, next := range []int64{now, now - int64(time.Second)} {
		if got := r.wait(now, next); got != minWait {
			t.Fatalf("wait for a deadline %v before the tick: %v, want %v", time.Duration(now-next), got, minWait)
		}
	}
}
