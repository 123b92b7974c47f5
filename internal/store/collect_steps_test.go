package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// TestCollectLetsGoOfTheShardBetweenSteps: a collection of many dead
// records walks a shard in steps and lets go of its lock between them,
// so writers and readers of the shard wait for a step, not for the whole
// walk (it held a shard of 16,000 records 10-51 ms in a mass expiry);
// writes made between steps, of the keys being collected too, are kept
// as written, and every record dead from the start is collected.
func TestCollectLetsGoOfTheShardBetweenSteps(t *testing.T) {
	const n = 5000
	s := mustStore(t, Config{Shards: 1, Horizon: time.Hour, Founder: true})
	later := testNow + int64(2*time.Hour)
	key := func(i int) string { return fmt.Sprint("k", i) }
	for i := range n {
		// Half the keys expired over a horizon before later, half live.
		rec := crdt.Record{Key: key(i), Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow - int64(time.Minute) + int64(i), Node: 1}}
		if i%2 == 0 {
			rec.Expires = testNow
		}
		s.Write(rec)
	}
	rewritten := map[string]bool{}
	steps := onSteps(t, s, func(steps int, done bool) {
		if done {
			return
		}
		// Between steps: a dead key written again with a value that
		// lives, wherever the walk stands.
		k := key(2 * (steps * 7 % (n / 2)))
		if _, err := s.Write(crdt.Record{Key: k, Value: []byte("again"), Time: crdt.Timestamp{Wall: later + int64(steps), Node: 2}}); err != nil {
			t.Errorf("step %d: write of %s: %v", steps, k, err)
		}
		rewritten[k] = true
	})
	got := s.CollectCount(later, true, lww.NoStable)
	betweenSteps = nil
	if *steps < 4 { // about 10: the 2,500 dead records' leaves hold few others
		t.Fatalf("a collection of %d dead records among %d made %d steps, want several", n/2, n, *steps)
	}
	if want := n/2 - len(rewritten); got > n/2 || got < want {
		t.Fatalf("collected %d records, want %d to %d (%d written again between steps)", got, want, n/2, len(rewritten))
	}
	at := func() int64 { return later }
	for i := range n {
		v, ok := s.Get(key(i), at)
		switch {
		case rewritten[key(i)]:
			if !ok || string(v) != "again" {
				t.Errorf("%s, written between steps: %q %v", key(i), v, ok)
			}
		case i%2 == 0:
			if _, held := s.Lookup(key(i)); held {
				t.Errorf("%s, dead over a horizon, is still held", key(i))
			}
		case !ok:
			t.Errorf("%s, live, was collected", key(i))
		}
	}
	if st := s.Stats(); st.Keys != n/2+len(rewritten) {
		t.Fatalf("stats %+v: want %d keys", st, n/2+len(rewritten))
	}
}

// TestSnapshotLetsGoOfTheShardBetweenSteps: writing a snapshot copies a
// shard's records a few leaves at a time and lets go of its lock between
// (it held a shard of 16,000 records 5.4-7.9 ms); writes made between
// steps leave every key in it once, with the version it held before or
// one written since, and the keys nobody wrote meanwhile as they were.
func TestSnapshotLetsGoOfTheShardBetweenSteps(t *testing.T) {
	const n = 5000
	s := mustStore(t, Config{Shards: 1})
	key := func(i int) string { return fmt.Sprint("k", i) }
	for i := range n {
		s.Write(crdt.Record{Key: key(i), Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow + int64(i), Node: 1}})
	}
	rewritten := map[string]bool{}
	steps := onSteps(t, s, func(steps int, _ bool) {
		for j := range 3 { // a new value, a delete, a new key
			k := key(steps*7%n + j*n/3)
			rec := crdt.Record{Key: k, Value: []byte("again"), Time: crdt.Timestamp{Wall: testNow + 2*n + int64(steps), Node: 2}}
			switch j {
			case 1:
				rec.Value, rec.Tombstone = nil, true
			case 2:
				rec.Key = fmt.Sprint("new", steps)
			}
			if _, err := s.Write(rec); err != nil {
				t.Errorf("step %d: write of %s: %v", steps, rec.Key, err)
			}
			rewritten[rec.Key] = true
		}
	})
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf, testNow+3*n); err != nil {
		t.Fatal(err)
	}
	betweenSteps = nil
	if *steps < 4 { // about 20, at walkStep (256) records a step
		t.Fatalf("a snapshot of %d records made %d steps, want several", n, *steps)
	}
	snap, err := ReadSnapshot(&buf, int64(buf.Len()), s.DigestBits())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range snap.Records {
		if seen[r.Key] {
			t.Fatalf("%s is in the snapshot twice", r.Key)
		}
		seen[r.Key] = true
		now, _ := s.Lookup(r.Key)
		if !rewritten[r.Key] && !sameRecord(r, now) {
			t.Errorf("%s, written before the snapshot alone: %+v in it, %+v held", r.Key, r, now)
		}
		if rewritten[r.Key] && r.Time.Node == 2 && !sameRecord(r, now) {
			t.Errorf("%s, written during the snapshot: %+v in it, %+v held", r.Key, r, now)
		}
	}
	for i := range n {
		if !seen[key(i)] {
			t.Errorf("%s is not in the snapshot", key(i))
		}
	}
}

