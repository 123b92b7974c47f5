package bcache

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/clusterfill"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAStubAskGoesToAFewPeers: in a cluster of seven, a member that
// takes a peer's evicted version asks at most stubAskPeers of the other
// six for its value, not all six: in a cluster of a hundred, each ask
// was 99 datagrams and up to 99 answers carrying the value. The value is
// put back all the same (every peer holds it here).
func TestAStubAskGoesToAFewPeers(t *testing.T) {
	var mu sync.Mutex
	served := map[string]int{}
	prev := fetchServedHook
	t.Cleanup(func() { fetchServedHook = prev })
	fetchServedHook = func(name string) {
		mu.Lock()
		served[name]++
		mu.Unlock()
	}
	net := memnet.NewNetwork(1)
	// No anti-entropy during the test: the value comes by the ask alone.
	cfg := Config{AntiEntropyInterval: time.Hour}
	c := onMemnetWith(t, net, "c", cfg)
	var others []*Cache
	var names []string
	for i := range 6 {
		name := fmt.Sprint("p", i)
		others = append(others, onMemnetWith(t, net, name, cfg, c.Addr()))
		names = append(names, name)
	}
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 7 }, "c never saw the six others")
	const key = "k1"
	rec := crdt.Record{Key: key, Value: []byte("v"), Time: c.clock.Now()}
	for _, o := range others {
		if out := o.store.Apply(rec, false, o.phys()); out != crdt.Applied {
			t.Fatalf("%s took %s: %v", o.cfg.NodeName, key, out)
		}
	}
	stub := rec
	stub.Value, stub.Evicted = nil, true
	if out := (lagReplica{c.store, &c.deltaLag, &c.repairLag, c.stubArrived}).Apply(stub, false, c.phys()); out != crdt.Applied {
		t.Fatalf("c took the stub: %v", out)
	}
	await.Until(t, 10*time.Second, func() bool { r, ok := c.store.Lookup(key); return ok && !r.Evicted && string(r.Value) == "v" },
		"c never put the value back on its stub")
	// At least one peer was asked (the value came back); how many the ask
	// reached past that depends on the load (a peer a loaded member saw
	// as suspect is asked nothing): no more than stubAskPeers, whatever
	// it is (TestPeersToAskAreTheOwnerAndADraw checks the choice itself).
	mu.Lock()
	defer mu.Unlock()
	if len(served) > stubAskPeers {
		t.Fatalf("c's ask reached %d peers (%v), want %d", len(served), served, stubAskPeers)
	}
}

// TestPeersToAskAreTheOwnerAndADraw: askPeers's choice, on a live
// cluster of seven: with no bound, the six others; bounded to
// stubAskPeers, that many distinct peers, never this member, the key's
// owner always among them (unless it is this member), the others drawn
// so that every peer is asked in some draw.
func TestPeersToAskAreTheOwnerAndADraw(t *testing.T) {
	net := memnet.NewNetwork(1)
	cfg := Config{AntiEntropyInterval: time.Hour}
	c := onMemnetWith(t, net, "c", cfg)
	var names []string
	for i := range 6 {
		name := fmt.Sprint("p", i)
		onMemnetWith(t, net, name, cfg, c.Addr())
		names = append(names, name)
	}
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 7 }, "c never saw the six others")
	if all := c.peersToAsk("k", 0); len(all) != 6 {
		t.Fatalf("unbounded: asked %v, want the six others", all)
	}
	ownedHere, ownedThere := false, false
	for k := 0; !(ownedHere && ownedThere) || k < 20; k++ {
		if k == 10_000 {
			t.Fatal("no key of 10,000 owned by c and by another")
		}
		key := fmt.Sprint("key", k)
		owner := clusterfill.Owner(key, "c", names)
		if owner == "c" {
			ownedHere = true
		} else {
			ownedThere = true
		}
		seen := map[string]int{}
		for range 200 {
			got := c.peersToAsk(key, stubAskPeers)
			if len(got) != stubAskPeers {
				t.Fatalf("%s: asked %v, want %d peers", key, got, stubAskPeers)
			}
			once := map[string]bool{}
			for _, n := range got {
				if n == "c" || once[n] {
					t.Fatalf("%s: asked %v: itself or a peer twice", key, got)
				}
				once[n] = true
				seen[n]++
			}
			if owner != "c" && !once[owner] {
				t.Fatalf("%s: asked %v, not its owner %s", key, got, owner)
			}
		}
		if len(seen) != 6 {
			t.Fatalf("%s: 200 draws asked only %v", key, seen)
		}
	}
}
