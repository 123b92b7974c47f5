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
	s.Write(crdt.Record{Key: "gone", Tombstone: true, Time: at(4, 1)})
	// The fills begin: each reads its key's base, then is stamped at 10.
	begun := map[string]Unchanged{}
	for _, k := range []string{"older", "never", "newer", "deleted", "behind", "behind-delete", "gone"} {
		begun[k] = Unchanged{Base: s.Stamp(k), Since: at(10, 1)}
	}
	if begun["older"].Base != at(5, 1) || begun["never"].Base != (crdt.Timestamp{}) {
		t.Fatalf("bases %+v", begun)
	}
	fill := func(key string) bool {
		_, wrote, err := s.WriteIfUnchanged(crdt.Record{Key: key, Value: []byte("filled"), Time: at(50, 1)}, begun[key])
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
	if !fill("older") || !fill("never") {
		t.Fatal("a fill over an older record, or of a key never held, was refused")
	}
	if fill("newer") || fill("deleted") {
		t.Fatal("a fill replaced a record written after it began")
	}
	if fill("behind") || fill("behind-delete") {
		t.Fatal("a fill replaced a peer's write received after it began, stamped by a clock behind")
	}
	s.MarkSynced(testNow)
	got := s.Collect(testNow+100, false, testNow+30) // early: below the stable bound
	slices.SortFunc(got, func(a, b crdt.Version) int { return strings.Compare(a.Key, b.Key) })
	if len(got) != 3 || got[0].Key != "behind-delete" || got[1].Key != "deleted" || got[2].Key != "gone" {
		t.Fatalf("collected %v, want the tombstones", got)
	}
	if fill("deleted") {
		t.Fatal("a fill went in where a delete made after it began was collected")
	}
	if fill("gone") {
		t.Fatal("a fill went in where the record it began over was collected meanwhile")
	}
	if r, ok := s.Lookup("older"); !ok || string(r.Value) != "filled" {
		t.Fatalf("older holds %+v", r)
	}
}
