package store

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestAReadNeverServesAVersionOlderThanOneWritten: each key has one
// writer, whose values carry their own stamps; once a write or a delete
// of a key has returned, no Get started after it serves an older value
// of the key, while evictions by the bounds and by hand, refills of the
// evicted versions, peers' older copies and collections race with the
// readers on tiny bounds (MaxKeys 1, values of exactly MaxBytes).
func TestAReadNeverServesAVersionOlderThanOneWritten(t *testing.T) {
	const keys = 6
	for _, cfg := range []Config{{Shards: 1, MaxKeys: 1, Founder: true}, {Shards: 16, MaxBytes: 20, Founder: true}, {MaxKeys: 3, MaxBytes: 40, Founder: true}} {
		t.Run(fmt.Sprintf("keys=%d,bytes=%d", cfg.MaxKeys, cfg.MaxBytes), func(t *testing.T) {
			s := mustStore(t, cfg)
			var clock atomic.Int64
			clock.Store(testNow)
			now := func() int64 { return clock.Load() }
			// floor[k] is the stamp of the last write of k that returned,
			// negated for a delete.
			var floor [keys]atomic.Int64
			value := func(w int64) []byte {
				v := make([]byte, 18) // key "kN" of 2 bytes: 20 in all, exactly MaxBytes
				binary.BigEndian.PutUint64(v, uint64(w))
				return v
			}
			rounds := 20_000
			if raceEnabled {
				rounds = 4_000
			}
			var stop atomic.Bool
			var wg, others sync.WaitGroup
			for k := range keys {
				wg.Go(func() {
					key := fmt.Sprint("k", k)
					r := rand.New(rand.NewPCG(uint64(k), 1))
					for range rounds {
						w := clock.Add(1)
						ts := crdt.Timestamp{Wall: w, Node: 1}
						if r.IntN(6) == 0 {
							s.Write(crdt.Record{Key: key, Tombstone: true, Time: ts})
							floor[k].Store(-w)
						} else {
							s.Write(crdt.Record{Key: key, Value: value(w), Time: ts})
							floor[k].Store(w)
						}
					}
				})
			}
			others.Go(func() { // evictions by hand, refills, peers' older copies, collections
				r := rand.New(rand.NewPCG(99, 2))
				for !stop.Load() {
					key := fmt.Sprint("k", r.IntN(keys))
					switch r.IntN(4) {
					case 0:
						s.Evict(key)
					case 1:
						if rec, ok := s.Lookup(key); ok && rec.Evicted {
							rec.Evicted, rec.Value = false, value(rec.Time.Wall)
							s.Refill(rec, clock.Load())
						}
					case 2:
						w := clock.Load() - 3
						s.Apply(crdt.Record{Key: key, Value: value(w), Time: crdt.Timestamp{Wall: w, Node: 1}}, false, clock.Load())
					case 3:
						s.Collect(clock.Load(), true, clock.Load())
					}
				}
			})
			var stale atomic.Int64
			var first atomic.Value
			for range 2 {
				others.Go(func() {
					for i := 0; !stop.Load(); i++ {
						k := i % keys
						f := floor[k].Load()
						v, ok := s.Get(fmt.Sprint("k", k), now)
						if !ok {
							continue
						}
						got := int64(binary.BigEndian.Uint64(v))
						if got < f || f < 0 && got <= -f {
							if stale.Add(1) == 1 {
								first.Store(fmt.Sprintf("k%d served the value of %d after the write or delete of %d returned", k, got, f))
							}
						}
					}
				})
			}
			wg.Wait()
			stop.Store(true)
			others.Wait()
			if n := stale.Load(); n > 0 {
				t.Fatalf("%d stale reads; first: %v", n, first.Load())
			}
			n, b := heldValues(s)
			if n != s.Len() || b != s.bytes.Load() || cfg.MaxKeys > 0 && n > cfg.MaxKeys || cfg.MaxBytes > 0 && b > cfg.MaxBytes {
				t.Fatalf("counted %d values of %d bytes, recount %d of %d", s.Len(), s.bytes.Load(), n, b)
			}
		})
	}
}
