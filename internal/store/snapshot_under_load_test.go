package store

import (
	"bytes"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// TestSnapshotUnderLoadRestoresWhatWasAcknowledged: a snapshot written
// while writers, deletes, evictions, collections (by the horizon, early,
// and under MaxDead and MaxDeadBytes), a peer's records and its
// watermarks go on, between the walk's steps and from other goroutines,
// restores to a store that
//   - holds every version it held when the snapshot began, or a newer
//     one, or refuses it (collected, its watermark with it);
//   - resurrects no version collected before the snapshot began, nor one
//     collected during it in a shard the walk had not copied yet;
//   - keeps an evicted version as a stub, never a value older than it;
//   - holds no more than MaxKeys and MaxBytes.
func TestSnapshotUnderLoadRestoresWhatWasAcknowledged(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { snapshotUnderLoad(t, seed) })
	}
}

func snapshotUnderLoad(t *testing.T, seed int64) {
	const n = 6000
	cfg := Config{Shards: 16, Horizon: time.Hour, MaxKeys: 2500, MaxBytes: 2500 * 9,
		MaxDead: 150, MaxDeadBytes: 150 * 5, Founder: true}
	s := mustStore(t, cfg)
	var tick atomic.Int64
	tick.Store(testNow)
	stamp := func(node crdt.NodeID) crdt.Timestamp { return crdt.Timestamp{Wall: tick.Add(1), Node: node} }
	key := func(i int) string { return fmt.Sprint("k", i) }
	rng := rand.New(rand.NewSource(seed))

	var mu sync.Mutex                        // collected, under the hook and the writers
	collected := map[string]crdt.Timestamp{} // the greatest version collected of each key, to check
	note := func(vs []crdt.Version) {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range vs {
			if c, ok := collected[v.Key]; !ok || c.Less(v.Time) {
				collected[v.Key] = v.Time
			}
		}
	}

	// Before: values (a fifth with a TTL that runs out at once), deletes,
	// evictions, and collections under the bounds.
	for i := range n {
		rec := crdt.Record{Key: key(i), Value: []byte(fmt.Sprint("v", i)), Time: stamp(1)}
		if i%5 == 0 {
			rec.Expires = rec.Time.Wall + 20
		}
		if _, err := s.Write(rec); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			s.Write(crdt.Record{Key: key(i), Tombstone: true, Time: stamp(1)})
		}
		if i%500 == 499 {
			note(s.Collect(tick.Load(), true, lww.NoStable))
		}
	}
	for i := 0; i < n; i += 11 {
		s.Evict(key(i))
	}
	s.MarkSynced(tick.Load()) // early collections and a peer's marks from here on
	note(s.Collect(tick.Load(), true, lww.NoStable))

	// What the snapshot must hold, as of its beginning.
	before := map[string]crdt.Record{}
	s.Range(func(r crdt.Record) bool { before[r.Key] = r; return true })
	mu.Lock()
	collectedBefore := make(map[string]crdt.Timestamp, len(collected))
	for k, v := range collected {
		collectedBefore[k] = v
	}
	mu.Unlock()

	// During: writers from other goroutines, and the hook between steps.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed*10 + int64(w)))
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				k := key(r.Intn(n + n/4))
				switch r.Intn(4) {
				case 0:
					s.Write(crdt.Record{Key: k, Tombstone: true, Time: stamp(crdt.NodeID(10 + w))})
				case 1:
					s.Evict(k)
				default:
					rec := crdt.Record{Key: k, Value: []byte(fmt.Sprint("w", j)), Time: stamp(crdt.NodeID(10 + w))}
					if r.Intn(3) == 0 {
						rec.Expires = rec.Time.Wall + 10
					}
					s.Write(rec)
				}
			}
		}()
	}

	// collectedAhead holds the keys collected during the walk in a shard
	// the walk had not begun when it was: the snapshot must say so.
	collectedAhead := map[string]crdt.Timestamp{}
	inHook := false
	steps := 0
	betweenSteps = func(shard int, done bool) {
		if inHook {
			return // a collection's own steps, run from here
		}
		inHook = true
		defer func() { inHook = false }()
		steps++
		// Deletes of keys ahead of the walk and behind it, then a
		// collection, early or under the bounds.
		for range 20 {
			k := key(rng.Intn(n))
			s.Write(crdt.Record{Key: k, Tombstone: true, Time: stamp(2)})
		}
		for range 10 {
			s.Evict(key(rng.Intn(n)))
		}
		// A peer's records: old values of keys (refused below their
		// watermarks, stale under their records), its stubs, its deletes.
		for range 20 {
			k := key(rng.Intn(n))
			old := crdt.Timestamp{Wall: testNow + int64(rng.Intn(n)), Node: 3}
			s.Apply(crdt.Record{Key: k, Value: []byte("peer-old"), Time: old}, false, tick.Load())
			s.Apply(crdt.Record{Key: k, Evicted: true, Time: stamp(3)}, true, tick.Load())
			if rng.Intn(3) == 0 {
				s.Apply(crdt.Record{Key: key(rng.Intn(n)), Tombstone: true, Time: stamp(3)}, true, tick.Load())
			}
		}
		now := tick.Load()
		var marks []Mark
		for range 8 {
			marks = append(marks, Mark{Leaf: uint32(rng.Intn(int(s.Leaves()))), Time: crdt.Timestamp{Wall: now - int64(rng.Intn(3000)), Node: 3}})
		}
		s.OfferMarks(marks, now)
		stable := int64(lww.NoStable)
		if rng.Intn(2) == 0 {
			stable = now - int64(rng.Intn(2000))
		}
		later := now
		if rng.Intn(5) == 0 {
			later = now + int64(2*time.Hour) // past the horizon: dead records go, a watermark each
		}
		vs := s.Collect(later, true, stable)
		note(vs)
		for _, v := range vs {
			if s.shardOf(crdt.HashKey(v.Key)) > shard { // the walk is in shard, or past it if done
				if c, ok := collectedAhead[v.Key]; !ok || c.Less(v.Time) {
					collectedAhead[v.Key] = v.Time
				}
			}
		}
		if later != now {
			tick.Store(later)
		}
	}
	t.Cleanup(func() { betweenSteps = nil })

	var buf bytes.Buffer
	written := tick.Load()
	_, err := s.WriteSnapshot(&buf, written)
	betweenSteps = nil
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if steps < 16 {
		t.Fatalf("the snapshot made %d steps", steps)
	}
	snap, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), int64(buf.Len()), s.DigestBits())
	if err != nil {
		t.Fatal(err)
	}
	r := mustStore(t, cfg)
	now := tick.Load()
	r.Restore(snap, crdt.NewHLC(9, func() int64 { return now }, time.Hour), now)

	// Bounds, right after the restore.
	if st := r.Stats(); st.Keys > cfg.MaxKeys || st.Bytes > cfg.MaxBytes {
		t.Errorf("restored: %d keys, %d bytes; bounds %d, %d", st.Keys, st.Bytes, cfg.MaxKeys, cfg.MaxBytes)
	}
	// holds reports whether r holds a version of k at or after at, or
	// refuses it.
	holds := func(k string, at crdt.Timestamp) (crdt.Record, bool) {
		got, ok := r.Lookup(k)
		if ok {
			return got, !got.Time.Less(at)
		}
		return got, r.Refuses(k, at)
	}
	// The evicted versions, restored where no bound evicts again: each
	// a stub still, not a value (an empty one).
	unbounded := cfg
	unbounded.MaxKeys, unbounded.MaxBytes = 0, 0
	u := mustStore(t, unbounded)
	u.Restore(snap, crdt.NewHLC(9, func() int64 { return now }, time.Hour), now)
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for k, was := range before {
		got, ok := holds(k, was.Time)
		if !ok {
			report("%s: held %+v when the snapshot began; restored %+v, which does not refuse it", k, was, got)
			continue
		}
		if was.Evicted && got.Time == was.Time && !got.Evicted {
			report("%s: an evicted version when the snapshot began, restored with a value: %+v", k, got)
		}
		if uget, _ := u.Lookup(k); was.Evicted && uget.Time == was.Time && !uget.Evicted {
			report("%s: an evicted version when the snapshot began, restored unbounded with a value: %+v", k, uget)
		}
		if v, live := r.Get(k, func() int64 { return now }); live && got.Time.Less(was.Time) {
			report("%s: serves %q, older than %+v", k, v, was)
		}
	}
	for k, at := range collectedBefore {
		if got, ok := holds(k, at); !ok {
			report("%s: collected at %v before the snapshot; restored %+v, which does not refuse it", k, at, got)
		}
	}
	for k, at := range collectedAhead {
		if got, ok := holds(k, at); !ok {
			report("%s: collected at %v during the snapshot, its shard not copied yet; restored %+v, which does not refuse it", k, at, got)
		}
	}
	if bad > 0 {
		t.Fatalf("%d faults (%d keys before, %d collected before, %d collected ahead of the walk, %d steps)",
			bad, len(before), len(collectedBefore), len(collectedAhead), steps)
	}
	t.Logf("%d keys before, %d collected before, %d ahead of the walk, %d steps, %d records", len(before), len(collectedBefore), len(collectedAhead), steps, len(snap.Records))
}
