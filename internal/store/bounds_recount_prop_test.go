package store

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// recountAll recounts from the maps what Stats says.
func recountAll(s *Store) (keys int, held int64, evicted, tombs, records int) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.m.Range(func(r crdt.Record) bool {
			records++
			switch {
			case r.Tombstone:
				tombs++
			case r.Evicted:
				evicted++
			default:
				keys++
				held += int64(len(r.Key) + len(r.Value))
			}
			return true
		})
		sh.mu.Unlock()
	}
	return
}

// TestBoundedCountsMatchTheMapsAfterRandomOperations drives bounded
// stores (MaxKeys, MaxBytes, MaxValueSize, MaxDead at random) through
// seeded random local writes and deletes, peers' values, stubs,
// tombstones and answers, evictions, refills (of versions made, some with
// a forged value), collections and restores from a snapshot (at times
// under other bounds), and checks after every operation that Stats' keys,
// bytes, evicted stubs, tombstones and records equal a recount of the
// maps, that the bounds hold, that the last value evicted was needed,
// that a refill applies only on a stub of its very version, and that Get
// serves only a value held, of a version written with that value.
func TestBoundedCountsMatchTheMapsAfterRandomOperations(t *testing.T) {
	runs := 200
	if raceEnabled || testing.Short() {
		runs = 20
	}
	for run := 0; run < runs; run++ {
		seed := int64(run) + 1 // fixed: a failure replays with -run and its seed
		t.Run(fmt.Sprint(seed), func(t *testing.T) { reviewBoundsRun(t, seed) })
		if t.Failed() {
			t.Logf("seed %d", seed)
			return
		}
	}
}

func reviewBoundsRun(t *testing.T, seed int64) {
	t.Helper()
	if failure := boundsRun(t, seed, intact); failure != "" {
		t.Fatal(failure)
	}
}

// boundsFailure is what a check of boundsRun that fails panics with.
type boundsFailure string