// TestMaxDeadCollectsManyInSteps: past MaxDead, the oldest dead records
// of a shard are taken walkStep at a time (a lock each), every one of
// them, and no other.
func TestMaxDeadCollectsManyInSteps(t *testing.T) {
	const n, bound = 4*walkStep + 10, 10
	s := deadStore(t, Config{Horizon: time.Hour, MaxDead: bound, Shards: 1}, n)
	if got := len(s.Collect(testNow+n+100, false, lww.NoStable)); got != n-bound {
		t.Fatalf("collected %d records, want the %d over the bound", got, n-bound)
	}
	for i := range n {
		if _, held := s.Lookup(fmt.Sprint("d", i)); held != (i >= n-bound) {
			t.Fatalf("d%d held: %v; want only the %d newest", i, held, bound)
		}
	}
	if st := s.Stats(); st.CollectedByBound != n-bound || st.Tombstones != bound {
		t.Fatalf("stats %+v: want %d collected by the bound, %d tombstones held", st, n-bound, bound)
	}
}

// onSteps makes every step of a walk of one of s's shards (Collect,
// WriteSnapshot) check that the shard's lock is let go of, then call
// each with the number of steps so far and whether the shard's walk is
// done; it returns that number.
func onSteps(t *testing.T, s *Store, each func(steps int, done bool)) *int {
	steps := new(int)
	betweenSteps = func(shard int, done bool) {
		*steps++
		sh := &s.shards[shard]
		if !sh.mu.TryLock() {
			t.Errorf("step %d: the shard's lock is held between steps", *steps)
			return
		}
		sh.mu.Unlock()
		each(*steps, done)
	}
	t.Cleanup(func() { betweenSteps = nil })
	return steps
}

// TestCollectionsAtOnceKeepTheirCounts: two collections of a store at
// once (it is safe for concurrent use) each count the dead records a
// shard keeps, for MaxDead, as one alone would: the counts of a
// collection in steps were the map's, begun again by the other's first
// step, and the one that ended last added its leaves to the other's
// whole count: it took for dead records twice as many as there were,
// and collected far below MaxDead, raising watermarks the bound did not
// call for (found by review).
func TestCollectionsAtOnceKeepTheirCounts(t *testing.T) {
	const n, bound = 8 * walkStep, 6 * walkStep
	s := deadStore(t, Config{Horizon: time.Hour, MaxDead: bound, Shards: 1, Founder: true}, n)
	now := testNow + n + 100 // every tombstone dead, none past the horizon
	var second chan int
	onSteps(t, s, func(steps int, done bool) {
		if steps != 1 {
			return
		}
		// Between the first collection's first two steps, another: run
		// whole unless collections are kept one at a time (then it
		// waits for the first, and this one goes on).
		second = make(chan int, 1)
		go func() { second <- s.CollectCount(now, true, lww.NoStable) }()
		if s.collecting.TryLock() {
			s.collecting.Unlock()
			second <- <-second
		}
	})
	s.CollectCount(now, true, lww.NoStable)
	if second == nil {
		t.Fatal("the collection made one step")
	}
	<-second // onSteps's cleanup lets go of the hook once both are done
	if st := s.Stats(); st.Tombstones != bound {
		t.Fatalf("stats %+v: %d tombstones held after two collections at once, want MaxDead's %d", st, st.Tombstones, bound)
	}
}

