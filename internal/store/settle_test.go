package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestReplaySettlesTheKeyTables: records replayed in bulk (a snapshot
// restored, a write log replayed) leave no shard's key table between two
// sizes. Puts move a resize on a few slots at a time, and with no write
// after the load a shard kept both arrays until its next collection:
// readers of a key it did not hold, or of one not moved yet, probed both.
func TestReplaySettlesTheKeyTables(t *testing.T) {
	s := mustStore(t, Config{})
	clock := crdt.NewHLC(1, func() int64 { return testNow }, time.Second)
	recs := make([]crdt.Record, 50_000)
	for i := range recs {
		recs[i] = crdt.Record{Key: fmt.Sprint("k", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow - int64(len(recs)-i), Node: 2}}
	}
	if applied, _ := s.Replay(recs, clock, testNow); applied != len(recs) {
		t.Fatalf("%d of %d records applied", applied, len(recs))
	}
	for i := range s.shards {
		if s.shards[i].m.Resizing() {
			t.Fatalf("shard %d of %d: its key table between two sizes after the replay", i, len(s.shards))
		}
	}
	for i := range 1000 {
		if _, ok := s.Get(fmt.Sprint("k", i*50), func() int64 { return testNow }); !ok {
			t.Fatalf("k%d not found after the replay", i*50)
		}
	}
}
