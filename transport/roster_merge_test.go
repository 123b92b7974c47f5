package transport

import "testing"

// A member b that leaves, comes back as a new incarnation and leaves
// again within retireAfter of its first leave has the second leave
// merged into the first's entry, which keeps the first incarnation's id.
// A session of the second incarnation that started before its leave and
// completes after it is then not recognized as the ended incarnation's
// (roster.completed looks for an entry of its id, or of none): b is put
// back among the members alive, then failed when the view drops it, and
// holds the bound at its cut for the failed timeout, where its own entry
// retires once everyone has synced. retireAfter went from a
// SessionTimeout (a few seconds) to EndedFor (20 to 30 s): a leave, a
// rejoin and a leave within it is a quick rolling restart.
func TestASessionOfALeaverMergedIntoAnEarlierLeaveIsStillItsOwn(t *testing.T) {
	r := new(roster)
	r.init(10, 1_000_000, 300) // margin, failed timeout, retire after (EndedFor)
	r.view(members("b", "c"), 0)
	r.completed("b", cut(10, 2), 10, 10, 10) // b's first incarnation, id 2
	r.completed("c", cut(10, 3), 10, 10, 10)
	r.left("b", false, 100)
	r.view(members("c"), 101)
	r.view(members("b", "c"), 120)               // b back: a new incarnation
	r.completed("b", cut(120, 4), 120, 120, 125) // id 4
	r.completed("c", cut(120, 3), 120, 120, 125)
	// A session of b's (id 4) starts at 150; b leaves at 160, within
	// retireAfter of its first leave; the session completes at 170.
	r.left("b", false, 160)
	r.completed("b", cut(150, 4), 150, 150, 170)
	r.view(members("c"), 171)
	if in := r.current["b"]; in != nil {
		t.Errorf("the leaver's session, started before its leave and completed after, put b back (state %d): it holds the bound at its cut for the failed timeout", in.state)
	}
	// Everyone synced past the leave and retireAfter: the bound moves on.
	r.completed("c", cut(600, 3), 600, 600, 600)
	if got := r.stable(600); got < 500 {
		t.Errorf("stable %d at 600, everyone synced after the leaves: b's stale session holds it", got)
	}
}
