package bcache

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAStubAskEvictsNothingOnAFullMember: a member bounded by MaxBytes
// is under its bound after every eviction (by less than a value: nine
// entries of 101 bytes under 1,000), so a read of a key it evicted asked
// its peers, and the answer, put back, evicted another value, which the
// next read asked for in turn: a working set of twenty keys over a bound
// of nine went round through the peers, about 24 asks and evictions a
// second, for ever, where the member held its nine values before (found
// by review). A member with no room for a value of the average size it
// holds asks nothing; one with room puts an answer back only if it fits
// beside the values held, evicting none.
func TestAStubAskEvictsNothingOnAFullMember(t *testing.T) {
	net := memnet.NewNetwork(1)
	a := onMemnetWith(t, net, "a", Config{AntiEntropyInterval: time.Hour})
	c := onMemnetWith(t, net, "c", Config{AntiEntropyInterval: time.Hour, MaxBytes: 1000}, a.Addr())
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 2 && len(a.Members()) == 2 }, "a and c never met")
	key := func(i int) string { return fmt.Sprintf("l%02d", i) }
	// a's writes, which c takes as a peer's and evicts down to its bound
	// (c's own, evicted before their deltas were sent, reached a as
	// stubs under -race).
	for i := range 20 {
		if err := a.Set(key(i), make([]byte, 98), 0); err != nil {
			t.Fatal(err)
		}
	}
	await.Until(t, 10*time.Second, func() bool { return c.Stats().Records == 20 }, "c holds %d of a's writes", c.Stats().Records)
	evictions := c.Stats().Evictions
	if c.Len() != 9 || evictions != 11 || c.store.HasRoom() {
		t.Fatalf("c holds %d values, evicted %d (room %v); want 9 and 11, and no room", c.Len(), evictions, c.store.HasRoom())
	}
	for i := range 20 {
		c.Get(key(i)) // the 11 evicted: a full member asks for none
	}
	if st := c.Stats(); st.StubAsks != 0 || st.StubAsksDropped != 0 {
		t.Fatalf("a full member asked for %d stubs (%d dropped)", st.StubAsks, st.StubAsksDropped)
	}

	// Room for a value of the average size (five deleted: four held),
	// not for the one answered.
	for i := range 20 {
		if err := c.Delete(key(i)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 0 {
		t.Fatalf("c holds %d values after deleting them all", c.Len())
	}
	for i := range 4 {
		if err := c.Set(key(i), make([]byte, 98), 0); err != nil {
			t.Fatal(err)
		}
	}
	stub := func(k string, size int) {
		t.Helper()
		rec := crdt.Record{Key: k, Value: make([]byte, size), Time: a.clock.Now()}
		if o := a.store.Apply(rec, false, a.phys()); o != crdt.Applied {
			t.Fatalf("a took %s: %v", k, o)
		}
		rec.Value, rec.Evicted = nil, true
		if o := c.store.Apply(rec, false, c.phys()); o != crdt.Applied {
			t.Fatalf("c took %s's stub: %v", k, o)
		}
	}
	stub("big", 700)
	stub("m", 1)
	evictions = c.Stats().Evictions
	c.Get("big")
	c.Get("m")
	await.Until(t, 10*time.Second, func() bool { _, ok := c.Get("m"); return ok }, "c never put m back (%d asks)", c.Stats().StubAsks)
	if _, ok := c.Get("big"); ok || c.Stats().Evictions != evictions || c.Len() != 5 {
		t.Fatalf("the answer for big, 700 bytes beside 404 under 1,000, was put back (%v), evicting %d", ok, c.Stats().Evictions-evictions)
	}
}
