package store

import (
	"strings"
	"testing"

	"github.com/bcache-go/bcache/internal/rapidfail"
)

// TestEvictionPropertyCatchesBrokenStores: the property of
// TestEvictionNeverServesWhatAnUnboundedStoreWouldNot, on a bounded store
// with one rule broken, finds a counterexample, and finds it with the
// check that the broken rule breaches: a variant caught by another check
// proves nothing about its own.
func TestEvictionPropertyCatchesBrokenStores(t *testing.T) {
	// The control: with the seed and budget the variants run with, the
	// property finds nothing wrong in the intact store (else a variant
	// passed on any spurious failure of the check it must fail). Its
	// 1,000 checks take half a second, 6 under the race detector, which
	// has nothing to find in them (one goroutine): skipped there.
	if !raceEnabled {
		if failure := rapidfail.Failure(t, "EvictShadow_intact", evictShadowProperty(intact)); failure != "" {
			t.Fatalf("the property failed the intact store: %s", failure)
		}
	}
	for _, tc := range []struct {
		name   string
		broken brokenRule
		want   string // in the report of the check that must catch it
	}{
		// Len and the bytes drift from what the maps hold: caught at
		// rapid's first check (seed 1).
		{"eviction_uncounted", evictUncounted, "the maps hold"},
		// A peer's answer of another version put on a stub: served
		// where the unbounded store serves the stub's version, or
		// nothing. A stub of this member's own eviction refuses a
		// value other than the one evicted (its fingerprint), a peer's
		// stub refuses none: caught at rapid's 30th check (seed 1), a
		// peer's stub filled with another version's value. The
		// property drove refills of the stub's version alone, and
		// passed it in 1,000 checks.
		{"refill_of_any_version", refillAnyVersion, "bounded serves"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch failure := rapidfail.Failure(t, "EvictShadow_"+tc.name, evictShadowProperty(tc.broken)); {
			case failure == "":
				t.Fatal("the property passed the broken store")
			case !strings.Contains(failure, tc.want):
				t.Fatalf("the property caught the broken store, but not by the check that reports %q: %s", tc.want, failure)
			}
		})
	}
}
