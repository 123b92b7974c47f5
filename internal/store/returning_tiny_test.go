package store

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestReturningWriteStaysInATinyCache: as TestNewestWriteStaysInATinyCache,
// but the keys written come back (a loop over more keys than the cache
// holds, each read right after its write): a returning key the sketch has
// seen twice went straight to the main queue, behind values read once,
// while the small queue kept its one entry, an older write: the value
// just written was the next victim and was evicted by its own write.
func TestReturningWriteStaysInATinyCache(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		size int
		keys int
	}{
		{"MaxKeys 1", Config{MaxKeys: 1}, 1, 2},
		{"MaxKeys 5", Config{MaxKeys: 5}, 1, 7},
		{"MaxKeys 9", Config{MaxKeys: 9}, 1, 11},
		{"MaxBytes 100, 60-byte values", Config{MaxBytes: 100}, 60, 2},
		{"MaxBytes 10000, 1200-byte values", Config{MaxBytes: 10_000}, 1_200, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustStore(t, tc.cfg)
			now := func() int64 { return testNow }
			wall := testNow
			missed := 0
			for i := range 1000 {
				k := fmt.Sprint("k", i%tc.keys)
				wall++
				s.Write(crdt.Record{Key: k, Value: make([]byte, tc.size), Time: crdt.Timestamp{Wall: wall, Node: 1}})
				if _, ok := s.Get(k, now); !ok {
					missed++
				}
			}
			if missed > 0 {
				t.Fatalf("%d of 1,000 values written were not readable right after their write", missed)
			}
		})
	}
}
