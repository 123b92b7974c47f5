package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestSessionsGoOnAfterTheClockStepsBack: the host's physical time
// (internal/wallclock) follows steps of the system clock, backwards too.
// After a step back of an hour, a member must go on starting sessions at
// its interval: its next session, due at the old time plus the interval,
// must not wait for the clock to catch up.
func TestSessionsGoOnAfterTheClockStepsBack(t *testing.T) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Second}, "a", "b")
	a := n.nodes["a"]
	n.now.Advance(2 * time.Hour)
	n.pump("a", a.Tick(n.now.Now())) // a's session with b, an arrival
	if a.Stats().SessionsCompleted != 1 {
		t.Fatal("setup: a's first session did not complete")
	}
	n.now.Advance(-time.Hour) // NTP steps the system clock back
	n.reps["b"].recs["k"] = crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: n.now.Now(), Node: 2}}
	started := a.Stats().SessionsStarted
	for range 600 { // ten minutes, a Tick a second
		n.now.Advance(time.Second)
		n.pump("a", a.Tick(n.now.Now()))
	}
	_, repaired := n.reps["a"].recs["k"]
	if s := a.Stats(); s.SessionsStarted == started || !repaired {
		t.Fatalf("ten minutes after the clock stepped back an hour: %d sessions started (interval 1s), b's record repaired: %v; next deadline in %v",
			s.SessionsStarted-started, repaired, time.Duration(a.NextDeadline()-n.now.Now()))
	}
}

// TestADeltaGoesOutAfterTheClockStepsBack: with no FlushInterval a write to
// an idle member leaves at once; after a step back of the clock it must
// too, not wait until the clock is back at the time of the last flush.
func TestADeltaGoesOutAfterTheClockStepsBack(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b")
	n.now.Advance(2 * time.Hour)
	if out := n.write("a", "k1", "v"); len(out) == 0 {
		t.Fatal("setup: the first write was not sent at once")
	}
	n.now.Advance(-time.Hour)
	if out := n.write("a", "k2", "v"); len(out) == 0 {
		t.Fatalf("a write after the clock stepped back an hour is held, its flush due in %v", time.Duration(n.nodes["a"].out.due-n.now.Now()))
	}
}

// TestSmallStepsBackMoveNoTimer: a now behind the last by less than a
// second (a caller's read before it waited for the lock, the wall clock's
// re-anchoring to a slewed system clock) moves no timer: moved back at
// each, the next session crept earlier.
func TestSmallStepsBackMoveNoTimer(t *testing.T) {
	n := newTestNet(t, 8, Config{AntiEntropyInterval: time.Second}, "a", "b")
	a := n.nodes["a"]
	n.now.Advance(2 * time.Hour)
	n.pump("a", a.Tick(n.now.Now()))
	next := a.NextDeadline()
	for range 100 {
		a.Tick(n.now.Now() - int64(time.Millisecond))
		a.Tick(n.now.Now())
	}
	if got := a.NextDeadline(); got != next {
		t.Fatalf("the next deadline moved by %v after 100 steps back of 1 ms", time.Duration(got-next))
	}
}
