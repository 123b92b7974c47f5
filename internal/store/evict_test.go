package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestReturningKeysKeepTheirPlace: a key written here again after its
// value was evicted is demand that came back (the store still holds its
// version), and competes for the policy's main queue; so a loop of keys
// larger than the bound is partly held instead of missing every time.
func TestReturningKeysKeepTheirPlace(t *testing.T) {
	s := mustStore(t, Config{MaxKeys: 100})
	now := func() int64 { return testNow }
	wall, hits := testNow, 0
	for pass := range 20 {
		for i := range 300 {
			k := fmt.Sprint("loop", i)
			if _, ok := s.Get(k, now); ok {
				if pass >= 10 {
					hits++
				}
				continue
			}
			wall++
			s.Write(crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: wall, Node: 1}})
		}
	}
	if hits < 10*50 { // half the bound's worth of the loop per pass
		t.Fatalf("%d hits in 10 passes over a loop of 300 keys with room for 100", hits)
	}
}

// TestBoundInKeysHasALimit: MaxKeys is at most MaxBoundedKeys (an
// entry's place in the policy is 32 bits: past that it wrapped), and a
// store bounded in bytes alone is bounded in keys by it too.
func TestBoundInKeysHasALimit(t *testing.T) {
	if _, err := New(Config{MaxKeys: MaxBoundedKeys + 1}); !errors.Is(err, ErrConfig) {
		t.Fatalf("MaxKeys %d: %v, want ErrConfig", MaxBoundedKeys+1, err)
	}
	s := mustStore(t, Config{MaxKeys: MaxBoundedKeys})
	if s.maxKeys != MaxBoundedKeys {
		t.Fatalf("MaxKeys %d: bound %d", MaxBoundedKeys, s.maxKeys)
	}
	s = mustStore(t, Config{MaxBytes: 1 << 50})
	if s.maxKeys != MaxBoundedKeys {
		t.Fatalf("bounded in bytes alone: bound in keys %d, want %d", s.maxKeys, MaxBoundedKeys)
	}
	if s = mustStore(t, Config{}); s.maxKeys != 0 || s.policy != nil {
		t.Fatalf("unbounded: bound in keys %d, policy %v", s.maxKeys, s.policy != nil)
	}
}

// TestRefillIsWithinTheBounds: a value put back on its evicted stub
// (Refill, a peer's answer to an ask for the key) is held as a value
// written is: within the bounds (another key, or itself, evicted for it),
// and reported to the watcher as a set. A value over the store's bounds
// stays evicted.
func TestRefillIsWithinTheBounds(t *testing.T) {
	const bound = 20
	s := mustStore(t, Config{MaxKeys: bound, MaxValueSize: 8})
	var sets []string
	s.Watch(func(ev *Event) {
		if ev.Kind == EventSet {
			sets = append(sets, ev.Record.Key)
		}
	})
	recs := map[string]crdt.Record{}
	for i := range 2 * bound {
		k := fmt.Sprint("k", i)
		recs[k] = crdt.Record{Key: k, Value: []byte("v" + k), Time: crdt.Timestamp{Wall: testNow + int64(i), Node: 1}}
		s.Apply(recs[k], false, testNow)
	}
	now := func() int64 { return testNow }
	refilled := 0
	for k, rec := range recs {
		if _, ok := s.Get(k, now); ok {
			continue
		}
		sets = nil
		if o := s.Refill(rec, testNow); o != crdt.Applied {
			t.Fatalf("refill of %s, evicted: %v", k, o)
		}
		refilled++
		if s.Len() > bound || len(sets) != 1 || sets[0] != k {
			t.Fatalf("after the refill of %s: %d held (bound %d), sets reported %v", k, s.Len(), bound, sets)
		}
		if o := s.Refill(rec, testNow); o != crdt.Stale && s.Len() > bound {
			t.Fatalf("refill again of %s: %v, %d held", k, o, s.Len())
		}
	}
	if refilled < bound {
		t.Fatalf("%d refills of %d keys over a bound of %d", refilled, 2*bound, bound)
	}
	u := mustStore(t, Config{}) // unbounded: old stays until evicted
	old := crdt.Record{Key: "old", Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow - 9, Node: 1}, Expires: testNow - 1}
	u.Apply(old, false, testNow-10)
	if !u.Evict("old") {
		t.Fatal("old not evicted")
	}
	if o := u.Refill(old, testNow-5); o != crdt.Applied { // before its expiry
		t.Fatalf("refill of old before it expired: %v; want Applied", o)
	}
	if !u.Evict("old") {
		t.Fatal("old not evicted again")
	}
	if o := u.Refill(old, testNow); o != crdt.Stale {
		t.Fatalf("refill of an expired value: %v; want Stale", o)
	}
	big := crdt.Record{Key: "big", Value: []byte("123456789"), Time: crdt.Timestamp{Wall: testNow + 99, Node: 1}}
	s.Apply(big, false, testNow) // held as its version alone: over MaxValueSize
	if o := s.Refill(big, testNow); o != crdt.Stale {
		t.Fatalf("refill of a value over MaxValueSize: %v; want Stale", o)
	}
}

