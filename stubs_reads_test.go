package bcache

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
)

// TestReadsOfAStubQueueItOnceASecond: a read that misses on a stub queues
// its key for an ask once a stubAskAgain at most, whatever the number of
// reads: at every read, Get took the queue's lock, and a hot key read at
// full speed filled the queue with copies of itself, dropping the others
// (found by review). Here nothing takes from the queue: a hundred reads
// queue one copy and drop none.
func TestReadsOfAStubQueueItOnceASecond(t *testing.T) {
	s, err := store.New(store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	stub := crdt.Record{Key: "k", Time: crdt.Timestamp{Wall: now, Node: 1}, Evicted: true}
	if o := s.Apply(stub, false, now); o != crdt.Applied {
		t.Fatalf("the stub: %v", o)
	}
	c := &Cache{store: s, phys: func() int64 { return now }, stubs: stubAsks{keys: make(chan string, 4)}}
	for range 100 {
		if _, ok := c.store.Get("k", c.phys); ok {
			t.Fatal("a stub served")
		}
		c.missedStub("k")
	}
	if n, dropped := len(c.stubs.keys), c.stats.stubAsksDropped.Load(); n != 1 || dropped != 0 {
		t.Fatalf("a hundred reads of a stub queued %d copies and dropped %d; want 1 and none", n, dropped)
	}
}
