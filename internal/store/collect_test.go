package store

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// deadStore returns a synced store holding n tombstones, of keys "d0"... at
// walls testNow+1..testNow+n, and a live value "live" at testNow.
func deadStore(t *testing.T, cfg Config, n int) *Store {
	t.Helper()
	s := mustStore(t, cfg)
	s.Write(crdt.Record{Key: "live", Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow, Node: 1}})
	for i := range n {
		s.Write(crdt.Record{Key: fmt.Sprint("d", i), Tombstone: true, Time: crdt.Timestamp{Wall: testNow + int64(i) + 1, Node: 1}})
	}
	s.MarkSynced(testNow)
	return s
}

// TestMaxDeadCollectsTheOldestFirst: past MaxDead dead records, Collect
// takes the oldest at once, raises their buckets' watermarks (an older
// write of a collected key is rejected, not resurrected), counts them, and
// leaves live values alone.
func TestMaxDeadCollectsTheOldestFirst(t *testing.T) {
	s := deadStore(t, Config{Horizon: time.Hour, MaxDead: 3}, 10)
	got := s.Collect(testNow+100, false, lww.NoStable)
	if len(got) != 7 {
		t.Fatalf("collected %d records, want the 7 over the bound", len(got))
	}
	for i := range 10 {
		_, held := s.Lookup(fmt.Sprint("d", i))
		if held != (i >= 7) {
			t.Errorf("d%d held: %v; want only the 3 newest", i, held)
		}
	}
	if _, ok := s.Get("live", func() int64 { return testNow + 100 }); !ok {
		t.Fatal("a live value was collected")
	}
	old := crdt.Record{Key: "d0", Value: []byte("old"), Time: crdt.Timestamp{Wall: testNow, Node: 2}}
	if o := s.Apply(old, false, testNow+100); o != crdt.Rejected {
		t.Fatalf("a write older than a collected delete: %v, want rejected", o)
	}
	if st := s.Stats(); st.CollectedByBound != 7 || st.Tombstones != 3 {
		t.Fatalf("stats %+v: want 7 collected by the bound, 3 tombstones held", st)
	}
}

// TestMaxDeadWaitsForASync: a member that has not completed an exchange
// since it started (and is no founder) collects nothing under the bound:
// its watermarks must not decide which of the cluster's records survive.
func TestMaxDeadWaitsForASync(t *testing.T) {
	s := mustStore(t, Config{Horizon: time.Hour, MaxDead: 1})
	for i := range 5 {
		s.Write(crdt.Record{Key: fmt.Sprint("d", i), Tombstone: true, Time: crdt.Timestamp{Wall: testNow + int64(i), Node: 1}})
	}
	if got := s.Collect(testNow+100, true, lww.NoStable); len(got) != 0 {
		t.Fatalf("collected %v before any sync", got)
	}
	s.MarkSynced(testNow + 100)
	if got := s.Collect(testNow+100, false, lww.NoStable); len(got) != 4 {
		t.Fatalf("collected %d after a sync, want 4", len(got))
	}
}

// TestCollectEarlyBelowStable: a dead record dead since before the
// stable bound (a tombstone written before it, a value expired before it)
// is collected at once, counted as early; a value written above it, or
// written below it and expired after it (a member whose clock is behind
// may serve it still), or a live value, waits.
func TestCollectEarlyBelowStable(t *testing.T) {
	s := deadStore(t, Config{Horizon: time.Hour}, 4)
	s.Write(crdt.Record{Key: "expired", Value: []byte("v"), Expires: testNow + 2, Time: crdt.Timestamp{Wall: testNow + 1, Node: 1}})
	s.Write(crdt.Record{Key: "expiring", Value: []byte("v"), Expires: testNow + 1e9, Time: crdt.Timestamp{Wall: testNow + 1, Node: 1}})
	s.Write(crdt.Record{Key: "expired-late", Value: []byte("v"), Expires: testNow + 11, Time: crdt.Timestamp{Wall: testNow + 10, Node: 1}})
	s.Write(crdt.Record{Key: "expired-after-the-bound", Value: []byte("v"), Expires: testNow + 3, Time: crdt.Timestamp{Wall: testNow + 1, Node: 1}})
	got := s.Collect(testNow+100, false, testNow+3) // d0 (+1) and d1 (+2) are below
	if len(got) != 3 {
		t.Fatalf("collected %v, want d0, d1 and expired", got)
	}
	st := s.Stats()
	if st.CollectedEarly != 3 || st.Tombstones != 2 || st.Expired != 2 {
		t.Fatalf("stats %+v: want 3 collected early, 2 tombstones and 2 expired values held", st)
	}
}

