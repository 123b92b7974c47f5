package proptest

import (
	"testing"

	"github.com/bcache-go/bcache/internal/rapidfail"
	"pgregory.net/rapid"
)

// Counterexample runs prop as rapid.Check does, with a fixed seed and
// budget (seed 1, 1,000 runs of up to 100 steps, no fail file read or
// written), so that whether it finds a counterexample is the same on every
// run, and returns rapid's report
// of the counterexample it found (its first message: what the property
// said), or "" if it found none. The counterexample is shrunk for 50 ms
// of the machine's time: how far it shrank, and so the details of the
// report (members, values, stamps), may differ from one run to the next
// (under -count 2, or -race, the same seed reported other members and
// stamps: found by review); test which check caught it, not the
// details. The failure is not reported to t. It is
// for the test of a deliberately broken variant, which a property must
// catch to show that it can fail at all:
//
//	if proptest.Counterexample(t, proptest.TypeProperty(brokenSpec)) == "" {
//		t.Fatal("the broken variant passed")
//	}
//
// It sets rapid's flags while it runs (restored when it returns), and
// replays no fail file: tests that use it must not run in parallel with
// other rapid tests.
func Counterexample(t *testing.T, prop func(*rapid.T)) string {
	t.Helper()
	// A name of its own: under the test's, rapid replayed the fail files a
	// rapid.Check of the test had left (found by review).
	return rapidfail.Failure(t, t.Name()+"#counterexample", prop)
}
