package crdt

import (
	"testing"
	"time"
)

// TestAClockBeforeTheEpochStampsItsPhysicalTime: a clock whose physical
// source reads before 1970 (a machine whose clock was reset, a
// simulation's ManualTime; records and watermarks may be stamped before
// the epoch) stamps that time, not the epoch: stamped at the epoch, its
// writes ran ahead of physical time by the whole distance, and a peer
// reading the same physical time refused them as drifted.
func TestAClockBeforeTheEpochStampsItsPhysicalTime(t *testing.T) {
	src := NewManualTime(-int64(time.Hour))
	c := NewHLC(1, src.Now, time.Second)
	peer := NewHLC(2, src.Now, time.Second)
	got := c.Now()
	if got.Wall != src.Now() {
		t.Errorf("Now at physical %d = %v (wall %d), want the physical time", src.Now(), got, got.Wall)
	}
	if err := peer.Update(got); err != nil {
		t.Errorf("a peer reading the same physical time refused the stamp: %v", err)
	}
	if l := NewHLC(3, src.Now, time.Second).Last(); l.Wall > src.Now() {
		t.Errorf("a fresh clock's Last %v is ahead of physical time %d", l, src.Now())
	}
}
