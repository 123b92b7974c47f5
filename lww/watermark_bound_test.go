package lww

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestAForgedStampRaisesAWatermarkToTheStableBoundAtMost: a member
// holding the cluster key deletes a key with a timestamp of its choosing,
// 29 s ahead (within bcache's MaxClockDrift of 30 s). Once the stable
// bound passes it, rule 6 collects it early, and its bucket's watermark
// rises to that stamp: below the stable bound and now, but far above now
// less the horizon plus the drift, the bound the README once gave ("can
// never make a watermark rise above now - TombstoneHorizon +
// MaxClockDrift"), which held before early collection.
func TestAForgedStampRaisesAWatermarkToTheStableBoundAtMost(t *testing.T) {
	const drift = int64(30 * time.Second)
	m, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	forged := crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: now + 29*int64(time.Second), Node: 7}}
	if o, _ := m.Merge(forged, false, now, nil); o != crdt.Applied {
		t.Fatalf("merge: %v", o)
	}
	m.MarkSynced(now)
	later := now + 31*int64(time.Second)
	stable := later - int64(time.Second) // Node.Stable lies the margin behind the clock
	m.GC(nil, later, stable)
	w, ok := m.Watermark(m.Leaf("k"))
	if !ok {
		t.Fatal("the forged delete was not collected early")
	}
	if w.Wall >= stable || w.Wall > later {
		t.Fatalf("watermark %d at or above the stable bound %d", w.Wall, stable)
	}
	if old := later - int64(DefaultHorizon) + drift; w.Wall > old {
		t.Logf("watermark %v past now - horizon + drift (the README's old bound) by %v", w.Wall, time.Duration(w.Wall-old))
	}
}
