package crdt

import (
	"math"
	"testing"
	"time"
)

// TestUpdateNeverCarriesPastTheDrift: whatever remote stamp Update takes,
// the next Now is at most MaxDrift ahead of physical time (a stamp at the
// bound with the last counter carried one nanosecond past it).
func TestUpdateNeverCarriesPastTheDrift(t *testing.T) {
	pt := NewManualTime(1_000_000_000)
	c := NewHLC(1, pt.Now, time.Second)
	for _, logical := range []uint32{0, math.MaxUint32 - 1, math.MaxUint32} {
		_ = c.Update(Timestamp{Wall: pt.Now() + int64(time.Second), Logical: logical, Node: 2})
		if ahead := c.Now().Wall - pt.Now(); ahead > int64(time.Second) {
			t.Fatalf("after a remote stamp at the bound, logical %d: Now is %d ns ahead, drift %v", logical, ahead, time.Second)
		}
	}
}
