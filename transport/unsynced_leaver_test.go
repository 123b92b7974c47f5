package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// TestLeaverNeverSyncedWithLosesNoLiveWrite: z starts, alone, and takes a
// write (it sends it nowhere: anti-entropy is to carry it); a and c see z
// in their view 2 s later, and z leaves on purpose, keeping its state,
// before any session with it completed. Its ended incarnation was counted
// at a cut of when a first saw it ("it wrote nothing before it joined"),
// above z's write: a's bound passed the write, a collected a tombstone of
// its bucket early, and rejected the write when z came back from its
// snapshot: a live write, seconds old, lost.
func TestLeaverNeverSyncedWithLosesNoLiveWrite(t *testing.T) {
	c := newStoreCluster(t, Config{}, store.Config{Shards: 16, DigestBits: 8, Horizon: time.Hour}, "a", "c")
	keys := sameBucket(8, 2)
	c.session("a", "c")
	st, err := store.New(store.Config{Shards: 16, DigestBits: 8, Horizon: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c.stores["z"] = st
	c.start("z")
	c.nodes["z"].SetMembers([]string{"z"}, c.now.Now())
	c.now.Advance(time.Second)
	live := c.write("z", crdt.Record{Key: keys[0], Value: []byte("v")})
	if out := c.nodes["z"].Write(live, c.now.Now()); len(out) != 0 {
		t.Fatalf("z alone sent %d frames", len(out))
	}
	c.now.Advance(100 * time.Millisecond)
	tomb := c.write("a", crdt.Record{Key: keys[1], Tombstone: true}) // a delete in k's bucket, after it
	c.run("a", c.nodes["a"].Write(tomb, c.now.Now()), nil, nil)
	c.now.Advance(2 * time.Second)
	for _, n := range []string{"a", "c", "z"} {
		c.nodes[n].SetMembers([]string{"a", "c", "z"}, c.now.Now())
	}
	// z closes at once: it leaves, its store kept (its snapshot).
	c.now.Advance(100 * time.Millisecond)
	leaveAndReturn(t, c, "z", []string{"a", "c"}, keys[0], live, tomb)
}
