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

// TestMembersWithDifferentValueLimitsStillRepair (no-loss item 4): A held
// one 1.5 MiB value (its MaxValueSize 2 MiB) and 250 small keys; B, with
// the default 1 MiB, rejected every frame that carried the big value, so
// after about 40 sessions it held none of the 250 keys and the value was
// sent again every second. A record over the receiver's limit is now kept
// as an evicted version: the rest of its frame applies, and the digests
// agree, so nothing is sent again.
func TestMembersWithDifferentValueLimitsStillRepair(t *testing.T) {
	cfg := DefaultStoreConfig()
	cfg.Vary = func(name string, c *StoreConfig) {
		c.MaxValueSize = map[string]int{"n0": 2 << 20, "n1": 1 << 20}[name]
	}
	c, err := NewCluster(2, StoreFactory(cfg), start)
	if err != nil {
		t.Fatal(err)
	}
	c.Partition([]string{"n0"}, []string{"n1"})
	big := c.Set(0, "big", make([]byte, 3<<19), 0)
	for i := range 250 {
		c.Set(0, fmt.Sprint("small-", i), []byte("v"), 0)
	}
	if _, err := c.Converge(4, budget); err != nil {
		t.Fatal(err)
	}
	if got := len(c.Replica(1).Records()); got != 251 {
		t.Fatalf("n1 holds %d records after the heal, want 251", got)
	}
	if _, ok := c.Replica(1).Get("big"); ok {
		t.Fatal("n1 serves a value over its limit")
	}
	n1 := c.Replica(1).(*StoreReplica)
	if r, ok := n1.s.Lookup("big"); !ok || !r.Evicted || r.Time != big.Time {
		t.Fatalf("n1 holds big as %+v, %v; want its version without the value", r, ok)
	}
	sent := c.Replica(0).(*StoreReplica).Node().Stats().RepairRecordsSent
	c.StartSession(0, 1)
	if err := c.DeliverAll(budget); err != nil {
		t.Fatal(err)
	}
	if again := c.Replica(0).(*StoreReplica).Node().Stats().RepairRecordsSent - sent; again != 0 {
		t.Fatalf("a session after convergence sent %d records again", again)
	}
}

// TestMemberAloneStillCollects (no-loss item 6): after its only peer left,
// a member kept every expired record for good (20,000 of them with a
// 300 ms horizon, and counting), while the same churn with a live peer, or
// with no peer ever, was collected. A member alone that has synced since
// it started counts itself synced (it is one side of a partition, like any
// group), so it collects; one that never synced and was given peers (an
// edge booting offline, a restart from an old snapshot) collects nothing
// until it has caught up, so that its watermarks cannot decide which of
// the cluster's records survive its return.
func TestMemberAloneStillCollects(t *testing.T) {
	c := newTestCluster(t, 3)
	c.Set(1, "warm", []byte("v"), 0)
	if _, err := c.Converge(4, budget); err != nil { // n1 has synced
		t.Fatal(err)
	}
	c.Crash(0)
	c.Crash(2)
	expiry := c.Phys(1) + int64(time.Second)
	for i := range 50 {
		c.Set(1, fmt.Sprint("session-", i), []byte("v"), expiry)
	}
	c.Advance(2 * DefaultStoreConfig().Horizon)
	if got := len(c.Replica(1).GC()); got != 50 {
		t.Fatalf("n1, alone after syncing, collected %d of 50 expired records", got)
	}

	// n2 comes back empty and cut off, with peers it cannot reach: its own
	// expired writes stay until it has caught up.
	if err := c.Restart(2); err != nil {
		t.Fatal(err)
	}
	c.Partition([]string{"n2"})
	c.Set(2, "edge", []byte("v"), c.Phys(2)+int64(time.Second))
	c.Advance(2 * DefaultStoreConfig().Horizon)
	if got := c.Replica(2).GC(); len(got) != 0 {
		t.Fatalf("n2, never synced, collected %v", got)
	}
}

