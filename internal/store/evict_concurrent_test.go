package store

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestRefillsAndReadsRacingEvictionKeepTheBooks: refills of evicted
// versions, lock-free reads, peers' writes, local rewrites of other sizes,
// deletes and collections racing on a store bounded in bytes and keys:
// afterwards the counts equal a recount, the bounds hold, and the policy
// orders exactly the values held.
func TestRefillsAndReadsRacingEvictionKeepTheBooks(t *testing.T) {
	for _, cfg := range []Config{{Shards: 1, MaxBytes: 300, Founder: true}, {Shards: 16, MaxKeys: 6, MaxBytes: 500, Founder: true}} {
		s := mustStore(t, cfg)
		var clock atomic.Int64
		clock.Store(testNow)
		var stop atomic.Bool
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 7))
				for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
					k := fmt.Sprint("k", r.IntN(30))
					w := clock.Add(1)
					ts := crdt.Timestamp{Wall: w, Node: crdt.NodeID(g + 1)}
					v := make([]byte, r.IntN(60))
					switch r.IntN(8) {
					case 0, 1:
						s.Write(crdt.Record{Key: k, Value: v, Time: ts})
					case 2, 3:
						s.Apply(crdt.Record{Key: k, Value: v, Time: ts}, true, w)
					case 4, 5:
						if rec, ok := s.Lookup(k); ok && rec.Evicted {
							rec.Evicted, rec.Value = false, make([]byte, len(k)%7)
							s.Refill(rec, w)
						}
					case 6:
						s.Write(crdt.Record{Key: k, Tombstone: true, Time: ts})
					case 7:
						s.Collect(w, true, w)
					}
				}
			})
		}
		var rg sync.WaitGroup
		for range 2 {
			rg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					s.Get(fmt.Sprint("k", i%30), func() int64 { return clock.Load() })
				}
			})
		}
		wg.Wait()
		stop.Store(true)
		rg.Wait()
		n, b := heldValues(s)
		s.evictMu.Lock()
		pl := s.policy.Len()
		s.evictMu.Unlock()
		if n != s.Len() || b != s.bytes.Load() || pl != n || b > cfg.MaxBytes || cfg.MaxKeys > 0 && n > cfg.MaxKeys {
			t.Errorf("%+v: counted %d of %d bytes, recount %d of %d, policy %d", cfg, s.Len(), s.bytes.Load(), n, b, pl)
		}
	}
}
