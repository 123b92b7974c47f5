package proptest

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// TestARestoreAfterTheClockWasPushedAheadTakesItsFiles: a member's clock
// is pushed to the edge of its drift bound (what taking the adversary's
// record stamped now + MaxDrift - 1 ms does: receiveDelta's UpdateAll),
// it reports a cut, and its clock floor follows the cut. It crashes, a
// skew action sets its clock back within MaxSkew, and it is restored
// from its snapshot. The floor followed the clock to the drift's edge,
// more than MaxDrift ahead of the clock set back, where a Cache refuses
// its files (ErrAheadOfClock), and the replica's Restore failed the run
// (found by review). No cut passes the physical clock by more than the
// stable margin now (store.CutNear), so the floor stays within it, and
// the member restarts from its files. (A floor that far ahead still
// makes restoreFrom start the member without files, as the operator of
// a Cache refused would: the "restart behind" action steps a clock back
// further.)
func TestARestoreAfterTheClockWasPushedAheadTakesItsFiles(t *testing.T) {
	rapid.Check(t, scripted(StoreFactory, func(s script) {
		s.begin()
		r := s.h.c.Replica(1).(*StoreReplica)
		if err := r.clock.Update(crdt.Timestamp{Wall: s.h.c.Phys(1) + int64(s.h.cfg.MaxDrift) - int64(time.Millisecond), Node: adversaryID}); err != nil {
			s.t.Fatal(err)
		}
		s.round()
		if f, limit := r.Floor(), crdt.AddSat(s.h.c.Phys(1), r.skew); f > limit {
			s.t.Fatalf("n1's floor is %v ahead of its clock, past the stable margin %v", time.Duration(f-s.h.c.Phys(1)), time.Duration(r.skew))
		}
		s.h.snapshot(s.t, 1)
		s.crash(1)
		s.h.c.SetSkew(1, -s.h.cfg.MaxSkew) // the skew action, within MaxSkew
		if s.h.floorAhead(1) {
			s.t.Fatalf("n1's floor is more than the drift ahead of its clock set back by MaxSkew")
		}
		s.h.restoreFrom(s.t, 1)
		s.h.check(s.t)
	}))
}
