package transport

import (
	"testing"

	"github.com/bcache-go/bcache/transport/wire"
)

// TestReaskedLeavesStayAscending: a member far behind asks about its
// differing leaves in chunks, two in flight, and asks about a chunk again
// when an answer was cut short. A chunk asked about again goes back in
// front of the leaves not asked about yet; when its versions (grown with
// the records that came) outgrew a frame, only part of it went, and the
// other chunk in flight, asked about again in turn, went in front of the
// part left: the next Versions listed leaves out of order, which the
// codec refuses, at every retry, and the session never completed.
func TestReaskedLeavesStayAscending(t *testing.T) {
	for _, tc := range []struct{ frame, leaves, repair, keys int }{
		{2300, 16, 1200, 3000}, {2300, 8, 1000, 2000},
	} {
		cfg := Config{Limits: wire.Limits{MaxFrame: tc.frame}, LeavesPerStep: tc.leaves, MaxRepairBytes: tc.repair}
		n := newTestNet(t, 8, cfg, "a", "b")
		n.holding("b", 2, tc.keys)
		a := n.nodes["a"]
		for i := 0; i < 20 && len(n.reps["a"].recs) < tc.keys; i++ {
			n.pump("a", a.StartSession("b", n.now.Now()))
			if e := a.Stats().EncodeErrors; e != 0 {
				t.Fatalf("%+v: session %d: a failed to encode %d frames (holding %d of %d records)", tc, i, e, len(n.reps["a"].recs), tc.keys)
			}
		}
		if got := len(n.reps["a"].recs); got != tc.keys {
			t.Fatalf("%+v: a holds %d of %d records after 20 sessions", tc, got, tc.keys)
		}
	}
}
