package bcache

import (
	"errors"
	"io"
	"testing"
)

// TestAFirstCutLagsWhileTheFloorCannotBeWritten pins the limit of
// raiseFloorNow (found by review): a member whose floor cannot be written
// (a disk full or read-only: every write fails) reports its first cut at
// its last life's floor, an hour old here, and its peer holds it there,
// with its stable bound and the watermarks a newcomer adopts (see
// startFloor). No cut passes the floor on disk: the lag is the price of
// that rule, and the README says so. (A write slower than floorWait does
// the same, for as long as it takes.)
func TestAFirstCutLagsWhileTheFloorCannotBeWritten(t *testing.T) {
	write := writeFloorFile
	t.Cleanup(func() { writeFloorFile = write }) // after a's Close, which firstCutAfterAnHour registers later
	writeFloorFile = func(string, func(io.Writer) error) error { return errors.New("disk full") }
	a, _, old, start, cut := firstCutAfterAnHour(t)
	if cut > old {
		t.Fatalf("b's first cut of a %d passes the floor on disk %d", cut, old)
	}
	if cut >= start {
		t.Fatalf("b's first cut of a is past a's start, though no floor could be written")
	}
	if n := a.Stats().FloorErrors; n == 0 {
		t.Fatalf("FloorErrors = 0 after the floor's writes failed")
	}
}
