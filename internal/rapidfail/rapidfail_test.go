package rapidfail

import (
	"testing"

	"pgregory.net/rapid"
)

// TestARunOfInvalidInputsIsNoCounterexample: a property that finds no
// valid input (every run skipped: a broken variant whose states the
// property rejects, say) has no counterexample, and Fails must say so.
// rapid reports "only generated 0 valid tests" through Errorf, as it
// reports a counterexample, and Fails took it for one: the broken variant
// was "caught" by a property that never checked anything.
func TestARunOfInvalidInputsIsNoCounterexample(t *testing.T) {
	if msg := Failure(t, "AllInvalid", func(rt *rapid.T) {
		rapid.Int().Draw(rt, "n")
		rt.Skip("never a valid input")
	}); msg != "" {
		t.Fatalf("Failure = %q for a property that never ran a check, want none", msg)
	}
}

// TestACounterexampleIsReported is the control: a property that fails
// has its counterexample found.
func TestACounterexampleIsReported(t *testing.T) {
	if !Fails(t, "AlwaysFails", func(rt *rapid.T) {
		if n := rapid.IntRange(0, 10).Draw(rt, "n"); n >= 0 {
			rt.Fatalf("n = %d", n)
		}
	}) {
		t.Fatal("no counterexample found for a property that always fails")
	}
}
