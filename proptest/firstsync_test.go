package proptest

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/sim"
	"github.com/bcache-go/bcache/transport/wire"
	"pgregory.net/rapid"
)

// otherTopNode returns a key whose level-1 digest node differs from key's.
func otherTopNode(key string) string {
	for i := 0; ; i++ {
		if k := fmt.Sprint("k", i); crdt.HashKey(k)>>60 != crdt.HashKey(key)>>60 {
			return k
		}
	}
}

// TestFirstSyncOfAResponderIsOfTheOpening: n2 restarts empty; n0 opens a
// session with it as with an arrival (at level 1, not the root alone); n0 then writes k (in a level-1 node its opening showed
// empty) and the write's delta is lost; the opening reaches n2 a second
// later. The responder compares the opening's hashes, read at n0's start,
// and completes without k: what it holds is what n0 held when n0 opened
// the exchange, not when the opening came (FirstSyncWith's start for a
// responder).
func TestFirstSyncOfAResponderIsOfTheOpening(t *testing.T) {
	k := otherTopNode("before")
	rapid.Check(t, scripted(StoreFactory, func(s script) {
		s.begin()
		for range 3 { // the founders' sessions with the members they saw arrive
			s.h.c.Tick()
			s.h.deliverAll(s.t, "arrivals")
			s.h.check(s.t)
		}
		s.crash(2)
		s.restart(2)
		s.h.c.Tick() // n0's session with n2, which arrived: a full opening
		var opening sim.Packet
		for _, p := range s.h.c.Net.InFlight() {
			if p.From == "n0" && p.To == "n2" {
				opening = p
			}
		}
		if opening.From == "" {
			s.t.Fatalf("no opening from n0 to n2 in %v", s.h.c.Net.InFlight())
		}
		s.set(0, k, "late")
		for i := s.h.c.Net.Len() - 1; i >= 0; i-- { // n0's delta of k lost
			if p := s.h.c.Net.InFlight()[i]; p.ID != opening.ID {
				s.h.must(s.t, s.h.c.Net.Drop(i))
			}
		}
		s.h.c.Advance(time.Second)
		s.h.check(s.t)
		s.h.deliverAll(s.t, "the session")
		s.h.check(s.t)
		if _, at := s.h.c.Replica(2).(Syncer).FirstSyncWith(); at == 0 {
			s.t.Fatalf("n2 made no first sync")
		}
	}))
}

// misdatedSync is hastySync (a first sync said at the opening of an
// exchange) that also reports its exchange as started at 0: the check
// takes the replica's word for the start, and asks for nothing.
type misdatedSync struct{ *hastySync }

func (m misdatedSync) FirstSyncWith() (string, int64) {
	peer, _ := m.hastySync.FirstSyncWith()
	return peer, 0
}

// TestHarnessCatchesAMisdatedHastySync: the start a replica reports must
// be one of its incarnation (the check passed it before).
func TestHarnessCatchesAMisdatedHastySync(t *testing.T) {
	factory := wrapStores(func(r *StoreReplica) Replica {
		return misdatedSync{&hastySync{StoreReplica: r, codec: wire.NewCodec(wire.Limits{})}}
	})
	caught(t, "misdated hasty first syncs", Config{Factory: factory, Disable: []string{"join", "restart", "restore"}}, "before its incarnation", "first syncs made without the peer's records")
}
