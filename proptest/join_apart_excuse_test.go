package proptest

import (
	"testing"
	"time"
)

// TestModelExcusesNoLossAfterAnotherMembersCollection: the "join apart"
// seam as TestLeaverApartNeverSyncedWithKeepsItsWrite plays it, with a
// collection by n0 between the leaver's return from its snapshot and its
// first session. Counts stops at the restart (the Cluster sees no
// sessions), so that collection is taken for one that did not wait for
// the leaver; kept per writer, it excused n1's rejection of the
// leaver's write, though n1 had not collected since it counted the
// leaver (found by review). A collection by n1 itself in that window is
// still taken for a blind one: production waits until the session.
func TestModelExcusesNoLossAfterAnotherMembersCollection(t *testing.T) {
	s := newApartScene(t, 2)
	s.join(t)
	s.leave()
	c, h, live, cfg := s.c, s.h, s.live, s.cfg
	c.Advance(100 * time.Millisecond)
	for i := range 2 {
		h.collect(t, i)
	}
	if h.model.unknownTo(h, 1, live) {
		t.Fatalf("excused before the restore")
	}
	if err := c.RestartFrom(s.z, s.saved); err != nil {
		t.Fatal(err)
	}
	h.collect(t, 0) // one collection by n0, before any session with n2's return
	if h.model.unknownTo(h, 1, live) {
		t.Fatalf("the model excuses n1's loss of %v after one collection by n0 between n2's restore and its first session (Counts(0, n2's old incarnation) = %v)", live, c.Counts(0, live.Time.Node, cfg.FailedTimeout))
	}
}

// TestModelExcusesNoLossByAnUnrelatedCollector: a member that was down
// through the episode restarts and collects (it never had the leaver in
// its view, rightly blind) before the leaver's return: kept per writer,
// not per collector, that collection excused n1's rejection though n1
// counted the leaver the whole time (found by review).
func TestModelExcusesNoLossByAnUnrelatedCollector(t *testing.T) {
	s := newApartScene(t, 3)
	s.c.Crash(2)
	s.join(t)
	s.leave()
	c, h, live, cfg := s.c, s.h, s.live, s.cfg
	c.Advance(100 * time.Millisecond)
	if err := c.Restart(2); err != nil {
		t.Fatal(err)
	}
	h.collect(t, 2)
	if !c.Counts(1, live.Time.Node, cfg.FailedTimeout) {
		t.Fatal("n1 does not count n3")
	}
	if h.model.unknownTo(h, 1, live) {
		t.Fatalf("the model excuses n1's loss of %v: n1 counts its writer, only n2 (which never saw it) collected blind", live)
	}
}
