package store

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestKeepAnsweredKeepsOnlyThisProcesssValuesAgainstAnswersFromBefore:
// with KeepAnswered set, a peer's answer (a tombstone of node 0) over a
// live value this process wrote is refused (Stale) and the value written
// again past it when the answer's watermark is below the process's start
// on its peers' clock; it deletes as before when its watermark is at or
// past the start (a collection made since, the long-absence rule), over
// another process's value, or over a value evicted here.
func TestKeepAnsweredKeepsOnlyThisProcesssValuesAgainstAnswersFromBefore(t *testing.T) {
	const self, other = crdt.NodeID(7), crdt.NodeID(9)
	phys := crdt.NewManualTime(testNow)
	clock := crdt.NewHLC(self, phys.Now, time.Minute)
	started := testNow - int64(time.Second)
	cases := []struct {
		name    string
		writer  crdt.NodeID
		evict   bool
		answer  int64 // the answer's wall, relative to started
		keeps   bool
		restamp bool
	}{
		{name: "own value, answer from before the start", writer: self, answer: -1, keeps: true, restamp: true},
		{name: "own value, answer at the start", writer: self, answer: 0},
		{name: "own value, answer after the start", writer: self, answer: int64(time.Millisecond)},
		{name: "another process's value", writer: other, answer: -1},
		{name: "own value evicted", writer: self, evict: true, answer: -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustStore(t, Config{Shards: 1, DigestBits: 4, Horizon: time.Hour})
			s.KeepAnswered(self, func() int64 { return started }, clock.Now)
			write := crdt.Record{Key: "k", Value: []byte("v"), Time: crdt.Timestamp{Wall: started - int64(time.Hour), Node: c.writer}}
			if o := s.Apply(write, false, phys.Now()); o != crdt.Applied {
				t.Fatalf("write: %v", o)
			}
			if c.evict && !s.Evict("k") {
				t.Fatal("nothing evicted")
			}
			answer := crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: started + c.answer, Logical: 1}}
			if err := clock.Update(answer.Time); err != nil { // as the transport does before it applies a frame
				t.Fatal(err)
			}
			o := s.Apply(answer, false, phys.Now())
			held, _ := s.Lookup("k")
			switch {
			case c.keeps && (o != crdt.Stale || held.Tombstone || string(held.Value) != "v" || !answer.Time.Less(held.Time) || held.Time.Node != self):
				t.Fatalf("answer %v: %v, holds %+v; want the value kept, stamped past the answer", answer.Time, o, held)
			case !c.keeps && (o != crdt.Applied || !held.Tombstone):
				t.Fatalf("answer %v: %v, holds %+v; want the answer applied", answer.Time, o, held)
			}
			if got := s.Stats().Restamped; (got > 0) != c.restamp {
				t.Fatalf("restamped %d", got)
			}
		})
	}
}
