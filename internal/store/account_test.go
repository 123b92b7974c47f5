package store

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestCountsNeverGoNegative: a Set and a Delete of one key racing from
// two goroutines are counted in the order they were applied, so Len and
// the value bytes never read below zero, and end at what the store holds.
// They were counted after the shard's lock was let go: add-then-remove
// could be counted remove-then-add, and a scrape read -1 values.
func TestCountsNeverGoNegative(t *testing.T) {
	s := mustStore(t, Config{Shards: 1})
	var clock atomic.Int64
	clock.Store(testNow)
	rounds := 1_000_000 // within 1.5 s here; the old counting read -1 in each of 3 runs
	if raceEnabled {
		rounds = 50_000
	}
	var done atomic.Int32
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			defer done.Add(1)
			for range rounds {
				s.Write(crdt.Record{Key: "k", Value: []byte("value"), Time: crdt.Timestamp{Wall: clock.Add(1), Node: 1}})
				s.Write(crdt.Record{Key: "k", Tombstone: true, Time: crdt.Timestamp{Wall: clock.Add(1), Node: 1}})
			}
		})
	}
	for done.Load() < 2 {
		if n, b := s.Len(), s.Stats().Bytes; n < 0 || b < 0 {
			t.Fatalf("Len %d, value bytes %d", n, b)
		}
	}
	wg.Wait()
	if n, b := s.Len(), s.Stats().Bytes; n != 0 || b != 0 {
		t.Fatalf("after the last delete: Len %d, value bytes %d", n, b)
	}
}
