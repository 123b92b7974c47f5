package bcache

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAStubThatNeverFitsIsNotAskedForAgainAndAgain: a member bounded by
// MaxBytes, with room for a value of the average size it holds but not
// for the value of a stub it reads, asked its peers for that value at
// every read a stubAskAgain apart, for ever, and dropped each answer
// (each ask brings stubAskPeers copies of a value up to MaxValueSize):
// a hot key read once a second cost three of its values a second of
// traffic that changed nothing (found by review). Once the member
// has room for it, the key is asked for again and put back.
func TestAStubThatNeverFitsIsNotAskedForAgainAndAgain(t *testing.T) {
	net := memnet.NewNetwork(1)
	a := onMemnetWith(t, net, "a", Config{AntiEntropyInterval: time.Hour})
	c := onMemnetWith(t, net, "c", Config{AntiEntropyInterval: time.Hour, MaxBytes: 1000}, a.Addr())
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 2 && len(a.Members()) == 2 }, "a and c never met")
	small := []string{"s00", "s01", "s02", "s03"}
	for _, k := range small { // 404 bytes: room for a value of 101, not of 703
		if err := c.Set(k, make([]byte, 98), 0); err != nil {
			t.Fatal(err)
		}
	}
	rec := crdt.Record{Key: "big", Value: make([]byte, 700), Time: a.clock.Now()}
	if o := a.store.Apply(rec, false, a.phys()); o != crdt.Applied {
		t.Fatalf("a took big: %v", o)
	}
	rec.Value, rec.Evicted = nil, true
	if o := c.store.Apply(rec, false, c.phys()); o != crdt.Applied {
		t.Fatalf("c took big's stub: %v", o)
	}
	// Read big for four stubAskAgain, paced (a reader of a hot key):
	// asked at every one of them, 5 asks.
	pace := time.NewTicker(20 * time.Millisecond)
	defer pace.Stop()
	for end := time.Now().Add(4*stubAskAgain + stubAskAgain/2); time.Now().Before(end); <-pace.C {
		if _, ok := c.Get("big"); ok {
			t.Fatal("big, 703 bytes beside 404 under 1,000, was put back")
		}
	}
	if n := c.Stats().StubAsks; n > 2 {
		t.Fatalf("c asked for big %d times, dropping every answer; want once (twice if the first answer came after stubAskAgain)", n)
	}
	for _, k := range small {
		if err := c.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := c.Get("big"); return ok }, "c, with room, never put big back (%d asks)", c.Stats().StubAsks)
}
