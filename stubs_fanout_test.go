package bcache

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/clusterfill"
)

// TestAStubAskGoesToAFewPeers: in a cluster of seven, a member that
// takes a peer's evicted version asks at most stubAskPeers of the other
// six for its value, not all six: in a cluster of a hundred, each ask
// was 99 datagrams and up to 99 answers carrying the value. The value is
// put back all the same (every peer holds it here).
func TestAStubAskGoesToAFewPeers(t *testing.T) {
	fetches := countFetches(t)
	c, others, _ := pullCluster(t) // no anti-entropy: the value comes by the ask alone
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
	if served := fetches.peers(key); len(served) > stubAskPeers {
		t.Fatalf("c's ask reached %d peers (%v), want %d", len(served), served, stubAskPeers)
	}
}

// fetchCount counts the fetches each member answers while a test runs
// (fetchServedHook), by key.
type fetchCount struct {
	mu     sync.Mutex
	served map[string]map[string]int
}

func countFetches(t *testing.T) *fetchCount {
	f := &fetchCount{served: map[string]map[string]int{}}
	prev := fetchServedHook
	t.Cleanup(func() { fetchServedHook = prev })
	fetchServedHook = func(member, key string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.served[key] == nil {
			f.served[key] = map[string]int{}
		}
		f.served[key][member]++
	}
	return f
}

// peers returns the fetches of key answered so far, by member.
func (f *fetchCount) peers(key string) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.served[key])
}

// TestPeersToAskAreTheOwnerAndADraw: askPeers's choice, on a live
// cluster of seven: with no bound, the six others; bounded to
// stubAskPeers, that many distinct peers, never this member, the key's
// owner always among them (unless it is this member), the others drawn
// so that every peer is asked in some draw.
func TestPeersToAskAreTheOwnerAndADraw(t *testing.T) {
	c, _, names := pullCluster(t)
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
