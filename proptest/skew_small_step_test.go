package proptest

import (
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// TestAFirstSyncAcrossASmallStepBackIsNoEarlierThanItsIncarnation: n1
// opens a session with n0, whose clock steps back 1 ns (a step the node
// leaves alone: transport's stepBack) while it answers, then 1 s. The
// node shifts the start of its first sync by the whole distance from the
// latest time it was given (1 s), 1 ns before the earliest its clock
// read in this incarnation: a start the harness took for one made up
// before the incarnation, and failed a run of the production store
// (found by review: TestFramesOutliveCrashesNoAdversary, 300 steps).
func TestAFirstSyncAcrossASmallStepBackIsNoEarlierThanItsIncarnation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{Disable: adversarial}
		cfg.fill()
		c, err := NewCluster(2, cfg.Factory, start)
		if err != nil {
			t.Fatal(err)
		}
		h := harnessOver(cfg, c)
		rec, out := c.Replica(0).Set("a", nil, 0)
		h.wrote(t, 0, rec, crdt.Record{Key: "a"})
		c.send(0, out)
		h.check(t)
		c.StartSession(1, 0)
		h.check(t)
		deliver := func() {
			h.deliverOne(t, 0)
			h.check(t)
		}
		deliver()
		c.SetSkew(0, -1)
		h.check(t)
		deliver()
		deliver()
		c.SetSkew(0, -1_000_000_000)
		h.check(t)
		deliver()
		h.converge(t)
	})
}
