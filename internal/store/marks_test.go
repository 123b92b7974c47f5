package store

import (
	"maps"
	"math"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// markedStore returns an empty store of 256 leaves.
func markedStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(Config{Shards: 16, DigestBits: 8})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func watermark(s *Store, leaf uint32) (crdt.Timestamp, bool) {
	sh, local := s.leafShard(leaf)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m.Watermark(local)
}

// TestOfferedMarksAreAdoptedWithinTheStableBound: a peer's marks are
// adopted at Collect, each at most to the last timestamp below the stable
// bound; one above it raises its leaf to there and waits for the bound to
// rise; none is adopted while the store has never synced, or with no
// stable bound; the greatest mark offered for a leaf wins.
func TestOfferedMarksAreAdoptedWithinTheStableBound(t *testing.T) {
	s := markedStore(t)
	ts := func(wall int64) crdt.Timestamp { return crdt.Timestamp{Wall: wall, Logical: 3, Node: math.MaxUint64} }
	s.OfferMarks([]Mark{{Leaf: 5, Time: ts(100)}, {Leaf: 200, Time: ts(300)}, {Leaf: 5, Time: ts(90)}, {Leaf: s.Leaves(), Time: ts(1)}}, 1000)
	if n := s.PendingMarks(); n != 2 {
		t.Fatalf("%d marks pending, want 2 (leaf 5 once, the leaf past the digest ignored)", n)
	}
	s.Collect(1000, false, 1000) // never synced: no stable bound
	if _, ok := watermark(s, 5); ok {
		t.Fatal("a store that never synced adopted a mark")
	}
	s.MarkSynced(1)
	s.Collect(1000, false, lww.NoStable)
	if _, ok := watermark(s, 5); ok {
		t.Fatal("adopted a mark with no stable bound")
	}
	s.Collect(1000, false, 200)
	if w, _ := watermark(s, 5); w != ts(100) {
		t.Fatalf("leaf 5: watermark %+v, want the greatest offered, %+v", w, ts(100))
	}
	want := crdt.Timestamp{Wall: 199, Logical: math.MaxUint32, Node: math.MaxUint64}
	if w, _ := watermark(s, 200); w != want {
		t.Fatalf("leaf 200: watermark %+v, want the last timestamp below the bound, %+v", w, want)
	}
	if n := s.PendingMarks(); n != 1 {
		t.Fatalf("%d marks pending, want leaf 200's alone", n)
	}
	s.Collect(1000, false, 400)
	if w, _ := watermark(s, 200); w != ts(300) {
		t.Fatalf("leaf 200: watermark %+v once the bound passed it, want %+v", w, ts(300))
	}
	if n, adopted := s.PendingMarks(), s.Stats().WatermarksAdopted; n != 0 || adopted != 3 {
		t.Fatalf("%d pending, %d raises counted; want 0 and 3", n, adopted)
	}
	if got := s.Marks(); len(got) != 2 || got[0].Leaf != 5 || got[1].Leaf != 200 {
		t.Fatalf("Marks() = %+v, want leaves 5 and 200 in order", got)
	}
}

// TestAStoreNeverLowersAWatermarkToAMark: a mark below the watermark a
// collection raised changes nothing.
func TestAStoreNeverLowersAWatermarkToAMark(t *testing.T) {
	s := markedStore(t)
	s.MarkSynced(1)
	high := crdt.Timestamp{Wall: 500, Node: math.MaxUint64}
	sh, local := s.leafShard(7)
	sh.mu.Lock()
	sh.m.RaiseWatermark(local, high, 1000)
	sh.mu.Unlock()
	s.OfferMarks([]Mark{{Leaf: 7, Time: crdt.Timestamp{Wall: 100}}}, 1000)
	s.Collect(1000, false, 1000)
	if w, _ := watermark(s, 7); w != high {
		t.Fatalf("watermark %+v, want %+v kept", w, high)
	}
	if n := s.Stats().WatermarksAdopted; n != 0 {
		t.Fatalf("%d raises counted, want 0", n)
	}
}

// TestMarksSayTheMarksOfferedNotAdoptedYet: a store's Marks, the answer
// to a peer's ask, include the marks it was offered and has not adopted
// yet (its stable bound below them, or no Collect since): a member that
// joined and asked a peer, then answers a newcomer that synced with it
// first, passes on what the cluster collected before either joined.
func TestMarksSayTheMarksOfferedNotAdoptedYet(t *testing.T) {
	s := markedStore(t)
	s.MarkSynced(1)
	ts := func(wall int64) crdt.Timestamp { return crdt.Timestamp{Wall: wall, Node: math.MaxUint64} }
	sh, local := s.leafShard(9)
	sh.mu.Lock()
	sh.m.RaiseWatermark(local, ts(50), 1000)
	sh.mu.Unlock()
	s.OfferMarks([]Mark{{Leaf: 3, Time: ts(100)}, {Leaf: 9, Time: ts(40)}, {Leaf: 200, Time: ts(300)}}, 1000)
	s.Collect(1000, false, 150) // adopts leaf 3's; leaf 200's waits, raised to 149
	want := []Mark{
		{Leaf: 3, Time: ts(100)},
		{Leaf: 9, Time: ts(50)},
		{Leaf: 200, Time: ts(300)},
	}
	got := s.Marks()
	if len(got) != len(want) {
		t.Fatalf("Marks() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Marks() = %+v, want %+v", got, want)
		}
	}
}

// TestAMarkFarAheadIsTakenAtTheDriftBound: a mark further ahead of now
// than the clock's drift lets a stamp be is offered as the last timestamp
// of that bound's nanosecond, passed on so, and adopted once the stable
// bound passes it; one within the bound is taken as it came; one at the
// earliest wall time, which says none, is not taken.
func TestAMarkFarAheadIsTakenAtTheDriftBound(t *testing.T) {
	s, err := New(Config{Shards: 16, DigestBits: 8, MaxClockDrift: 50})
	if err != nil {
		t.Fatal(err)
	}
	const now = 1000
	if s.OfferMarks([]Mark{{Leaf: 6, Time: crdt.Timestamp{Wall: now + 40, Logical: 2, Node: 9}}}, now) {
		t.Fatal("a mark within the drift bound reported as taken lower than it came")
	}
	if !s.OfferMarks([]Mark{{Leaf: 5, Time: crdt.Timestamp{Wall: math.MaxInt64}}, {Leaf: 6, Time: crdt.Timestamp{Wall: now + 40, Logical: 2, Node: 9}},
		{Leaf: 8, Time: crdt.Timestamp{Wall: math.MinInt64, Node: math.MaxUint64}}}, now) { // leaf 8's is none: ignored
		t.Fatal("a mark past the drift bound not reported as taken lower than it came")
	}
	want := map[uint32]crdt.Timestamp{
		5: {Wall: now + 50, Logical: math.MaxUint32, Node: math.MaxUint64},
		6: {Wall: now + 40, Logical: 2, Node: 9},
	}
	got := map[uint32]crdt.Timestamp{}
	for _, m := range s.Marks() {
		got[m.Leaf] = m.Time
	}
	if !maps.Equal(got, want) {
		t.Fatalf("marks passed on: %v, want %v", got, want)
	}
	s.MarkSynced(1)
	s.Collect(2000, false, 2000)
	if n := s.PendingMarks(); n != 0 {
		t.Fatalf("%d marks still offered after the stable bound passed the drift bound", n)
	}
	if w, ok := watermark(s, 5); !ok || w != want[5] {
		t.Fatalf("leaf 5's watermark %v (%v), want %v", w, ok, want[5])
	}
}
