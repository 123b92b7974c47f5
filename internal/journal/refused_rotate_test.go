package journal

import (
	"os"
	"testing"
)

// TestAppendsRefusedWhileRotateStartsItsSegmentAreCoveredByItsSnapshot:
// appends refused while a Rotate (a snapshot's) restarts a broken log are
// applied before Rotate returns, so the snapshot that follows holds them:
// its RemoveBefore must let the log stop failing. Taken by the next frame,
// they were charged to the segment Rotate started, and every append
// returned an error until a second snapshot (with SnapshotInterval
// negative, until the log had grown past twice the snapshot).
func TestAppendsRefusedWhileRotateStartsItsSegmentAreCoveredByItsSnapshot(t *testing.T) {
	l, _, eio, try, _ := brokenLog(t)
	opens := 0
	underWriter(l, func() {
		openBufferedFile = func(p string) (*os.File, error) {
			opens++
			if opens == 1 { // Rotate's flush tries a new segment: an append comes meanwhile
				if err := try(2); err == nil {
					t.Error("an append to a broken log returned nil")
				}
				return nil, eio
			}
			return openBuffered(p) // the disk is well again: Rotate's own new segment
		}
	})
	n, err := l.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if opens < 2 {
		t.Fatalf("%d segment opens, want 2", opens)
	}
	// The snapshot, taken now, holds record 2: it was applied before its
	// append was refused.
	if err := l.RemoveBefore(n); err != nil {
		t.Fatal(err)
	}
	mustFlush(t, l)
	if err := try(3); err != nil {
		t.Fatalf("an append once a snapshot covers every refused write: %v", err)
	}
}