// TestStatsCountWhatTheLastWholeWalkKept: the expired values a collection
// keeps (Stats.Expired) are counted at its last step, not as its steps
// go: read between steps, they are the last whole walk's.
func TestStatsCountWhatTheLastWholeWalkKept(t *testing.T) {
	const n = 2000
	// Given peers and never synced: it collects nothing, and counts the
	// expired values it keeps.
	s := mustStore(t, Config{Horizon: time.Hour, Shards: 1})
	for i := range n {
		s.Write(crdt.Record{Key: fmt.Sprint("k", i), Value: []byte("v"), Expires: testNow, Time: crdt.Timestamp{Wall: testNow - 1, Node: 1}})
	}
	later := testNow + int64(time.Minute)
	if got := s.CollectCount(later, false, lww.NoStable); got != 0 {
		t.Fatalf("a member never synced collected %d records", got)
	}
	if st := s.Stats(); st.Expired != n {
		t.Fatalf("stats %+v: want %d expired values kept", st, n)
	}
	steps := onSteps(t, s, func(steps int, _ bool) {
		if st := s.Stats(); st.Expired != n {
			t.Errorf("step %d: stats say %d expired values kept, want the last walk's %d", steps, st.Expired, n)
		}
	})
	s.CollectCount(later, false, lww.NoStable)
	if *steps < 4 {
		t.Fatalf("%d steps", *steps)
	}
}

// TestSnapshotLeafRecordsAndWatermarkOfOneMoment: a snapshot copies each
// digest leaf's records and watermark at one step. Keys deleted and
// collected between two of its steps (their leaves' watermarks raised)
// are, in the snapshot, either held with their value and the leaf's old
// watermark (copied before) or gone with the raised one (after), never
// a mix, which would bring a collected key back or lose a held one on
// restore.
func TestSnapshotLeafRecordsAndWatermarkOfOneMoment(t *testing.T) {
	const n = 5000
	s := mustStore(t, Config{Shards: 1, Horizon: time.Second, Founder: true})
	key := func(i int) string { return fmt.Sprint("k", i) }
	for i := range n {
		s.Write(crdt.Record{Key: key(i), Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow + int64(i), Node: 1}})
	}
	deleted := map[string]crdt.Timestamp{}
	onSteps(t, s, func(steps int, _ bool) {
		if steps != 3 {
			return
		}
		// Between the third and fourth steps: every 25th key deleted and
		// collected, across the leaves copied and to come.
		at := testNow + 2*n
		for i := 0; i < n; i += 25 {
			del := crdt.Record{Key: key(i), Tombstone: true, Time: crdt.Timestamp{Wall: at + int64(i), Node: 2}}
			if _, err := s.Write(del); err != nil {
				t.Fatal(err)
			}
			deleted[key(i)] = del.Time
		}
		betweenSteps = nil // the collection's own steps
		if got := s.CollectCount(at+3*n+int64(2*time.Second), true, lww.NoStable); got != len(deleted) {
			t.Errorf("collected %d records, want the %d deletes", got, len(deleted))
		}
	})
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf, testNow+5*n); err != nil {
		t.Fatal(err)
	}
	if len(deleted) == 0 {
		t.Fatal("the snapshot made fewer than four steps")
	}
	snap, err := ReadSnapshot(&buf, int64(buf.Len()), s.DigestBits())
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, r := range snap.Records {
		held[r.Key] = true
	}
	marks := map[uint32]crdt.Timestamp{}
	for _, m := range snap.Marks {
		marks[m.Leaf] = m.Time
	}
	before, after := 0, 0
	for k, at := range deleted {
		leaf := crdt.LeafIndex(crdt.HashKey(k), 0, s.DigestBits())
		mark, marked := marks[leaf]
		raised := marked && at.Compare(mark) <= 0
		switch {
		case held[k] && !raised:
			before++
		case !held[k] && raised:
			after++
		default:
			t.Errorf("%s: in the snapshot %v, its leaf's watermark %v (%v), its delete %v: records and watermark of two moments", k, held[k], mark, marked, at)
		}
	}
	if before == 0 || after == 0 {
		t.Fatalf("of the keys deleted between steps, %d were copied before and %d after: want some of each", before, after)
	}
}
