package proptest

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// Regression tests for the seams a review attacked: each reproduces one
// case in which a member lost a record that no newer write, delete or
// long absence explains. They run the production replica (StoreReplica).

// sameBucket returns a key other than key that falls in key's digest
// bucket (DefaultStoreConfig's 8-bit digest: the top 8 bits of the hash).
func sameBucket(key string) string {
	leaf := crdt.HashKey(key) >> 56
	for i := 0; ; i++ {
		if k := fmt.Sprint("neighbour-", i); crdt.HashKey(k)>>56 == leaf {
			return k
		}
	}
}

// forge encodes a direct delta carrying recs, as a member holding the
// cluster key could send.
func forge(t *testing.T, recs ...crdt.Record) []byte {
	t.Helper()
	frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, &wire.Delta{OriginID: 0xbad, Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// mustConverge heals, converges and checks that every member holds key
// with the given write.
func mustHold(t *testing.T, c *Cluster, key string, want crdt.Record) {
	t.Helper()
	if _, err := c.Converge(8, budget); err != nil {
		t.Fatal(err)
	}
	for i := range c.Size() {
		if c.Down(i) {
			continue
		}
		found := false
		for _, r := range c.Replica(i).Records() {
			if r.Key == key {
				found = r.Time == want.Time
			}
		}
		if !found {
			t.Fatalf("%s lost %q (written at %v)", c.Name(i), key, want.Time)
		}
	}
}

// TestHugeTTLDoesNotPoisonItsBucket (no-loss item 1): a TTL whose expiry
// does not fit in int64 used to wrap (Set computed wall + ttl), and the
// wrapped record, collected at once, raised its bucket's watermark to now:
// a member alone (n0, the founder) then rejected a peer's older live write
// in that bucket, and the peer forgot it. Set now saturates the expiry
// (TestSetHugeTTLNeverExpires in package bcache); and whatever expiry a
// record carries, it is dead from no earlier than its write, which is what
// this test checks with the wrapped expiry of old.
func TestHugeTTLDoesNotPoisonItsBucket(t *testing.T) {
	c := newTestCluster(t, 2)
	y := c.Set(1, "y", []byte("kept"), 0)
	c.Partition([]string{"n0"}, []string{"n1"})
	c.Advance(time.Second)
	wrapped := c.Phys(0) + math.MaxInt64 // what Set computed for time.Duration(math.MaxInt64)
	c.Set(0, sameBucket("y"), []byte("forever"), wrapped)
	c.Advance(time.Second)
	c.Replica(0).GC() // n0 is the founder, alone: it counts itself synced
	mustHold(t, c, "y", y)
}

// TestPeerRecordCannotRaiseAWatermark (no-loss item 2): a record 25 s ahead
// (inside MaxClockDrift) with an expiry of 1 ns used to be collected at
// once and raise its bucket's watermark 25 s into the future; an honest
// fresh write to another key of the bucket was then rejected and its
// writer forgot it.
func TestPeerRecordCannotRaiseAWatermark(t *testing.T) {
	c := newTestCluster(t, 2)
	c.Partition([]string{"n0"}, []string{"n1"})
	odd := crdt.Record{Key: "x", Value: []byte("odd"), Expires: 1,
		Time: crdt.Timestamp{Wall: c.Phys(0) + int64(25*time.Second), Node: 0xbad}}
	c.Replica(0).Receive("n1", forge(t, odd))
	c.Replica(0).GC()
	c.Advance(time.Second)
	y := c.Set(1, sameBucket("x"), []byte("fresh"), 0)
	mustHold(t, c, sameBucket("x"), y)
}

// TestSnapshotWatermarkAheadIsLowered (no-loss item 7): a snapshot whose
// record was refused for being 24 h ahead still restored that bucket's
// watermark 24 h ahead, and fresh writes to the bucket were then rejected.
func TestSnapshotWatermarkAheadIsLowered(t *testing.T) {
	c := newTestCluster(t, 2)
	ahead := c.Phys(0) + int64(24*time.Hour)
	// A member whose clock ran a day ahead wrote and collected in x's
	// bucket, and saved its snapshot.
	c.SetSkew(0, 24*time.Hour)
	c.Replica(0).Set("x", []byte("v"), 0)
	c.Replica(0).Delete("x")
	c.Replica(0).(*StoreReplica).s.MarkSynced(ahead + int64(2*time.Minute))
	c.Advance(2 * time.Minute)
	if got := c.Replica(0).GC(); len(got) != 1 {
		t.Fatalf("the day-ahead member collected %v, want x's tombstone", got)
	}
	snap := c.Replica(0).(Snapshotter).Snapshot()
	// Its clock is put right, and it restarts from that snapshot.
	c.SetSkew(0, 0)
	c.Crash(0)
	if err := c.RestartFrom(0, snap); err != nil {
		t.Fatal(err)
	}
	y := c.Set(1, sameBucket("x"), []byte("fresh"), 0)
	mustHold(t, c, sameBucket("x"), y)
}
