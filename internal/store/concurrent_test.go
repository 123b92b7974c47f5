package store

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestBoundHoldsUnderConcurrentUse: readers (lock-free Gets, marking the
// values they hit) run against writers, peers' newer and older writes,
// deletes and evictions on small bounds; afterwards the policy orders
// exactly the values held, the counts match them, the bounds hold, and
// every hit is the record held. Nothing else here runs Get concurrently
// with eviction (written by review; run under the race detector by CI).
func TestBoundHoldsUnderConcurrentUse(t *testing.T) {
	for _, cfg := range []Config{{MaxKeys: 1}, {MaxKeys: 5}, {MaxBytes: 200}, {MaxKeys: 7, MaxBytes: 300}} {
		s := mustStore(t, cfg)
		now := func() int64 { return testNow }
		var wall atomic.Int64
		wall.Store(testNow)
		var wg sync.WaitGroup
		stop := atomic.Bool{}
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20000 {
					k := fmt.Sprint("k", (i*7+g)%40)
					w := wall.Add(1)
					ts := crdt.Timestamp{Wall: w, Node: crdt.NodeID(g + 1)}
					v := bytes.Repeat([]byte{byte(i)}, i%50)
					switch i % 5 {
					case 0, 1:
						s.Write(crdt.Record{Key: k, Value: v, Time: ts})
					case 2:
						s.Apply(crdt.Record{Key: k, Value: v, Time: ts}, true, w)
					case 3:
						s.Apply(crdt.Record{Key: k, Value: v, Time: crdt.Timestamp{Wall: w - 50, Node: 9}}, true, w)
					case 4:
						if i%15 == 4 {
							s.Write(crdt.Record{Key: k, Tombstone: true, Time: ts})
						} else {
							s.Evict(k)
						}
					}
				}
			}()
		}
		var rg sync.WaitGroup
		for range 2 {
			rg.Add(1)
			go func() {
				defer rg.Done()
				for i := 0; !stop.Load(); i++ {
					s.Get(fmt.Sprint("k", i%40), now)
				}
			}()
		}
		wg.Wait()
		stop.Store(true)
		rg.Wait()
		st := s.Stats()
		resident, sum := 0, int64(0)
		for i := range 40 {
			k := fmt.Sprint("k", i)
			v, hit := s.Get(k, now)
			rec, ok := s.Lookup(k)
			if hit {
				resident++
				sum += int64(len(k) + len(v))
				if !ok || rec.Tombstone || rec.Evicted || !bytes.Equal(rec.Value, v) {
					t.Errorf("%+v: %s hit %q, record %+v", cfg, k, v, rec)
				}
			}
		}
		s.evictMu.Lock()
		plen := s.policy.Len()
		s.evictMu.Unlock()
		if st.Keys != resident || st.Bytes != sum || plen != resident {
			t.Errorf("%+v: stats %d keys %d bytes, resident %d (%d bytes), policy %d", cfg, st.Keys, st.Bytes, resident, sum, plen)
		}
		if cfg.MaxKeys > 0 && resident > cfg.MaxKeys || cfg.MaxBytes > 0 && sum > cfg.MaxBytes {
			t.Errorf("%+v: over the bound: %d keys %d bytes", cfg, resident, sum)
		}
	}
}

// TestConcurrentEvictionStopsAtTheBound: writers of new keys on a full
// store each evict what their own write put over the bound, and no more:
// afterwards it holds exactly its bound (each write added a value of the
// same size), it was never seen below it, and it evicted one value per
// write. Several writers that each found the store one over its bound all
// evicted a value (down to 7 of 10: found by review).
func TestConcurrentEvictionStopsAtTheBound(t *testing.T) {
	const held, writers, writes = 10, 8, 20_000
	value := []byte("v")
	size := int64(18 + len(value)) // a key's bytes and its value's
	for _, cfg := range []Config{{MaxKeys: held}, {MaxBytes: held * size}} {
		t.Run(fmt.Sprintf("keys=%d,bytes=%d", cfg.MaxKeys, cfg.MaxBytes), func(t *testing.T) {
			s := mustStore(t, cfg)
			var clock atomic.Int64
			clock.Store(testNow)
			key := func(w, i int) string { return fmt.Sprintf("w%d-%014d", w, i) } // 18 bytes: every value is the same size
			for i := range held {
				s.Write(crdt.Record{Key: key(9, i), Value: value, Time: crdt.Timestamp{Wall: clock.Add(1), Node: 1}})
			}
			if n := s.Len(); n != held {
				t.Fatalf("%d values held before the writers, want %d", n, held)
			}
			var lowest atomic.Int64
			lowest.Store(held)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range writes {
						s.Write(crdt.Record{Key: key(w, i), Value: value, Time: crdt.Timestamp{Wall: clock.Add(1), Node: 1}})
						for n := int64(s.Len()); n < lowest.Load(); {
							if lowest.CompareAndSwap(lowest.Load(), n) {
								break
							}
						}
					}
				})
			}
			wg.Wait()
			if n, ev := s.Len(), s.Stats().Evictions; n != held || lowest.Load() < held || ev != writers*writes {
				t.Fatalf("afterwards %d values held (lowest seen %d), want %d; %d evictions for %d writes past the bound", n, lowest.Load(), held, ev, writers*writes)
			}
		})
	}
}
