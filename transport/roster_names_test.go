package transport

import (
	"fmt"
	"testing"
)

// TestEndedIncarnationsOfManyNamesAreBounded: while a member in the view
// has not synced since, no ended incarnation retires; a member holding
// the key that joins and leaves under a fresh name each time (or
// announces such members) added one entry a name, kept for as long as
// that went on, walked by every bound and written to the members file.
// The entries stay bounded in all, the bound below every leaver's cut.
func TestEndedIncarnationsOfManyNamesAreBounded(t *testing.T) {
	var r roster
	r.init(10, 1_000_000, 50) // margin, failed timeout, retire after
	r.view(members("v"), 0)
	r.completed("v", cut(5, 99), 5, 0, 0) // v synced once, and never since
	const leavers = 20_000
	for k := int64(1); k <= leavers; k++ {
		name := fmt.Sprint("x", k)
		now := 10 * k
		wall := now
		if k == 1 || k == leavers {
			wall = k % 2 // the first and the last report the lowest cuts, 1 and 0
		}
		r.view(members("v", name), now)
		r.completed(name, cut(wall, 0), wall, now, now)
		r.left(name, k%2 == 0, now+1) // every other one keeps its state
		r.view(members("v"), now+1)
	}
	if len(r.ended) > maxEnded {
		t.Fatalf("%d ended incarnations held, bound %d", len(r.ended), maxEnded)
	}
	if got := r.coverage(10*leavers + 10); got > 0 {
		t.Fatalf("coverage %d, above the last leaver's cut 0", got)
	}
	// v syncs: those that kept nothing retire, those that keep their state
	// wait for their names or the failed timeout (the last among them).
	r.completed("v", cut(300_000, 99), 300_000, 300_000, 300_000)
	if got := r.coverage(300_000); got > 0 {
		t.Fatalf("coverage %d once v synced, above the last leaver's cut 0: it keeps its state", got)
	}
	r.completed("v", cut(1_300_000, 99), 1_300_000, 1_300_000, 1_300_000)
	if got := r.coverage(1_300_000); got != 1_300_000 || len(r.ended) != 0 {
		t.Fatalf("coverage %d past the failed timeout, want v's cut 1300000 (%d ended held)", got, len(r.ended))
	}
}
