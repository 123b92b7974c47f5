package proptest

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// TestARestoreWithTheFloorAheadOfTheClockIsNoFailure: a member's clock
// is pushed to the edge of its drift bound (what taking the adversary's
// record stamped now + MaxDrift - 1 ms does: receiveDelta's UpdateAll),
// it reports a cut there, and its clock floor follows. It crashes, a
// skew action sets its clock back within MaxSkew, and it is restored
// from its snapshot: the floor is then more than MaxDrift ahead of its
// clock, where a Cache refuses its files (ErrAheadOfClock). The
// replica's Restore failed the run (the harness's restore actions took
// it for a failure); the member now starts without its files, as the
// "restart behind" action has it (found by review).
func TestARestoreWithTheFloorAheadOfTheClockIsNoFailure(t *testing.T) {
	rapid.Check(t, scripted(StoreFactory, func(s script) {
		s.begin()
		r := s.h.c.Replica(1).(*StoreReplica)
		if err := r.clock.Update(crdt.Timestamp{Wall: s.h.c.Phys(1) + int64(s.h.cfg.MaxDrift) - int64(time.Millisecond), Node: adversaryID}); err != nil {
			s.t.Fatal(err)
		}
		s.round()
		s.h.snapshot(s.t, 1)
		s.crash(1)
		s.h.c.SetSkew(1, -s.h.cfg.MaxSkew) // the skew action, within MaxSkew
		if !s.h.floorAhead(1) {
			s.t.Fatalf("the floor is not more than the drift ahead of n1's clock")
		}
		s.h.restoreFrom(s.t, 1)
		s.h.check(s.t)
	}))
}