// TestNoEarlyCollectionBeforeASync: a member that has not completed an
// exchange since it started collects nothing early, whatever stable bound
// it is given, alone or not: a member restarted with its members file
// takes back the cuts it had, and with its peers in view again its bound
// came from them before it had synced with any (found by review: the
// bound was ignored only while the member was alone).
func TestNoEarlyCollectionBeforeASync(t *testing.T) {
	for _, founder := range []bool{false, true} {
		s := mustStore(t, Config{Horizon: time.Hour, Founder: founder})
		s.Write(crdt.Record{Key: "d", Tombstone: true, Time: crdt.Timestamp{Wall: testNow, Node: 1}})
		for _, alone := range []bool{false, true} {
			if got := s.Collect(testNow+100, alone, testNow+50); len(got) != 0 {
				t.Fatalf("founder %v, alone %v: collected %v early before any sync", founder, alone, got)
			}
		}
		s.MarkSynced(testNow + 100)
		if got := s.Collect(testNow+100, false, testNow+50); len(got) != 1 {
			t.Fatalf("founder %v: collected %v after a sync, want d", founder, got)
		}
	}
}

// TestMaxDeadTakesRecentlyExpiredValuesLast: past MaxDead, a tombstone
// goes before a value written long before it that expired less than
// MaxClockSkew ago: collected, the value's copy on a member whose clock
// is behind, where it is live, would be rejected (found by review).
func TestMaxDeadTakesRecentlyExpiredValuesLast(t *testing.T) {
	s := mustStore(t, Config{Horizon: time.Hour, MaxDead: 1, MaxClockSkew: 5})
	value := crdt.Record{Key: "value", Value: []byte("v"), Expires: testNow + 99, Time: crdt.Timestamp{Wall: testNow + 10, Node: 1}}
	s.Write(value)
	s.Write(crdt.Record{Key: "deleted", Tombstone: true, Time: crdt.Timestamp{Wall: testNow + 97, Node: 1}})
	s.MarkSynced(testNow)
	got := s.Collect(testNow+100, false, testNow+95)
	if len(got) != 1 || got[0].Key != "deleted" {
		t.Fatalf("collected %v, want the tombstone alone", got)
	}
	if o := s.Apply(value, false, testNow+100); o == crdt.Rejected {
		t.Fatal("the copy of a value that expired within MaxClockSkew was rejected")
	}
	if got := s.Collect(testNow+105, false, testNow+95); len(got) != 0 {
		t.Fatalf("collected %v under the bound, want nothing", got)
	}
	s.Write(crdt.Record{Key: "deleted again", Tombstone: true, Time: crdt.Timestamp{Wall: testNow + 104, Node: 1}})
	if got := s.Collect(testNow+105, false, testNow+95); len(got) != 1 || got[0].Key != "value" {
		t.Fatalf("collected %v, want the value, dead MaxClockSkew now and older than the tombstone", got)
	}
}

// TestWriteIfUnchanged: a conditional write (a fill's, stamped since
// before its filler ran) is refused when the key holds a record stamped
// at or after since, or holds none and its bucket's watermark passed since
// (a delete made since, collected already); it goes in over an older
// record, or where the key never was.
func TestWriteIfUnchanged(t *testing.T) {
	s := mustStore(t, Config{Horizon: time.Hour})
	at := func(wall int64, node crdt.NodeID) crdt.Timestamp {
		return crdt.Timestamp{Wall: testNow + wall, Node: node}
	}
	s.Write(crdt.Record{Key: "older", Value: []byte("v"), Time: at(5, 1)})
	s.Write(crdt.Record{Key: "expired", Value: []byte("v"), Time: at(1, 1), Expires: testNow + 2})
	s.Apply(crdt.Record{Key: "ahead", Tombstone: true, Time: at(12, 2)}, true, testNow) // a peer's clock ahead
	// The fills begin: each watches its key, then is stamped at 10.
	watches := map[string]FillWatch{}
	for _, k := range []string{"older", "never", "newer", "deleted", "behind", "behind-delete", "expired", "ahead"} {
		watches[k] = s.WatchFill(k)
	}
	fill := func(key string) bool {
		t.Helper()
		_, wrote, err := s.WriteIfUnchanged(crdt.Record{Key: key, Value: []byte("filled"), Time: at(10, 1)}, watches[key])
		if err != nil {
			t.Fatal(err)
		}
		return wrote
	}
	// Meanwhile: writes here, and a peer's stamped by a clock behind.
	s.Write(crdt.Record{Key: "newer", Value: []byte("v"), Time: at(20, 1)})
	s.Write(crdt.Record{Key: "deleted", Tombstone: true, Time: at(20, 1)})
	s.Apply(crdt.Record{Key: "behind", Value: []byte("peer"), Time: at(7, 2)}, true, testNow)
	s.Apply(crdt.Record{Key: "behind-delete", Tombstone: true, Time: at(8, 2)}, true, testNow)
	// And collected early: the expired value the fill began over, the
	// peer's delete received during the fill (whose watermark stays below
	// the fill's stamp), and the deletes of the rest.
	s.MarkSynced(testNow)
	got := s.Collect(testNow+100, false, testNow+30)
	slices.SortFunc(got, func(a, b crdt.Version) int { return strings.Compare(a.Key, b.Key) })
	if len(got) != 4 || got[0].Key != "ahead" || got[1].Key != "behind-delete" || got[2].Key != "deleted" || got[3].Key != "expired" {
		t.Fatalf("collected %v, want the dead records", got)
	}
	for _, k := range []string{"older", "never", "expired"} {
		if !fill(k) {
			t.Fatalf("a fill of %q, which nothing wrote meanwhile, was refused", k)
		}
	}
	for _, k := range []string{"newer", "deleted"} {
		if fill(k) {
			t.Fatalf("a fill of %q replaced a record written after it began", k)
		}
	}
	for _, k := range []string{"behind", "behind-delete"} {
		if fill(k) {
			t.Fatalf("a fill of %q replaced a peer's record received after it began, stamped by a clock behind", k)
		}
	}
	if fill("ahead") {
		t.Fatal("a fill went in below a peer's delete stamped after it (a clock ahead), collected since")
	}
	if r, ok := s.Lookup("older"); !ok || string(r.Value) != "filled" {
		t.Fatalf("older holds %+v", r)
	}
	for _, w := range watches {
		s.EndFill(w)
	}
	for i := range s.shards {
		if n := len(s.shards[i].fills); n != 0 {
			t.Fatalf("%d watches left in shard %d after every fill ended", n, i)
		}
	}
}

