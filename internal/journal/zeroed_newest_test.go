package journal

import (
	"os"
	"testing"
)

// TestZeroedNewestSegmentIsDamage: a newest segment written through the
// page cache, its header and frames synced, that reads back as zeros
// whole (a file whose length reached the disk and not its blocks, a
// device that lost them) is damage: its length is neither a header's
// (a buffered creation cut short) nor a block's, or whole sectors of one
// (a direct one). Read took it for a torn creation, dropping its
// acknowledged records with a warning, and Open removed it.
func TestZeroedNewestSegmentIsDamage(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		l, path := open(t, EveryWrite)
		appendAll(t, l, 0, 2)
		n := uint64(1)
		if rotate {
			mustRotate(t, l)
			appendAll(t, l, 2, 5)
			n = 2
		}
		l.Close(false)
		seg, b := segmentBytes(t, path, n)
		if creationLen(len(b)) {
			t.Fatalf("segment of %d bytes", len(b))
		}
		if err := os.WriteFile(seg, make([]byte, len(b)), 0o644); err != nil {
			t.Fatal(err)
		}
		mustBeDamaged(t, path)
		// Its header alone failing its check, zeros after it: the same.
		copy(b[headerLen:], make([]byte, len(b)))
		b[headerLen-1] ^= 1
		if err := os.WriteFile(seg, b, 0o644); err != nil {
			t.Fatal(err)
		}
		mustBeDamaged(t, path)
	}
}
