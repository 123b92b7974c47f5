package proptest

import (
	"math"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// forgedMarks answers every ask for watermarks with a mark at now in every
// leaf of the harness's digest (8 bits): what a key holder could forge.
func forgedMarks(_ []store.Mark, now int64) []store.Mark {
	ms := make([]store.Mark, 1<<8)
	for i := range ms {
		ms[i] = store.Mark{Leaf: uint32(i), Time: crdt.Timestamp{Wall: now, Node: math.MaxUint64}}
	}
	return ms
}

// TestForgedMarksAreHarmlessWithinTheStableBound: members that take, at
// every ask, a watermark at their own time in every bucket (what a member
// holding the cluster key can answer) lose no write and converge: they
// adopt each within their stable bound, below which every member they
// count holds every record (package lww, rule 8).
func TestForgedMarksAreHarmlessWithinTheStableBound(t *testing.T) {
	cfg := DefaultStoreConfig()
	cfg.Marks = forgedMarks
	if failure := harnessFailure(t, "forged marks", Config{Factory: StoreFactory(cfg)}); failure != "" {
		t.Fatalf("forged marks, adopted within the stable bound, broke the cluster: %s", failure)
	}
}

// TestHarnessCatchesMarksAdoptedWhole is the broken variant of
// TestForgedMarksAreHarmlessWithinTheStableBound: the same marks raised
// at once, as a restore takes a snapshot's, reject fresh writes that were
// on their way, and lose them.
func TestHarnessCatchesMarksAdoptedWhole(t *testing.T) {
	cfg := DefaultStoreConfig()
	cfg.Marks, cfg.MarksWhole = forgedMarks, true
	caught(t, "forged marks adopted whole", Config{Factory: StoreFactory(cfg)}, "no watermark can cover it yet", "watermarks raised to forged marks whole")
}
