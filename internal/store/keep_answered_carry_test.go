package store

import (
	"math"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// TestKeepAnsweredKeepsAgainstAnAnswerAboveAMarkAtTheLastCounter: a
// watermark at the last counter of the nanosecond before the start (an
// adopted mark at its ceiling, a v1 snapshot's, a record stamped there)
// is answered with a tombstone at the start's wall and counter 0 (lww's
// above carries into the wall). That watermark is below the start, so the
// value this process wrote is kept, as for any answer of a watermark below
// the start.
func TestKeepAnsweredKeepsAgainstAnAnswerAboveAMarkAtTheLastCounter(t *testing.T) {
	const self = crdt.NodeID(7)
	phys := crdt.NewManualTime(testNow)
	clock := crdt.NewHLC(self, phys.Now, time.Minute)
	started := testNow - int64(time.Second)

	// The answer a peer gives: lww's Tombstone over a mark {started-1, max}.
	peer, err := lww.New(lww.Config{DigestBits: 4, Horizon: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for leaf := range uint32(16) {
		peer.RaiseWatermark(leaf, crdt.Timestamp{Wall: started - 1, Logical: math.MaxUint32}, started)
	}
	answer := peer.Tombstone("k")
	if w, _ := peer.Watermark(0); w.Wall >= started || answer.Time.Wall != started || answer.Time.Logical != 0 {
		t.Fatalf("setup: mark %v, answer %v", w, answer.Time)
	}

	s := mustStore(t, Config{Shards: 1, DigestBits: 4, Horizon: time.Hour})
	s.KeepAnswered(self, func() int64 { return started }, clock.Now)
	write := crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: started - int64(time.Hour), Node: self}}
	if o := s.Apply(write, false, phys.Now()); o != crdt.Applied {
		t.Fatalf("write: %v", o)
	}
	if err := clock.Update(answer.Time); err != nil {
		t.Fatal(err)
	}
	o := s.Apply(answer, false, phys.Now())
	held, _ := s.Lookup("k")
	if o != crdt.Stale || held.Tombstone || string(held.Value) != "v" || !answer.Time.Less(held.Time) {
		t.Fatalf("answer %v over a mark below the start: %v, holds %+v; want the value kept, stamped past it", answer.Time, o, held)
	}
}
