package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestTheLastStepRefusedByTheBudgetIsSentAgainInTime: a session whose
// last two Versions are in flight together (versionsWindow), the one
// before last answered only at its third retry (the responder's budget
// in debt for most of listingPause) and the last refused right after it
// (the debt again), must send the last one again before its timeout.
// The reply moved the session's deadline to a timeout after it, but not
// its retry, doubled at each retry to 8 first retries (the timeout, at
// or below 4 s, the default): the last step went again exactly at the
// deadline, so the session timed out before its answer could come, at
// every session that ended on such steps.
func TestTheLastStepRefusedByTheBudgetIsSentAgainInTime(t *testing.T) {
	const bits = 4
	cfg := Config{SessionTimeout: 400 * time.Millisecond, AntiEntropyInterval: time.Hour, LeavesPerStep: 1}
	n := newTestNet(t, bits, cfg, "a", "b")
	a, b := n.nodes["a"], n.nodes["b"]
	// Three leaves in three steps, each with one record newer on b: the
	// first's listing (its versions and its records, 120,000) puts b's
	// budget of a's in debt for most of the pause, the second's (20,000)
	// in debt again.
	for i, leaf := range []struct {
		leaf uint32
		size int
	}{{3, 60_000}, {7, 10_000}, {11, 2_000}} {
		for j, k := range keysOfLeaf("tail:", leaf.leaf, bits, leaf.size) {
			r := crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: 100, Node: 1}}
			n.reps["a"].recs[k] = r
			if j == i {
				r.Time.Wall++
			}
			n.reps["b"].recs[k] = r
		}
	}
	before, bBefore, st, bst := sessionToEnd(n, a, b, 400)
	t.Logf("%d listings refused, %d steps sent again", bst.ListingsRefused-bBefore.ListingsRefused, st.StepsRetried-before.StepsRetried)
	if bst.ListingsRefused == bBefore.ListingsRefused {
		t.Fatal("no listing refused: the budget was not reached")
	}
	if st.SessionsCompleted != before.SessionsCompleted+1 || st.SessionsTimedOut != before.SessionsTimedOut {
		t.Errorf("the session did not complete (%d timed out)", st.SessionsTimedOut-before.SessionsTimedOut)
	}
}

// TestAListingBudgetCreditsAFarLaterReadingWithoutOverflow: the credit
// a budget in debt gains between two readings of the clock is taken over
// a saturated difference: counted as now - at, a gap past 2^63 ns (a
// reading far back, then one far ahead) wrapped negative, took the
// budget deeper into debt, and every later Versions of the peer was
// refused.
func TestAListingBudgetCreditsAFarLaterReadingWithoutOverflow(t *testing.T) {
	n := newTestNet(t, 4, Config{}, "a", "b")
	b := n.nodes["b"]
	const early, late = -5_000_000_000_000_000_000, 5_000_000_000_000_000_000
	if !b.listingAllowed("a", early) {
		t.Fatal("a fresh budget refused")
	}
	b.chargeListing("a", 10*listingRate, early)
	if b.listingAllowed("a", early) {
		t.Fatal("a budget in debt allowed a listing")
	}
	if !b.listingAllowed("a", late) {
		t.Errorf("a budget in debt since %d still refuses at %d: left %d", int64(early), int64(late), b.ae.listing["a"].left)
	}
}
