package bcache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAPeersEvictionIsNotAMissHereForEver: b, bounded to one value,
// evicts k1, which a wrote; c, unbounded, first syncs with b alone and
// takes k1's version as b's evicted stub. Once c has exchanged with a,
// which serves k1, a read of k1 on c asks the peers for its value, and c
// serves k1 (eviction is local, README). c missed k1 until k1 was written
// again: a value of the stub's version loses the tie to it (lww tieWins:
// "a value, or a stub, over a stub"), and the digests, which leave the
// evicted flag out, match, so anti-entropy never ships a's value (found
// by an in-process soak of the whole composition: a restarted or new
// unbounded member whose repair came from a bounded one).
func TestAPeersEvictionIsNotAMissHereForEver(t *testing.T) {
	net := memnet.NewNetwork(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	member := func(name string, maxKeys int, peers ...string) *Cache {
		return onMemnetWith(t, net, name, Config{AntiEntropyInterval: 50 * time.Millisecond, MaxKeys: maxKeys}, peers...)
	}
	a := member("a", 0)
	b := member("b", 1, a.Addr())
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2"} {
		if err := a.Set(k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, func() bool {
		r1, ok1 := b.store.Lookup("k1")
		_, ok2 := b.store.Lookup("k2")
		return ok1 && ok2 && r1.Evicted
	}, "b never held k1 evicted and k2")

	net.Partition([]string{"a"})
	c := member("c", 0, b.Addr())
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if r, ok := c.store.Lookup("k1"); !ok || !r.Evicted {
		t.Fatalf("c synced with b alone holds k1 as %+v (%v), want b's stub", r, ok)
	}
	healed := time.Now()
	net.Heal()
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 3 }, "c never saw a")
	awaitExchangeAfter(t, c, "a", healed)
	awaitExchangeAfter(t, c, "a", time.Now())
	if v, ok := a.Get("k1"); !ok || string(v) != "v" {
		t.Fatalf("a serves k1 as %q %v", v, ok)
	}
	await.Until(t, 10*time.Second, func() bool {
		v, ok := c.Get("k1")
		return ok && string(v) == "v"
	}, "c, unbounded, synced with a which serves k1, misses it (holding %+v)", func() crdt.Record { r, _ := c.store.Lookup("k1"); return r }())
	if st := c.Stats(); st.StubAsks == 0 || st.Pulled == 0 {
		t.Fatalf("c put k1 back asking no peer: %d asks, %d pulled", st.StubAsks, st.Pulled)
	}
}

// TestAPeersStubIsAskedForOnArrival: an unbounded member that applies a
// peer's evicted version (a repair from a bounded member) asks its peers
// for the value at once, with no read: c holds k1's version as a stub,
// a holds its value, and c holds the value soon after, though nobody read
// it. A member bounded to one value asks nothing on arrival (it may have
// no room; a read asks, while it has).
func TestAPeersStubIsAskedForOnArrival(t *testing.T) {
	for _, maxKeys := range []int{0, 1} {
		t.Run(fmt.Sprint("MaxKeys ", maxKeys), func(t *testing.T) {
			net := memnet.NewNetwork(1)
			// No anti-entropy during the test: the value comes by the ask alone.
			member := func(name string, maxKeys int, peers ...string) *Cache {
				return onMemnetWith(t, net, name, Config{AntiEntropyInterval: time.Hour, MaxKeys: maxKeys}, peers...)
			}
			a := member("a", 0)
			c := member("c", maxKeys, a.Addr())
			await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 2 && len(a.Members()) == 2 }, "a and c never met")
			// a holds k1's value, c nothing of it: written into a's store alone.
			rec := crdt.Record{Key: "k1", Value: []byte("v"), Time: a.clock.Now()}
			if o := a.store.Apply(rec, false, a.phys()); o != crdt.Applied {
				t.Fatalf("a took k1: %v", o)
			}
			stub := rec
			stub.Value, stub.Evicted = nil, true
			if o := (lagReplica{c.store, &c.deltaLag, &c.repairLag, c.stubArrived}).Apply(stub, false, c.phys()); o != crdt.Applied {
				t.Fatalf("c took the stub: %v", o)
			}
			if maxKeys == 0 {
				await.Until(t, 10*time.Second, func() bool { r, ok := c.store.Lookup("k1"); return ok && !r.Evicted && string(r.Value) == "v" },
					"c, unbounded, never asked for the value of a peer's stub")
				return
			}
			// Bounded: nothing asked on arrival; a read asks.
			if st := c.Stats(); st.StubAsks != 0 {
				t.Fatalf("c, bounded, asked for %d stubs on arrival", st.StubAsks)
			}
			await.Until(t, 10*time.Second, func() bool { v, ok := c.Get("k1"); return ok && string(v) == "v" },
				"c, bounded but under its bound, never served k1 after reading it")
		})
	}
}

// onMemnetWith starts member name on net with cfg (its limits and
// intervals), fast timings, and peers.
func onMemnetWith(t *testing.T, net *memnet.Network, name string, cfg Config, peers ...string) *Cache {
	t.Helper()
	tr, err := net.NewTransport(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NodeName, cfg.Network, cfg.Peers, cfg.Timings = name, tr, peers, FastTimings()
	return newCache(t, cfg)
}
