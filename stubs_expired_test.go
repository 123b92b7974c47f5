package bcache

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAnExpiredStubIsNotAskedFor: a peer's evicted version past its
// expiry can never be put back (Store.Refill refuses an expired record),
// so neither its arrival nor a read of it asks the peers. Each asked
// every peer, again at every read once a second, until the record was
// collected (past the tombstone horizon), and expired stubs shipped by a
// bounded peer's repair filled the queue that live stubs wait in (found
// by review). k2, a live stub queued after, is the mark that the asks
// of k1 were made or skipped.
func TestAnExpiredStubIsNotAskedFor(t *testing.T) {
	net := memnet.NewNetwork(1)
	a := onMemnetWith(t, net, "a", Config{AntiEntropyInterval: time.Hour})
	c := onMemnetWith(t, net, "c", Config{AntiEntropyInterval: time.Hour}, a.Addr())
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 2 && len(a.Members()) == 2 }, "a and c never met")
	arrive := func(rec crdt.Record) {
		t.Helper()
		if o := a.store.Apply(rec, false, a.phys()); o != crdt.Applied {
			t.Fatalf("a took %s: %v", rec.Key, o)
		}
		stub := rec
		stub.Value, stub.Evicted = nil, true
		if o := (lagReplica{c.store, &c.deltaLag, &c.repairLag, c.stubArrived}).Apply(stub, false, c.phys()); o != crdt.Applied {
			t.Fatalf("c took %s's stub: %v", rec.Key, o)
		}
	}
	arrive(crdt.Record{Key: "k1", Value: []byte("v"), Time: a.clock.Now(), Expires: a.phys() - int64(time.Second)})
	if _, ok := c.Get("k1"); ok {
		t.Fatal("c serves an expired key")
	}
	arrive(crdt.Record{Key: "k2", Value: []byte("v"), Time: a.clock.Now()})
	await.Until(t, 10*time.Second, func() bool { v, ok := c.Get("k2"); return ok && string(v) == "v" }, "c never put k2 back")
	if n := c.Stats().StubAsks; n != 1 {
		t.Fatalf("%d stub asks, want 1 (k2's): an expired stub was asked for", n)
	}
}
