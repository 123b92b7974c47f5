package store

import (
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestBoundedCountsMatchTheMapsOnceConcurrentWritersEnd: once concurrent
// writes, receives, evictions and refills have returned, the counts equal
// what the maps hold, the bounds hold, the policy orders every value held
// and no victim is left pending.
func TestBoundedCountsMatchTheMapsOnceConcurrentWritersEnd(t *testing.T) {
	runs, ops := 10, 20000
	if raceEnabled || testing.Short() {
		runs, ops = 3, 2000
	}
	for run := 0; run < runs; run++ {
		seed := int64(run) + 1 // fixed: a failure replays with -run and its seed
		cfg := Config{Shards: 16, DigestBits: 8}
		rng := rand.New(rand.NewSource(seed))
		switch rng.Intn(3) {
		case 0:
			cfg.MaxKeys = 1 + rng.Intn(8)
		case 1:
			cfg.MaxBytes = int64(10 + rng.Intn(60))
		default:
			cfg.MaxKeys, cfg.MaxBytes = 1+rng.Intn(8), int64(10+rng.Intn(60))
		}
		s := mustStore(t, cfg)
		var wall atomic.Int64
		wall.Store(testNow)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				r := rand.New(rand.NewSource(seed + int64(g)))
				for range ops {
					k := fmt.Sprint("k", r.Intn(12))
					v := make([]byte, r.Intn(9))
					switch r.Intn(5) {
					case 0, 1:
						s.Write(crdt.Record{Key: k, Value: v, Time: crdt.Timestamp{Wall: wall.Add(1), Node: 1}})
					case 2:
						s.Apply(crdt.Record{Key: k, Value: v, Time: crdt.Timestamp{Wall: wall.Add(1), Node: 2}}, true, wall.Load())
					case 3:
						s.Evict(k)
					case 4:
						if rec, ok := s.Lookup(k); ok && rec.Evicted {
							rec.Value, rec.Evicted = v, false
							s.Refill(rec, wall.Load())
						}
					}
				}
			})
		}
		wg.Wait()
		keys, held, evicted, tombs, records := recountAll(s)
		st := s.Stats()
		if st.Keys != keys || st.Bytes != held || st.Evicted != evicted || st.Tombstones != tombs || st.Records != records {
			t.Fatalf("seed %d cfg %+v: stats %+v; maps hold %d %d %d %d %d", seed, cfg, st, keys, held, evicted, tombs, records)
		}
		if cfg.MaxKeys > 0 && st.Keys > cfg.MaxKeys || cfg.MaxBytes > 0 && st.Bytes > cfg.MaxBytes {
			t.Fatalf("seed %d cfg %+v: %d keys %d bytes over the bounds", seed, cfg, st.Keys, st.Bytes)
		}
		if s.policy.Len() != st.Keys || s.pendingKeys.Load() != 0 || s.pendingBytes.Load() != 0 {
			t.Fatalf("seed %d: policy %d keys %d pending %d %d", seed, s.policy.Len(), st.Keys, s.pendingKeys.Load(), s.pendingBytes.Load())
		}
	}
}