// TestRefillIsNoWriteToAFill: a value put back on its evicted stub
// (Refill) does not stop a fill of the key under way from storing: its
// version was held when the fill began, and counted as a write, it kept
// the fill from storing and the filler ran again at the next read
// (found by review).
func TestRefillIsNoWriteToAFill(t *testing.T) {
	s := mustStore(t, Config{})
	v1 := crdt.Record{Key: "k", Value: []byte("v1"), Time: crdt.Timestamp{Wall: testNow, Node: 1}}
	s.Apply(v1, false, testNow)
	s.Evict("k")
	w := s.WatchFill("k")
	defer s.EndFill(w)
	if o := s.Refill(v1, testNow); o != crdt.Applied {
		t.Fatalf("refill: %v", o)
	}
	fill := crdt.Record{Key: "k", Value: []byte("filled"), Time: crdt.Timestamp{Wall: testNow + 10, Node: 2}}
	if _, stored, err := s.WriteIfUnchanged(fill, w); err != nil || !stored {
		t.Fatalf("a fill newer than the version held not stored (%v) after a refill of that version", err)
	}
}

// TestARefillOverTheBoundsMarksTheStubAsApplyDoes: a value over the
// store's bounds (MaxValueSize) of an evicted stub's very version is not
// put back by Refill, and leaves the stub as Apply of it does: standing
// for a value too long here, whose Refill with another value of that
// version (a forged tie, which the long value wins: lww's tieWins) is
// refused, on a store that got the long value by Refill as on one that
// got it by Apply. Refill refused the long value but left the stub
// unmarked, and the short value's Refill then filled it (found by
// review; its one caller, clusterfill's Receive, applies first).
func TestARefillOverTheBoundsMarksTheStubAsApplyDoes(t *testing.T) {
	at := crdt.Timestamp{Wall: testNow, Node: 1}
	short := crdt.Record{Key: "k", Value: []byte("short"), Time: at}
	long := crdt.Record{Key: "k", Value: []byte("123456789"), Time: at}
	now := func() int64 { return testNow }
	for _, by := range []string{"Apply", "Refill"} {
		s := mustStore(t, Config{MaxValueSize: 8})
		s.Apply(short, false, testNow)
		if !s.Evict("k") {
			t.Fatal("k not evicted")
		}
		merge := s.Apply
		if by == "Refill" {
			merge = func(rec crdt.Record, _ bool, now int64) crdt.Outcome { return s.Refill(rec, now) }
		}
		if o := merge(long, false, testNow); o != crdt.Stale {
			t.Fatalf("%s of the value over MaxValueSize, of the stub's version: %v, want Stale", by, o)
		}
		if o := s.Refill(short, testNow); o != crdt.Stale {
			t.Errorf("after the %s of the value over MaxValueSize, a Refill of the short value of its version: %v, want Stale", by, o)
		}
		if v, ok := s.Get("k", now); ok {
			t.Errorf("after the %s of the value over MaxValueSize, k serves %q", by, v)
		}
		// Of another version, Refill changes nothing (Apply would take
		// the newer one): the stub stays as it was.
		newer := long
		newer.Time.Wall++
		if o := s.Refill(newer, testNow); o != crdt.Stale {
			t.Errorf("Refill of a value over MaxValueSize of a version not held: %v, want Stale", o)
		}
		if r, ok := s.Lookup("k"); !ok || !r.Evicted || r.Time != at {
			t.Errorf("after a Refill of a version not held, k holds %v (%v), want the stub of %v", r, ok, at)
		}
	}
}
