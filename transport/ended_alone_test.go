package transport

import "testing"

// TestEndedIncarnationCountsForEndedForWithNoOneElseInTheView: a member
// whose only peer leaves (a cluster of two; or of three with the third
// lost) goes on counting the leaver for retireAfter (EndedFor): a delta
// of the leaver's still in flight to it must not meet a watermark raised
// past it. With no member alive in the view, "every member has synced
// since" held at once, and the leaver retired on the spot: the bound
// jumped to the node's own clock less the margin.
func TestEndedIncarnationCountsForEndedForWithNoOneElseInTheView(t *testing.T) {
	for _, keeps := range []bool{false, true} {
		r := newRoster() // margin 10, failed timeout 1000, retire after 50
		r.view(members("b"), 0)
		r.completed("b", cut(100, 2), 100, 100, 100)
		r.left("b", keeps, 200)
		r.view(members(), 200)
		if got := r.stable(201); got != 90 {
			t.Errorf("keeps %v: b left 1 ago, no one else in the view: stable %d, want b's bound 90 until 250", keeps, got)
		}
		if got := r.stable(251); !keeps && got != 241 {
			t.Errorf("b left retireAfter ago, keeping nothing: stable %d, want this node's own 241", got)
		}
	}
	// The same with a third member lost (failed, not alive).
	r := newRoster()
	r.view(members("b", "c"), 0)
	r.completed("b", cut(100, 2), 100, 100, 100)
	r.completed("c", cut(180, 3), 180, 180, 190)
	r.view(members("b"), 195) // c lost
	r.left("b", false, 200)
	r.view(members(), 200)
	if got := r.stable(201); got != 90 {
		t.Errorf("b left 1 ago, c lost: stable %d, want b's bound 90 until 250", got)
	}
}
