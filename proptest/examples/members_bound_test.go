package examples

import (
	"strings"
	"testing"

	"github.com/bcache-go/bcache/proptest"
)

// TestTooManyMembersAreRefused: a member count past what a run can hold
// is refused with an error naming it. MaxNodes was unbounded: rapid draws
// the top of its range often, a run of n members ends by syncing every
// pair of them (and gives each a view of n names at every fault), and
// CheckType of a Spec with MaxNodes 1<<20 ran for more than five minutes
// without a word (found by review; a run of 100 members takes about 0.4
// s, of 30 about 30 ms). Explore.Members and Config.MaxNodes alike.
func TestTooManyMembersAreRefused(t *testing.T) {
	huge := counterSpec(larger)
	huge.MaxNodes = 1 << 20
	// Exploration validates the Spec before anything else, and never uses
	// MaxNodes: without the bound it ran and passed.
	if _, err := proptest.Exploration(huge, nil, proptest.Explore{MaxTicks: -1}); err == nil || !strings.Contains(err.Error(), "MaxNodes") {
		t.Errorf("a Spec with MaxNodes 1<<20: %v, want an error naming MaxNodes", err)
	}
	// An operation the spec lacks is refused after the bounds: without
	// the bound on Members, that was the error.
	stray := []proptest.Scripted{{Member: 0, Op: proptest.Op{Name: "no such"}}}
	if _, err := proptest.Exploration(counterSpec(larger), stray, proptest.Explore{Members: 1 << 20}); err == nil || !strings.Contains(err.Error(), "Members") {
		t.Errorf("Explore.Members 1<<20: %v, want an error naming Members", err)
	}
	// A Config whose every action is disabled is refused after its member
	// bounds: without the bound, that was the error.
	cfg := proptest.Config{MaxNodes: 1 << 20, Disable: proptest.Actions()}
	if r := proptest.Counterexample(t, proptest.Property(cfg)); !strings.Contains(r, "MaxNodes") {
		t.Errorf("Config.MaxNodes 1<<20: %q, want an error naming MaxNodes", r)
	}
	// The bound itself runs.
	ok := counterSpec(larger)
	ok.MinNodes, ok.MaxNodes = 100, 100
	if _, err := proptest.Exploration(ok, nil, proptest.Explore{Members: 100, MaxTicks: -1}); err != nil {
		t.Errorf("100 members: %v", err)
	}
}
