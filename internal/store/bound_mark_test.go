package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestABoundCollectionRaisesAWatermarkPastTheStableBound: under MaxDead,
// deletes a member holding the cluster key stamps ahead of the
// collector's clock (within MaxClockDrift), enough of them to pass the
// bound, are collected once the clock reaches them, oldest first, and
// raise their buckets' watermarks to their stamps: above the collector's
// stable bound, at its clock at most (package lww, rule 7). The README's
// key-holder guarantee said a chosen stamp could never raise a watermark
// above the stable bound, which holds for collection at the horizon and
// early, not past MaxDeadRecords.
func TestABoundCollectionRaisesAWatermarkPastTheStableBound(t *testing.T) {
	const maxDead = 10
	skew := int64(time.Second)
	s := mustStore(t, Config{Shards: 1, DigestBits: 4, Horizon: time.Hour, MaxDead: maxDead, MaxClockSkew: time.Second})
	now := testNow
	forged := now + int64(29*time.Second) // within MaxClockDrift (30 s)
	for i := range 2 * maxDead {
		rec := crdt.Record{Key: fmt.Sprint("f", i), Tombstone: true, Time: crdt.Timestamp{Wall: forged, Logical: uint32(i), Node: 66}}
		if o := s.Apply(rec, false, now); o != crdt.Applied {
			t.Fatalf("forged delete %d: %v", i, o)
		}
	}
	s.MarkSynced(now)
	later := forged + skew/2 // the clock reached the stamps
	stable := later - skew   // Node.Stable lies MaxClockSkew behind the clock at most
	got := s.Collect(later, false, stable)
	if len(got) != maxDead {
		t.Fatalf("collected %d, want the %d over the bound", len(got), maxDead)
	}
	above := 0
	for _, m := range s.Marks() {
		if m.Time.Wall > later {
			t.Fatalf("watermark %v of leaf %d past the collector's clock", m.Time, m.Leaf)
		}
		if m.Time.Wall >= stable {
			above++
		}
	}
	if above == 0 {
		t.Fatal("no watermark above the stable bound: the README's key-holder bound would hold under MaxDead")
	}
	// A write of another node stamped between the stable bound and the
	// forged stamps, in flight meanwhile, is refused in those buckets.
	victim := ""
	for i := 0; victim == ""; i++ {
		k := fmt.Sprint("honest", i)
		if s.Refuses(k, crdt.Timestamp{Wall: stable + skew/4, Node: 3}) {
			victim = k
		}
	}
	if o := s.Apply(crdt.Record{Key: victim, Value: []byte("v"), Time: crdt.Timestamp{Wall: stable + skew/4, Node: 3}}, true, later); o != crdt.Rejected {
		t.Fatalf("an honest write above the stable bound, below the forged watermark: %v, want rejected", o)
	}
}