// TestFillWatchesCountEachFill: two fills of one key under way at once
// (a member runs one at a time, but nothing here assumes it) each see
// what was applied after their own watch began, and the watch goes when
// the last ends.
func TestFillWatchesCountEachFill(t *testing.T) {
	s := mustStore(t, Config{Horizon: time.Hour})
	at := func(wall int64) crdt.Timestamp { return crdt.Timestamp{Wall: testNow + wall, Node: 1} }
	first := s.WatchFill("k")
	s.Apply(crdt.Record{Key: "k", Value: []byte("peer"), Time: at(3)}, true, testNow)
	second := s.WatchFill("k")
	if _, wrote, _ := s.WriteIfUnchanged(crdt.Record{Key: "k", Value: []byte("first"), Time: at(5)}, first); wrote {
		t.Fatal("the first fill stored over a write applied while it ran")
	}
	s.EndFill(first)
	if _, wrote, _ := s.WriteIfUnchanged(crdt.Record{Key: "k", Value: []byte("second"), Time: at(6)}, second); !wrote {
		t.Fatal("the second fill, begun after the write, was refused")
	}
	s.EndFill(second)
	if n := len(s.shards[s.shardOf(crdt.HashKey("k"))].fills); n != 0 {
		t.Fatalf("%d watches left", n)
	}
}

// TestDeletesAheadOfTheClockAreNotCountedAsDead: MaxDead counts the dead
// records Collect could take at now; two deletes stamped after now (a
// peer's clock ahead, within drift) were counted, and with one record
// dead and MaxDead 2 the bound collected it at once, a fresh delete,
// raising its bucket's watermark (found by review).
func TestDeletesAheadOfTheClockAreNotCountedAsDead(t *testing.T) {
	s := mustStore(t, Config{Horizon: time.Hour, MaxDead: 2})
	now := int64(testNow)
	s.Apply(crdt.Record{Key: "f1", Tombstone: true, Time: crdt.Timestamp{Wall: now + int64(10*time.Second), Node: 9}}, false, now)
	s.Apply(crdt.Record{Key: "f2", Tombstone: true, Time: crdt.Timestamp{Wall: now + int64(10*time.Second), Node: 9}}, false, now)
	s.Write(crdt.Record{Key: "d", Tombstone: true, Time: crdt.Timestamp{Wall: now - 1, Node: 1}})
	s.MarkSynced(now)
	got := s.Collect(now, false, lww.NoStable)
	if len(got) != 0 {
		t.Fatalf("one record dead at now, MaxDead 2: collected %v", got)
	}
}

// TestStepBackReachesEveryShard: the store moves the sync mark of every
// shard's map back (transport.ClockStepper): a tombstone dead since after
// the moved mark less the horizon is not collected.
func TestStepBackReachesEveryShard(t *testing.T) {
	s := mustStore(t, Config{Horizon: time.Hour})
	step := int64(10 * time.Minute)
	for i := range 64 {
		s.Write(crdt.Record{Key: fmt.Sprint("d", i), Tombstone: true, Time: crdt.Timestamp{Wall: testNow - int64(time.Hour) - step/2, Node: 1}})
	}
	s.MarkSynced(testNow)
	s.StepBack(step)
	if got := s.Collect(testNow, false, lww.NoStable); len(got) != 0 {
		t.Fatalf("collected %d tombstones dead since after the moved mark less the horizon", len(got))
	}
	s.MarkSynced(testNow) // a session completes at the same moment, read after the step
	if got := s.Collect(testNow, false, lww.NoStable); len(got) != 64 {
		t.Fatalf("collected %d tombstones after a sync since the step, want 64", len(got))
	}
}