// TestASideThatSawTheAbsentMemberWaitsForIt: n0's write, replicated to
// every member, then n0 cut off; on the other side n1 restarts empty and
// writes and deletes a key of the same bucket. n2, which saw n0, counts it
// as a failed member, and n1 takes n2's coverage: nothing is collected
// early there, and after the heal every member holds n0's write. (Had n2
// restarted too, nothing on that side would know of n0: the delete is
// collected early, and n0's write, below its watermark, lost everywhere,
// as the README's "a member the others have not seen" says; found by
// review, which scripted both.)
func TestASideThatSawTheAbsentMemberWaitsForIt(t *testing.T) {
	cfg := DefaultStoreConfig()
	cfg.Horizon, cfg.Transport.FailedTimeout = 10*time.Minute, 10*time.Minute
	cfg.Transport.StableMargin = 3 * time.Second
	cfg.Vary = nil // no bounds: every value held and served
	c, err := NewCluster(3, StoreFactory(cfg), start)
	if err != nil {
		t.Fatal(err)
	}
	keys := bucketKeys(2)
	round := func() {
		for i := range c.Size() {
			for j := range c.Size() {
				if i != j && !c.Down(i) && !c.Down(j) {
					c.StartSession(i, j)
					if err := c.DeliverAll(budget); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	c.Set(0, keys[0], []byte("old, replicated"), 0)
	if _, err := c.Converge(5, budget); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	c.Partition([]string{"n0"}, []string{"n1", "n2"})
	c.Crash(1)
	if err := c.Restart(1); err != nil {
		t.Fatal(err)
	}
	c.Set(1, keys[1], []byte("x"), 0)
	c.Delete(1, keys[1])
	if err := c.DeliverAll(budget); err != nil {
		t.Fatal(err)
	}
	collected := 0
	for range 4 {
		round()
		c.Advance(2 * time.Second)
		c.Tick()
		if err := c.DeliverAll(budget); err != nil {
			t.Fatal(err)
		}
		round()
		collected += len(c.Replica(1).GC()) + len(c.Replica(2).GC())
	}
	if collected != 0 {
		t.Errorf("n1 and n2 collected %d records early with n0, which n2 saw, away", collected)
	}
	if _, err := c.Converge(20, budget); err != nil {
		t.Fatal(err)
	}
	for i := range c.Size() {
		if _, ok := c.Replica(i).Get(keys[0]); !ok {
			t.Errorf("%s lost n0's write of %s after the heal", c.Name(i), keys[0])
		}
	}
}

// forgetsMembers is the production store restored from its snapshot
// without the members file beside it (as a Cache before it kept one).
type forgetsMembers struct{ *StoreReplica }

func (f forgetsMembers) Restore(state any) error {
	st, _ := state.(StoreSnapshot)
	st.Known = nil
	return f.StoreReplica.Restore(st)
}

// TestRestoredMemberWaitsForTheMembersItKnew: n2 saves a snapshot while
// it knows n0; n0 then writes a key, and is cut off; on the other side n1
// restarts empty and n2 from that snapshot (without the key), and n1
// writes and deletes a key of the write's bucket. n2 counts n0 as it did
// before its restart (the members it knew are kept with the snapshot), n1
// takes n2's coverage: nothing is collected early, and after the heal
// every member holds n0's write. Restored without what it knew (the
// variant), n2 waits for no one, the delete is collected early, and n0's
// write, below the bucket's watermark, is lost everywhere.
func TestRestoredMemberWaitsForTheMembersItKnew(t *testing.T) {
	for _, forget := range []bool{false, true} {
		t.Run(fmt.Sprintf("forget=%v", forget), func(t *testing.T) {
			cfg := DefaultStoreConfig()
			cfg.Horizon, cfg.Transport.FailedTimeout = 10*time.Minute, 10*time.Minute
			cfg.Transport.StableMargin = 3 * time.Second
			cfg.Vary = nil // no bounds: every value held and served
			factory := StoreFactory(cfg)
			if forget {
				factory = func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
					r, err := NewStoreReplica(name, id, phys, cfg)
					return forgetsMembers{r}, err
				}
			}
			c, err := NewCluster(3, factory, start)
			if err != nil {
				t.Fatal(err)
			}
			keys := bucketKeys(2)
			c.Set(0, "before the snapshot", []byte("v"), 0)
			if _, err := c.Converge(5, budget); err != nil {
				t.Fatal(err)
			}
			c.Advance(time.Minute)
			snap := c.Replica(2).(Snapshotter).Snapshot()
			want := c.Set(0, keys[0], []byte("after it"), 0)
			if err := c.DeliverAll(budget); err != nil {
				t.Fatal(err)
			}
			c.Advance(time.Second)
			c.Partition([]string{"n0"}, []string{"n1", "n2"})
			c.Crash(1)
			c.Crash(2)
			if err := c.Restart(1); err != nil {
				t.Fatal(err)
			}
			if err := c.RestartFrom(2, snap); err != nil {
				t.Fatal(err)
			}
			c.Set(1, keys[1], []byte("x"), 0)
			c.Delete(1, keys[1])
			collected := 0
			for range 4 {
				c.Advance(2 * time.Second)
				c.Tick()
				if err := c.DeliverAll(budget); err != nil {
					t.Fatal(err)
				}
				for _, p := range [][2]int{{1, 2}, {2, 1}} {
					c.StartSession(p[0], p[1])
					if err := c.DeliverAll(budget); err != nil {
						t.Fatal(err)
					}
				}
				collected += len(c.Replica(1).GC()) + len(c.Replica(2).GC())
			}
			if _, err := c.Converge(20, budget); err != nil {
				t.Fatal(err)
			}
			lost := 0
			for i := range c.Size() {
				if v, ok := c.Replica(i).Get(keys[0]); !ok || string(v) != "after it" {
					lost++
				}
			}
			switch {
			case !forget && (collected != 0 || lost != 0):
				t.Errorf("with n0 away, n1 and n2 collected %d records early and %d members lost n0's write at %v", collected, lost, want.Time)
			case forget && (collected == 0 || lost == 0):
				t.Errorf("the variant that forgets the members it knew collected %d records early and lost n0's write on %d members: the test no longer shows what the members file prevents", collected, lost)
			}
		})
	}
}
