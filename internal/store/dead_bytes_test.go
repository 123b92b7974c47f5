package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// TestMaxDeadBytesBoundsTheKeysOfDeadRecords: a peer's tombstones of long
// keys (a 32 KiB key each) stay far under MaxDead in number, yet held
// megabytes: past MaxDeadBytes bytes of their keys, Collect takes the
// oldest until the bytes are under it, raising their watermarks, counted
// as collected by the bound; the newest stay, and so do short keys' newer
// deletes.
func TestMaxDeadBytesBoundsTheKeysOfDeadRecords(t *testing.T) {
	const keyLen, long = 32 << 10, 40
	s := mustStore(t, Config{Horizon: time.Hour, MaxDead: 10_000, MaxDeadBytes: 10 * keyLen})
	key := func(i int) string { return fmt.Sprintf("%05d", i) + strings.Repeat("k", keyLen-5) }
	for i := range long {
		s.Write(crdt.Record{Key: key(i), Tombstone: true, Time: crdt.Timestamp{Wall: testNow + int64(i) + 1, Node: 1}})
	}
	for i := range 5 {
		s.Write(crdt.Record{Key: fmt.Sprint("short", i), Tombstone: true, Time: crdt.Timestamp{Wall: testNow + long + int64(i) + 1, Node: 1}})
	}
	s.MarkSynced(testNow)
	got := s.Collect(testNow+100, false, lww.NoStable)
	// 40 long keys and 5 short: the bytes over 10 keys' worth are 30 long
	// keys and the short ones' bytes, so the 31 oldest go.
	if len(got) != 31 {
		t.Fatalf("collected %d records, want the 31 oldest", len(got))
	}
	for i := range long {
		if _, held := s.Lookup(key(i)); held != (i >= 31) {
			t.Errorf("key %d held: %v; want only the 9 newest long keys", i, held)
		}
	}
	for i := range 5 {
		if _, held := s.Lookup(fmt.Sprint("short", i)); !held {
			t.Errorf("short%d, newer than every long key, was collected", i)
		}
	}
	old := crdt.Record{Key: key(0), Value: []byte("old"), Time: crdt.Timestamp{Wall: testNow, Node: 2}}
	if o := s.Apply(old, false, testNow+100); o != crdt.Rejected {
		t.Fatalf("a write older than a collected delete: %v, want rejected", o)
	}
	if st := s.Stats(); st.CollectedByBound != 31 || st.Tombstones != 14 {
		t.Fatalf("stats %+v: want 31 collected by the bound, 14 tombstones held", st)
	}
	// The bound holds from then on: a collection with nothing new takes
	// nothing more.
	if got := s.Collect(testNow+101, false, lww.NoStable); len(got) != 0 {
		t.Fatalf("a second collection took %d more", len(got))
	}
}

// TestARevivedLongKeyMakesTheBoundCollectNothing: a long key's delete
// counted by the collection's walk, and written again (a value) before
// the bound's scan, is dead no longer: the dead records' keys left are
// well under MaxDeadBytes, and the bound collects nothing. The walk's
// stale count was taken for the truth: 32 KiB over the bound, and the
// bound took 32 KiB of the oldest other dead records, here every one of
// 98 short keys' deletes, raising their watermarks over writes still on
// their way (found by review). A count stale by one record cost MaxDead
// one record; by one long key, MaxDeadBytes costs its length in others.
func TestARevivedLongKeyMakesTheBoundCollectNothing(t *testing.T) {
	const keyLen, short = 32 << 10, 100
	s := mustStore(t, Config{Shards: 1, DigestBits: 4, Horizon: time.Hour, MaxDead: 10_000, MaxDeadBytes: 33_000, Founder: true})
	shortKey := func(i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("s", 97) }
	for i := range short {
		s.Write(crdt.Record{Key: shortKey(i), Tombstone: true, Time: crdt.Timestamp{Wall: testNow + int64(i) + 1, Node: 1}})
	}
	long := strings.Repeat("k", keyLen)
	s.Write(crdt.Record{Key: long, Tombstone: true, Time: crdt.Timestamp{Wall: testNow + short + 1, Node: 1}})
	s.MarkSynced(testNow)
	now := testNow + 1000
	betweenSteps = func(_ int, done bool) {
		if done { // the walk has counted the long key's delete
			betweenSteps = nil
			s.Write(crdt.Record{Key: long, Value: []byte("v"), Time: crdt.Timestamp{Wall: now, Node: 1}})
		}
	}
	t.Cleanup(func() { betweenSteps = nil })
	if got := s.Collect(now, false, lww.NoStable); len(got) != 0 {
		t.Fatalf("the bound collected %d records with %d bytes of dead keys held, MaxDeadBytes 33,000", len(got), short*100)
	}
}
