package proptest

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestHarnessCatchesAClockThatIgnoresWhatItReceived: a replica whose
// writes are stamped by a clock that never learns the timestamps it
// receives (a physical clock with a counter, not a hybrid logical one)
// stamps a write on a member whose clock is behind older than the version
// of the key it already holds and serves: the write loses on its own
// member at once (a Get right after the Set serves the older value), and
// everywhere else. The model orders writes by the stamps the replica
// returned, so it agrees with such a replica by construction; the harness
// must check that a write is newer than what its member held of the key
// (found by review).
func TestHarnessCatchesAClockThatIgnoresWhatItReceived(t *testing.T) {
	factory := ignoringClocks()
	// What it does: n1, a second behind, holds n0's write, writes the
	// key, and serves n0's value back.
	c, err := NewCluster(2, factory, start)
	if err != nil {
		t.Fatal(err)
	}
	c.SetSkew(1, -time.Second)
	c.Set(0, "a", []byte("n0's"), 0)
	if err := c.DeliverAll(budget); err != nil {
		t.Fatal(err)
	}
	c.Set(1, "a", []byte("n1's"), 0)
	if v, _ := c.Replica(1).Get("a"); string(v) != "n0's" {
		t.Fatalf("the variant served %q after its own write: it breaks nothing", v)
	}
	caught(t, "clock that ignores receives", Config{Factory: factory, Disable: []string{"fill", "outage"}}, "its clock did not see what it holds", "a replica whose writes are stamped by a clock that ignores what it received")
}

// ignoringClocks returns a Factory of production replicas whose writes
// are stamped by a clock that no receive updates.
func ignoringClocks() Factory {
	return wrapStores(func(r *StoreReplica) Replica {
		// The node keeps the HLC it updates on every receive; the
		// writes are stamped by another, over the same physical clock
		// and id, that no receive reaches.
		r.clock = crdt.NewHLC(r.clock.Node(), r.phys, r.clock.MaxDrift())
		r.s.Overtaken(func(t crdt.Timestamp) bool { return r.node.Overtaken(t) }, r.clock.Now)
		return r
	})
}
