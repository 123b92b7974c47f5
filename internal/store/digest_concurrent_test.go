package store

import (
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// TestDigestReadsRacingEveryWriterEndWhole: peers' digest, versions and
// records requests, and snapshots, read the store while writers write,
// delete, apply, evict past a bound, refill and collect on every shard
// (under the race detector, a read of a tree whose changes were queued
// without the shard's lock shows); once they stop, the digest equals one
// built from the records held, node by node and leaf by leaf.
func TestDigestReadsRacingEveryWriterEndWhole(t *testing.T) {
	cfg := Config{Shards: 16, DigestBits: 12, Horizon: time.Millisecond, MaxKeys: 64, MaxDead: 20, Founder: true}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(1_750_000_000_000_000_000)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			clock := crdt.NewHLC(crdt.NodeID(w+1), now.Load, time.Second)
			for i := 0; i < 4000 && !stop.Load(); i++ {
				key := fmt.Sprint("k", rng.IntN(200))
				switch rng.IntN(7) {
				case 0, 1:
					rec := crdt.Record{Key: key, Value: []byte("v"), Time: clock.Now()}
					if rng.IntN(2) == 0 {
						rec.Expires = rec.Time.Wall + int64(rng.IntN(3))
					}
					s.Write(rec)
				case 2:
					s.Write(crdt.Record{Key: key, Tombstone: true, Time: clock.Now()})
				case 3:
					s.Apply(crdt.Record{Key: key, Evicted: rng.IntN(2) == 0, Value: []byte("p"), Time: crdt.Timestamp{Wall: now.Load() - int64(rng.IntN(100)), Node: 9}}, false, now.Load())
				case 4:
					if r, ok := s.Lookup(key); ok && r.Evicted {
						r.Evicted, r.Value = false, []byte("r")
						s.Refill(r, now.Load())
					}
				case 5:
					s.Evict(key)
				case 6:
					now.Add(int64(rng.IntN(1000)))
					s.Collect(now.Load(), true, now.Load()-10)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(99, 1))
		for !stop.Load() {
			s.AppendHashes(nil, 0, nil)
			s.AppendHashes(nil, 1, []uint32{0})
			s.AppendHashes(nil, 2, []uint32{uint32(rng.IntN(16))})
			s.AppendHashes(nil, 3, []uint32{uint32(rng.IntN(256))})
			leaf := uint32(rng.IntN(int(s.Leaves())))
			s.AppendVersions(nil, leaf)
			s.AppendRecords(nil, leaf)
			if rng.IntN(50) == 0 {
				s.WriteSnapshot(io.Discard, now.Load())
			}
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-done
	checkDigest(t, s, cfg.DigestBits)
}
