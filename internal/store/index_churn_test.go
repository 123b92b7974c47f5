package store

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// checkStore compares what readers find, the counts and the policy with
// the maps.
func checkStore(t *testing.T, s *Store, now int64) {
	t.Helper()
	var values int
	var bytes int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.m.Range(func(r crdt.Record) bool {
			if !r.Tombstone && !r.Evicted {
				values++
				bytes += int64(len(r.Key) + len(r.Value))
			}
			checkFound(t, sh, r.Key)
			return true
		})
		sh.mu.Unlock()
	}
	if s.Len() != values || s.bytes.Load() != bytes {
		t.Fatalf("Len %d bytes %d; maps hold %d of %d", s.Len(), s.bytes.Load(), values, bytes)
	}
	if s.policy != nil && s.policy.Len() != s.Len() {
		t.Fatalf("policy orders %d, held %d", s.policy.Len(), s.Len())
	}
}

// checkFound checks that readers find key's entry in shard sh (held
// locked), as its writer does, none for a key it does not hold.
func checkFound(t interface {
	Helper()
	Fatalf(format string, args ...any)
}, sh *shard, key string) {
	t.Helper()
	if got, want := sh.find.Find(key), sh.m.Entry(key); got != want {
		t.Fatalf("shard %d: readers find entry %p of %q, the map holds %p", sh.id, got, key, want)
	}
}

// TestStoreIndexAndCountsAgreeOverManyKeys: 2,000 keys in one shard (the index
// grows and shrinks) through every operation; the index, counts and policy
// agree with the maps, and deleting and collecting everything empties them.
func TestStoreIndexAndCountsAgreeOverManyKeys(t *testing.T) {
	for _, cfg := range []Config{{Shards: 1, Founder: true, Horizon: 10}, {Shards: 16, MaxKeys: 300, Founder: true, Horizon: 10, MaxDead: 50}, {Shards: 1, MaxBytes: 5000, MaxValueSize: 40, Founder: true, Horizon: 10}} {
		s := mustStore(t, cfg)
		r := rand.New(rand.NewPCG(1, 2))
		now := int64(testNow)
		steps := 30_000
		if raceEnabled {
			steps = 6_000
		}
		for step := range steps {
			now += int64(r.IntN(3))
			k := fmt.Sprint("k", r.IntN(2000))
			if r.IntN(4) == 0 {
				k = fmt.Sprint("a-long-key-over-sixteen-", r.IntN(2000))
			}
			ts := crdt.Timestamp{Wall: now, Node: 1}
			switch op := r.IntN(12); op {
			case 0, 1, 2:
				var exp int64
				if r.IntN(3) == 0 {
					exp = now + int64(r.IntN(50))
				}
				s.Write(crdt.Record{Key: k, Value: make([]byte, r.IntN(60)), Time: ts, Expires: exp})
			case 3, 4:
				s.Write(crdt.Record{Key: k, Tombstone: true, Time: ts})
			case 5:
				s.Evict(k)
			case 6:
				s.Collect(now, true, now-int64(r.IntN(20)))
			case 7:
				ts.Node = 2
				ts.Wall -= int64(r.IntN(40))
				s.Apply(crdt.Record{Key: k, Value: make([]byte, r.IntN(60)), Time: ts}, r.IntN(2) == 0, now)
			case 8:
				if rec, ok := s.Lookup(k); ok && rec.Evicted {
					rec.Value, rec.Evicted = make([]byte, r.IntN(30)), false
					s.Refill(rec, now)
				}
			case 9:
				f := s.WatchFill(k)
				if r.IntN(2) == 0 {
					s.Write(crdt.Record{Key: k, Value: []byte("w"), Time: crdt.Timestamp{Wall: now + 1, Node: 1}})
				}
				s.WriteIfUnchanged(crdt.Record{Key: k, Value: []byte("fill"), Time: ts}, f)
				s.EndFill(f)
			case 10:
				ts.Node = 3
				s.Apply(crdt.Record{Key: k, Evicted: true, Time: ts}, false, now)
			case 11:
				s.Apply(s.Tombstone(k), false, now)
			}
			if step%2000 == 0 {
				checkStore(t, s, now)
			}
		}
		checkStore(t, s, now)
		// delete everything, collect: tables shrink
		s.Range(func(r crdt.Record) bool {
			s.Write(crdt.Record{Key: r.Key, Tombstone: true, Time: crdt.Timestamp{Wall: now + 1, Node: 1}})
			return true
		})
		now += 1000
		s.Collect(now, true, now)
		checkStore(t, s, now)
		st := s.Stats()
		if st.Records != 0 || st.Keys != 0 || st.Bytes != 0 {
			t.Errorf("%+v: after deleting and collecting all: %+v", cfg, st)
		}
	}
}

// TestDeleteIsObservedUnderIndexChurn: a key deleted is not served to the
// goroutine that deleted it while other writers grow and shrink the index.
func TestDeleteIsObservedUnderIndexChurn(t *testing.T) {
	s := mustStore(t, Config{Shards: 1, Founder: true, MaxKeys: 500})
	var clock atomic.Int64
	clock.Store(testNow)
	var stop atomic.Bool
	var writers, readers sync.WaitGroup
	rounds := 20_000
	if raceEnabled {
		rounds = 3_000
	}
	for g := range 2 {
		writers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for !stop.Load() {
				k := fmt.Sprint("c", r.IntN(3000))
				w := clock.Add(1)
				ts := crdt.Timestamp{Wall: w, Node: crdt.NodeID(10 + g)}
				switch r.IntN(4) {
				case 0, 1:
					s.Write(crdt.Record{Key: k, Value: []byte(k), Time: ts})
				case 2:
					s.Write(crdt.Record{Key: k, Tombstone: true, Time: ts})
				case 3:
					s.Collect(w, true, w)
				}
			}
		})
	}
	for g := range 2 {
		readers.Go(func() {
			now := func() int64 { return clock.Load() }
			for i := range rounds {
				k := fmt.Sprintf("own-%d-%d", g, i%700)
				w := clock.Add(1)
				s.Write(crdt.Record{Key: k, Value: []byte(k), Time: crdt.Timestamp{Wall: w, Node: crdt.NodeID(1 + g)}})
				if v, ok := s.Get(k, now); ok && string(v) != k {
					t.Errorf("Get(%q) = %q", k, v)
				}
				w = clock.Add(1)
				s.Write(crdt.Record{Key: k, Tombstone: true, Time: crdt.Timestamp{Wall: w, Node: crdt.NodeID(1 + g)}})
				if v, ok := s.Get(k, now); ok {
					t.Errorf("Get(%q) after its delete = %q", k, v)
					return
				}
				for j := 0; j < 3; j++ {
					k2 := fmt.Sprint("c", (i*7+j)%3000)
					if v, ok := s.Get(k2, now); ok && string(v) != k2 {
						t.Errorf("Get(%q) = %q", k2, v)
						return
					}
				}
			}
		})
	}
	readers.Wait()
	stop.Store(true)
	writers.Wait()
	checkStore(t, s, clock.Load())
}
