package transport

import (
	"math"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestSessionTimeoutDefaultSaturates: the default SessionTimeout is four
// AntiEntropyIntervals, at least 2 s. An interval of a "forever"
// (time.Duration(math.MaxInt64)) or of a century made the product wrap
// below zero, and the default fell to its 2 s floor: shorter than the
// default interval's 4 s, and the longer the interval asked for, the
// shorter the timeout a session got.
func TestSessionTimeoutDefaultSaturates(t *testing.T) {
	for _, aei := range []time.Duration{time.Duration(math.MaxInt64), 100 * 365 * 24 * time.Hour, 1<<61 + 1} {
		clock := crdt.NewHLC(1, crdt.NewManualTime(0).Now, 0)
		n, err := New(Config{Name: "a", Replica: newMemReplica(8), Clock: clock, AntiEntropyInterval: aei})
		if err != nil {
			t.Fatal(err)
		}
		if got := n.cfg.SessionTimeout; got < 4*time.Hour {
			t.Errorf("AntiEntropyInterval %v: default SessionTimeout %v, want four intervals (saturated)", aei, got)
		}
	}
}
