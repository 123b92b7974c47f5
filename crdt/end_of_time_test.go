package crdt

import (
	"math"
	"testing"
)

// TestTheLastTimestampRepeatsAndLosesToAGreaterNode pins what the HLC,
// Update and Timestamp docs now say of the end of time (they claimed
// strictly increasing stamps whatever the source does, and every Now after
// Update greater than the remote): a clock whose source reads
// math.MaxInt64 and that took a peer's last stamp issues its own last
// stamp again and again, and that stamp is older than the peer's of a
// greater node id.
func TestTheLastTimestampRepeatsAndLosesToAGreaterNode(t *testing.T) {
	src := NewManualTime(math.MaxInt64)
	c := NewHLC(1, src.Now, 0)
	remote := Timestamp{Wall: math.MaxInt64, Logical: math.MaxUint32, Node: 2}
	if err := c.Update(remote); err != nil {
		t.Fatal(err)
	}
	a, b := c.Now(), c.Now()
	if a != b {
		t.Fatalf("at the end of time Now gave %v then %v: the docs' exception is gone, update them", a, b)
	}
	if !a.Less(remote) {
		t.Fatalf("Now %v after taking %v is not older than it: update Update's doc", a, remote)
	}
}

// TestRecordHashCollidesForTwoChosenVersions pins the weakness mixTag's
// doc describes: two versions of one key, at walls one nanosecond apart,
// whose node ids are each the other's first-step product, hash alike
// (fold is symmetric), and so do trees holding either: the digest does not
// tell them apart. A change of the record digest that closes it changes
// this test and the docs.
func TestRecordHashCollidesForTwoChosenVersions(t *testing.T) {
	kh := HashKey("k")
	w1 := int64(1_700_000_000_000_000_000)
	w2 := w1 + 1
	h1, h2 := mixTag(kh^k0, uint64(w1)^k1), mixTag(kh^k0, uint64(w2)^k1)
	v1 := Timestamp{Wall: w1, Node: NodeID(h2 ^ k2)}
	v2 := Timestamp{Wall: w2, Node: NodeID(h1 ^ k2)}
	if RecordHash(kh, v1, false) != RecordHash(kh, v2, false) {
		t.Fatalf("%v and %v hash apart: update mixTag's and TreeNode's docs", v1, v2)
	}
	a, b := mustTree(t, 8), mustTree(t, 8)
	leaf := LeafIndex(kh, 0, 8)
	a.Add(leaf, RecordHash(kh, v1, false))
	b.Add(leaf, RecordHash(kh, v2, false))
	if d, err := Diff(a, b); err != nil || len(d) != 0 {
		t.Fatalf("Diff = %v, %v", d, err)
	}
}
