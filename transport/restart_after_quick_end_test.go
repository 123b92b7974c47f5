package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestRestartCompletedAfterAQuickEndIsCounted: b's first incarnation ends
// before any session with it completed (an ended entry with no node id);
// b comes back (id 1) and syncs; within retireAfter of the first end it
// restarts (id 2), and a session of the new process completes here,
// which is how the roster learns of the restart. The end of id 1 joins
// the entry of the first end (no id), whose end moves to now: the late
// completion check then took id 2's session for one of that ended
// incarnation (no id, ended after the session began) and dropped it,
// leaving id 1, ended, as b's current incarnation. Every later session of
// id 2 did the same: the bound stayed at id 1's cut for good.
func TestRestartCompletedAfterAQuickEndIsCounted(t *testing.T) {
	sec := int64(time.Second)
	var r roster
	r.init(0, int64(time.Hour), 4*sec)
	now := 1000 * sec
	r.view(map[string]bool{"b": true}, now)
	now += sec / 10
	r.left("b", false, now) // b's first incarnation, never synced with
	now += sec / 10
	r.view(map[string]bool{"b": true}, now)
	now += sec / 10
	r.completed("b", crdt.Timestamp{Wall: now, Node: 1}, now, now, now)
	firstCut := now
	for i := range 20 {
		now += sec / 10
		start := now
		now += sec / 100
		r.completed("b", crdt.Timestamp{Wall: start, Node: 2}, start, start, now)
		if i == 0 {
			if in := r.current["b"]; in == nil || in.id != 2 {
				t.Errorf("after the restarted process's first session, b's current incarnation is %+v, want id 2", in)
			}
		}
	}
	now += 10 * sec
	r.completed("b", crdt.Timestamp{Wall: now, Node: 2}, now, now, now)
	if st := r.stable(now); st <= firstCut {
		t.Fatalf("stable bound %v: still at or below id 1's cut %v 10 s after b's restart and 21 sessions of the new process (current %+v, ended %d)",
			st, firstCut, r.current["b"], len(r.ended))
	}
}
