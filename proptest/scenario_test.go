package proptest

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/sim"
	"github.com/bcache-go/bcache/transport/wire"
)

// scenario steps a deterministic run of c: each round advances the clock
// a second, ticks every member, delivers every frame in flight but the
// one held (dropping those drop says are cut off, if set), and has every
// live member collect.
type scenario struct {
	t    *testing.T
	c    *Cluster
	held uint64 // a frame left in flight, by id (0: none)
	drop func(sim.Packet) bool
}

// deliver delivers every frame in flight but the held one, until none is
// left.
func (s *scenario) deliver() {
	s.t.Helper()
	c := s.c
	for n := 0; ; n++ {
		if n > budget {
			s.t.Fatal("the network did not drain")
		}
		i := -1
		for j, p := range c.Net.InFlight() {
			if p.ID != s.held {
				i = j
				break
			}
		}
		if i < 0 {
			return
		}
		if s.drop != nil && s.drop(c.Net.InFlight()[i]) {
			if err := c.Net.Drop(i); err != nil {
				s.t.Fatal(err)
			}
			continue
		}
		if _, err := c.Deliver(i); err != nil {
			s.t.Fatal(err)
		}
	}
}

// round runs one round (see scenario).
func (s *scenario) round() {
	s.t.Helper()
	s.c.Advance(time.Second)
	s.c.Tick()
	s.deliver()
	for i := range s.c.Size() {
		if !s.c.Down(i) {
			s.c.Replica(i).GC()
		}
	}
}

// rounds runs n rounds.
func (s *scenario) rounds(n int) {
	s.t.Helper()
	for range n {
		s.round()
	}
}

// holdDelta holds the delta from one member to another in flight: the
// frame that is no Digest (a session's) between them.
func (s *scenario) holdDelta(from, to string) {
	s.t.Helper()
	for _, p := range s.c.Net.InFlight() {
		if p.From == from && p.To == to && p.Kind != wire.KindDigest {
			s.held = p.ID
		}
	}
	if s.held == 0 {
		s.t.Fatalf("no delta of %s's in flight to %s: %v", from, to, s.c.Net.InFlight())
	}
}

// deliverHeld delivers the held frame, which must still be in flight.
func (s *scenario) deliverHeld() {
	s.t.Helper()
	for j, p := range s.c.Net.InFlight() {
		if p.ID == s.held {
			s.held = 0
			if _, err := s.c.Deliver(j); err != nil {
				s.t.Fatal(err)
			}
			return
		}
	}
	s.t.Fatal("the held frame is gone")
}

// verdict runs ten more rounds, converges the cluster and returns the
// model's verdict on it ("" when it passes).
func (s *scenario) verdict(h *harness) string {
	s.t.Helper()
	s.rounds(10)
	if _, err := s.c.Converge(10, budget); err != nil {
		s.t.Fatal(err)
	}
	f := &fatalRecorder{}
	h.model.verify(f, h)
	return f.failure
}
