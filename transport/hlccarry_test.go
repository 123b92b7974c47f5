package transport

import (
	"math"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestPeerStampAtTheDriftBoundDoesNotCarryPastIt: a record a peer stamps
// exactly MaxClockDrift ahead, with the highest logical counter, passes
// the drift check; the member's next stamp then carries to one
// nanosecond past the bound, and a member whose clock reads the same
// refuses the member's own write (and its cut), though both clocks agree.
func TestPeerStampAtTheDriftBoundDoesNotCarryPastIt(t *testing.T) {
	n := newTestNet(t, 8, Config{}, "a", "b", "c")
	a := n.nodes["a"]
	drift := int64(a.cfg.Clock.MaxDrift())
	forged := &wire.Direct{OriginID: 99, Records: []crdt.Record{{Key: "x", Value: []byte("v"),
		Time: crdt.Timestamp{Wall: n.now.Now() + drift, Logical: math.MaxUint32, Node: 99}}}}
	if _, err := a.Receive("c", encode(t, forged), n.now.Now()); err != nil {
		t.Fatal(err)
	}
	if ahead := a.cfg.Clock.Now().Wall - a.cfg.Clock.Physical(); ahead > drift {
		t.Errorf("a's clock stamps %d ns ahead of its physical time, drift bound %d", ahead, drift)
	}
	n.pump("a", n.write("a", "k", "v"))
	if _, ok := n.reps["b"].recs["k"]; !ok {
		t.Errorf("b refused a's write (ClockDriftRejects %d), its clock reading the same as a's", n.nodes["b"].Stats().ClockDriftRejects)
	}
}