// boundsRun runs the sequence of seed on stores with the rule broken
// (intact: none), and returns the first check that failed, with the
// operations before it; "" if none did.
func boundsRun(t *testing.T, seed int64, broken brokenRule) (failure string) {
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(boundsFailure)
			if !ok {
				panic(p)
			}
			failure = string(f)
		}
	}()
	rng := rand.New(rand.NewSource(seed))
	now := testNow
	cfg := Config{Shards: 16, DigestBits: 8, Horizon: 2 * time.Second, MaxClockDrift: time.Second}
	switch rng.Intn(4) {
	case 0:
		cfg.MaxKeys = 1 + rng.Intn(5)
	case 1:
		cfg.MaxBytes = int64(4 + rng.Intn(30))
	case 2:
		cfg.MaxKeys = 1 + rng.Intn(5)
		cfg.MaxBytes = int64(4 + rng.Intn(30))
	}
	if rng.Intn(2) == 0 {
		cfg.MaxValueSize = 1 + rng.Intn(8)
	}
	if rng.Intn(2) == 0 {
		cfg.MaxDead = 1 + rng.Intn(4)
	}
	cfg.Founder = rng.Intn(2) == 0
	keys := []string{"a", "b", "c", "d", "e", "f", "a-longer-key-than-16"}
	if rng.Intn(2) == 0 {
		for i := range 40 {
			keys = append(keys, fmt.Sprint("k", i))
		}
		if cfg.MaxKeys > 0 {
			cfg.MaxKeys *= 4
		}
		if cfg.MaxBytes > 0 {
			cfg.MaxBytes *= 8
		}
	}
	var victims []int64
	hook := func(s *Store) {
		s.broken = broken
		s.beforeDrop = func(k string) {
			if r, ok := s.Lookup(k); ok && !r.Evicted && !r.Tombstone {
				victims = append(victims, int64(len(r.Key)+len(r.Value)))
			}
		}
	}
	s := mustStore(t, cfg)
	hook(s)
	clock := crdt.NewHLC(1, func() int64 { return now }, time.Second)
	key := func() string { return keys[rng.Intn(len(keys))] }
	value := func() []byte {
		b := make([]byte, rng.Intn(12))
		rng.Read(b)
		return b
	}
	var log []string
	fail := func(format string, args ...any) {
		panic(boundsFailure(strings.Join(log, "\n") + "\n" + fmt.Sprintf("seed %d cfg %+v: "+format, append([]any{seed, cfg}, args...)...)))
	}
	// versions: every value record ever made, for refills (a peer's answer).
	var made []crdt.Record
	restored := false
	for step := 0; step < 1000; step++ {
		var op string
		victims = victims[:0]
		switch rng.Intn(13) {
		case 11:
			k := key()
			o := s.Apply(s.Tombstone(k), false, now)
			op = fmt.Sprintf("answer %s: %v", k, o)
		case 12:
			k := key()
			if r, ok := s.Lookup(k); ok {
				o := s.Apply(crdt.Record{Key: k, Tombstone: true, Time: crdt.Timestamp{Wall: r.Time.Wall, Logical: r.Time.Logical + 1}}, false, now)
				op = fmt.Sprintf("dropped %s: %v", k, o)
			}
		case 0, 1:
			rec := crdt.Record{Key: key(), Value: value(), Time: clock.Now()}
			if rng.Intn(3) == 0 {
				rec.Expires = rec.Time.Wall + int64(1+rng.Intn(3))*int64(time.Second)
			}
			if s.Oversized(rec) {
				op = "skip oversized write"
				break
			}
			s.Write(rec)
			made = append(made, rec)
			op = fmt.Sprintf("write %s %d bytes %v exp %d", rec.Key, len(rec.Value), rec.Time, rec.Expires)
		case 2:
			rec := crdt.Record{Key: key(), Time: clock.Now(), Tombstone: true}
			s.Write(rec)
			op = fmt.Sprintf("delete %s", rec.Key)
		case 3, 4:
			rec := crdt.Record{Key: key(), Time: crdt.Timestamp{Wall: now + int64(rng.Intn(3500)-3000)*int64(time.Millisecond), Node: crdt.NodeID(2 + rng.Intn(3))}}
			switch rng.Intn(5) {
			case 0:
				rec.Tombstone = true
			case 1:
				rec.Evicted = true
			default:
				rec.Value = value()
				if rng.Intn(3) == 0 {
					rec.Expires = rec.Time.Wall + int64(1+rng.Intn(3))*int64(time.Second)
				}
				made = append(made, rec)
			}
			o := s.Apply(rec, rng.Intn(2) == 0, now)
			op = fmt.Sprintf("apply %s %d bytes tomb %v ev %v %v: %v", rec.Key, len(rec.Value), rec.Tombstone, rec.Evicted, rec.Time, o)
		case 5:
			k := key()
			op = fmt.Sprintf("evict %s: %v", k, s.Evict(k))
		case 6, 7:
			if len(made) == 0 {
				continue
			}
			rec := made[rng.Intn(len(made))]
			if !restored && rng.Intn(4) == 0 { // a forged value of the version (a restored stub has no fingerprint)
				rec.Value = value()
			}
			held, ok := s.Lookup(rec.Key)
			o := s.Refill(rec, now)
			op = fmt.Sprintf("refill %s %d bytes %v: %v (held %+v %v)", rec.Key, len(rec.Value), rec.Time, o, held, ok)
			if o == crdt.Applied {
				if !ok || !held.Evicted || held.Time != rec.Time || held.Expires != rec.Expires {
					fail("refill of %+v applied over %+v", rec, held)
				}
			}
		case 8:
			now += int64(rng.Intn(2000)) * int64(time.Millisecond)
			op = "time"
		case 9:
			stable := int64(lww.NoStable)
			if rng.Intn(2) == 0 {
				stable = now - int64(rng.Intn(3000))*int64(time.Millisecond)
			}
			n := s.CollectCount(now, rng.Intn(2) == 0, stable)
			op = fmt.Sprintf("collect %d", n)
		case 10:
			if rng.Intn(4) != 0 {
				s.MarkSynced(now)
				op = "synced"
				break
			}
			var buf bytes.Buffer
			if _, err := s.WriteSnapshot(&buf, now); err != nil {
				t.Fatal(err)
			}
			snap, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), int64(buf.Len()), cfg.DigestBits)
			if err != nil {
				t.Fatal(err)
			}
			if rng.Intn(2) == 0 { // restarted with other bounds
				cfg.MaxKeys, cfg.MaxBytes, cfg.MaxValueSize = 0, 0, 0
				if rng.Intn(2) == 0 {
					cfg.MaxKeys = 1 + rng.Intn(5)
				}
				if rng.Intn(2) == 0 {
					cfg.MaxBytes = int64(4 + rng.Intn(30))
				}
				if rng.Intn(2) == 0 {
					cfg.MaxValueSize = 1 + rng.Intn(8)
				}
			}
			s = mustStore(t, cfg)
			hook(s)
			clock = crdt.NewHLC(1, func() int64 { return now }, time.Second)
			s.Restore(snap, clock, now)
			restored = true
			op = fmt.Sprintf("restore %d records", len(snap.Records))
		}
		log = append(log, op)
		keysN, held, evicted, tombs, records := recountAll(s)
		st := s.Stats()
		if st.Keys != keysN || st.Bytes != held || st.Evicted != evicted || st.Tombstones != tombs || st.Records != records {
			fail("after %q: stats keys %d bytes %d evicted %d tombs %d records %d; maps hold %d %d %d %d %d",
				op, st.Keys, st.Bytes, st.Evicted, st.Tombstones, st.Records, keysN, held, evicted, tombs, records)
		}
		if cfg.MaxKeys > 0 && st.Keys > cfg.MaxKeys || cfg.MaxBytes > 0 && st.Bytes > cfg.MaxBytes {
			fail("after %q: %d keys %d bytes over bounds", op, st.Keys, st.Bytes)
		}
		if n := len(victims); n > 0 {
			last := victims[n-1]
			overKeys := cfg.MaxKeys > 0 && st.Keys+1 > cfg.MaxKeys
			overBytes := cfg.MaxBytes > 0 && st.Bytes+last > cfg.MaxBytes
			if !overKeys && !overBytes && !(cfg.MaxKeys == 0 && cfg.MaxBytes == 0) {
				fail("after %q: evicted %v, down to %d keys %d bytes: the last was not needed", op, victims, st.Keys, st.Bytes)
			}
		}
		if s.policy != nil && s.policy.Len() != st.Keys {
			fail("after %q: policy %d, keys %d", op, s.policy.Len(), st.Keys)
		}
		// Nothing served but a value held for its version.
		for _, k := range keys {
			v, ok := s.Get(k, func() int64 { return now })
			if !ok {
				continue
			}
			r, _ := s.Lookup(k)
			if r.Evicted || r.Tombstone || !bytes.Equal(r.Value, v) {
				fail("after %q: Get(%s) = %x, held %+v", op, k, v, r)
			}
			found := false
			for _, m := range made {
				if m.Key == k && m.Time == r.Time && bytes.Equal(m.Value, v) && m.Expires == r.Expires {
					found = true
				}
			}
			if !found {
				fail("after %q: Get(%s) = %x at %v: no such version was written", op, k, v, r.Time)
			}
		}
	}
	return ""
}

// TestBoundedCountsCatchBrokenStores: the property above, run on stores
// with one rule broken, fails, by the check that rule breaches: an
// eviction left uncounted by the counts' check, a refill of another
// version by the check of what a refill applies over.
func TestBoundedCountsCatchBrokenStores(t *testing.T) {
	for _, tc := range []struct {
		name   string
		broken brokenRule
		want   string
	}{
		{"eviction_uncounted", evictUncounted, "maps hold"},
		{"refill_of_any_version", refillAnyVersion, "refill of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := int64(1); seed <= 200; seed++ {
				if failure := boundsRun(t, seed, tc.broken); failure != "" {
					if !strings.Contains(failure[strings.LastIndex(failure, "\n")+1:], tc.want) {
						t.Fatalf("seed %d caught the broken store, not by the check that says %q: %s", seed, tc.want, failure)
					}
					t.Logf("caught at seed %d", seed)
					return
				}
			}
			t.Fatal("200 runs passed the broken store")
		})
	}
}
