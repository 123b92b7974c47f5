//go:build race

package store

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestGetRacingRewritesOfOtherSizes: a lock-free Get of a key rewritten
// with values of other size classes (each its own allocation) makes its
// slice only of one value's pointer and length. It made it before the
// sequence check that threw the mix away, and under the race detector,
// whose pointer checks refuse a slice across allocations, the process
// stopped ("checkptr: unsafe.Slice result straddles multiple
// allocations"): any user's -race test of concurrent Get and Set of one
// key. It exists in race builds only, where it can fail.
func TestGetRacingRewritesOfOtherSizes(t *testing.T) {
	s := mustStore(t, Config{Shards: 1})
	s.Write(crdt.Record{Key: "k", Value: make([]byte, 1), Time: crdt.Timestamp{Wall: testNow, Node: 1}})
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			if v, ok := s.Get("k", func() int64 { return testNow }); !ok || (len(v) != 1 && len(v) != 4096) {
				t.Errorf("Get: %d bytes, %v", len(v), ok)
				return
			}
		}
	})
	for i := range 50_000 {
		n := 1
		if i%2 == 0 {
			n = 4096 // another size class
		}
		s.Write(crdt.Record{Key: "k", Value: make([]byte, n), Time: crdt.Timestamp{Wall: testNow + int64(i) + 1, Node: 1}})
	}
	stop.Store(true)
	wg.Wait()
}
