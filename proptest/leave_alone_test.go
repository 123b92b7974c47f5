package proptest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestALateDeltaOfALeaverToTheMemberItLeftAloneIsKept: in a cluster of
// two, n1 writes k, its delta to n0 held in flight, and leaves keeping
// nothing (it never saved a snapshot: a Cache without one); n0, alone
// in its view, deletes k2 (a key of k's bucket) and collects every
// second; the delta reaches n0 15 s after the leave, within EndedFor
// (30 s) and the harness's LateFrames (20 s): k must be kept. The roster retired an ended
// incarnation at once when no member was alive in the view (everyone had
// synced since, vacuously): n0's stable bound jumped to its own clock,
// k2's delete was collected early, and k's delta met the watermark it
// raised (found by review). Members that count an ended incarnation for
// a millisecond (a SessionTimeout, then) lose k the same way, and the
// model reports it: the scenario shows what it claims.
func TestALateDeltaOfALeaverToTheMemberItLeftAloneIsKept(t *testing.T) {
	if f := lateDeltaOfALeaver(t, 0); f != "" {
		t.Fatalf("production config: %s", f)
	}
	if f := lateDeltaOfALeaver(t, time.Millisecond); !strings.Contains(f, "lost") {
		t.Fatalf("an ended incarnation counted for a millisecond: the model reports no loss (%q): the scenario shows nothing", f)
	}
}

// lateDeltaOfALeaver plays the scenario above with the members'
// transport.Config.EndedFor (0: the default) and returns the model's
// verdict on the converged cluster ("" when it passes).
func lateDeltaOfALeaver(t *testing.T, endedFor time.Duration) string {
	t.Helper()
	k, k2 := "k", sameBucket("k")
	cfg := DefaultStoreConfig()
	cfg.Vary = nil
	cfg.Transport.EndedFor = endedFor
	c, err := NewCluster(2, StoreFactory(cfg), start)
	if err != nil {
		t.Fatal(err)
	}
	hcfg := Config{Keys: []string{k, k2}, Horizon: 10 * time.Minute} // the horizon excuses nothing here
	hcfg.fill()
	h := harnessOver(hcfg, c)
	sc := &scenario{t: t, c: c}
	h.model.write(c.Set(0, k2, []byte("x"), 0))
	sc.rounds(15)
	c.Advance(time.Millisecond)
	w := c.Set(1, k, []byte("written before the leave"), 0)
	h.model.write(w)
	sc.holdDelta("n1", "n0")
	h.model.crashed(h, 1) // as the harness's leave does
	h.forgetCalls(1)
	c.Leave(1)
	c.Advance(time.Millisecond)
	h.model.write(c.Delete(0, k2))
	sc.rounds(15) // past the stable margin (11 s): k2's delete is collected early if the bound is n0's own
	sc.deliverHeld()
	if holds := slices.ContainsFunc(c.Replica(0).Records(), func(r crdt.Record) bool { return r.Version() == w.Version() }); !holds {
		t.Logf("EndedFor %v: n0 rejected k's late delta", endedFor)
	}
	// n1 comes back, so that the run ends with the cluster whole.
	if err := c.Restart(1); err != nil {
		t.Fatal(err)
	}
	return sc.verdict(h)
}
