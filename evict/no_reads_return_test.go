package evict

import (
	"maps"
	"slices"
	"testing"
)

// TestNoReadsEvictsOldestFirstAfterAReturn (found by review): with no reads at all, a key
// written again after its delete (Returned, admitted to the main queue by
// the sketch) must not turn the first fill's rule on: the values written
// once each still go in the order they came.
func TestNoReadsEvictsOldestFirstAfterAReturn(t *testing.T) {
	b := newBounded(10)
	for _, k := range names("k", 0, 10) {
		b.set(k, false)
	}
	b.del("k0")
	b.set("k0", false) // Returned: the main queue, unread
	for _, k := range names("n", 0, 100) {
		b.set(k, false)
	}
	held := slices.Sorted(maps.Keys(b.entries))
	for _, k := range names("k", 1, 10) {
		if b.entries[k] != nil {
			t.Fatalf("held %v: %s, written once and never read, outlived 100 newer values", held, k)
		}
	}
}
