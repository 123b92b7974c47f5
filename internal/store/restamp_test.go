package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// TestAWriteStampedBelowAWatermarkRaisedSinceIsNotLost: a
// local write is stamped (Cache.record) before the store takes it under
// its shard's lock. Between the two, a peer's delete of another key of
// the same bucket, stamped after the write, can arrive and be collected
// under MaxDead (lww rule 7), raising the bucket's watermark above the
// write's stamp. Write then merged the write as a record the map had not
// seen: Rejected, silently, and Write returned nil: a Set that returned
// nil was in no snapshot, a Get after it missed, and its delta, applied
// by the peers, was deleted everywhere by the answer to it at the next
// exchange. Overtaken stamped it again for a cut alone.
func TestAWriteStampedBelowAWatermarkRaisedSinceIsNotLost(t *testing.T) {
	phys := crdt.NewManualTime(testNow)
	clock := crdt.NewHLC(1, phys.Now, 0)
	s := mustStore(t, Config{Shards: 1, DigestBits: 4, Horizon: time.Hour, MaxDead: 1, Founder: true})
	s.Overtaken(func(crdt.Timestamp) bool { return false }, clock.Now) // as a Cache does, with no cut reported
	leaf := func(k string) uint32 { return crdt.LeafIndex(crdt.HashKey(k), 0, 4) }
	var same []string
	for i := 0; len(same) < 2; i++ {
		if k := fmt.Sprint("d", i); leaf(k) == leaf("k") {
			same = append(same, k)
		}
	}
	// The writer takes its stamp...
	rec := crdt.Record{Key: "k", Value: []byte("v"), Time: clock.Now()}
	// ...and, before it reaches the store, two deletes of a peer come
	// (moving the clock past them, as the transport does), and a
	// collection over MaxDead takes the older.
	phys.Advance(time.Millisecond)
	for i, k := range same {
		del := crdt.Record{Key: k, Tombstone: true, Time: crdt.Timestamp{Wall: rec.Time.Wall + int64(i) + 1, Node: 2}}
		if err := clock.Update(del.Time); err != nil {
			t.Fatal(err)
		}
		if o := s.Apply(del, true, phys.Now()); o != crdt.Applied {
			t.Fatalf("delete of %s: %v", k, o)
		}
	}
	if got := s.Collect(phys.Now(), true, lww.NoStable); len(got) != 1 {
		t.Fatalf("collected %v, want the older delete", got)
	}
	stored, err := s.Write(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("k", phys.Now); !ok {
		held, _ := s.Lookup("k")
		t.Fatalf("Write of %v returned nil, and the store holds %v: the write was rejected unseen", stored, held)
	}
	if held, _ := s.Lookup("k"); held.Time != stored.Time {
		t.Fatalf("held %v, Write returned %v", held.Time, stored.Time)
	}
}
