package store

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestSmallQueueShareIsInKeysWhileKeysBind: a store evicting for its keys
// (MaxKeys alone, or beside a byte bound not reached) counts the small
// queue's share in entries. Counted in bytes too (the store's resident
// bytes were handed to Victim whatever its bounds, then whenever a byte
// bound was set), values larger than the read ones held made the small
// queue one entry, and a value written here went at the next write,
// before its first read (found by two reviews of the byte share: 90 of
// 990 held).
func TestSmallQueueShareIsInKeysWhileKeysBind(t *testing.T) {
	for _, maxBytes := range []int64{0, 1 << 30} {
		s := mustStore(t, Config{MaxKeys: 1000, MaxBytes: maxBytes})
		now := func() int64 { return testNow }
		wall := testNow
		write := func(k string, size int) {
			wall++
			s.Write(crdt.Record{Key: k, Value: make([]byte, size), Time: crdt.Timestamp{Wall: wall, Node: 1}})
		}
		for i := range 900 { // hot, small values, read often: the main queue
			write(fmt.Sprintf("hot%03d", i), 1)
		}
		for range 3 {
			for i := range 900 {
				s.Get(fmt.Sprintf("hot%03d", i), now)
			}
		}
		// New values of 2 KB, each read once, 10 writes after its own
		// write (well within a tenth of 1,000 entries).
		const lag = 10
		hits, reads := 0, 0
		for i := range 1000 {
			write(fmt.Sprint("new", i), 2000)
			if i >= lag {
				reads++
				if _, ok := s.Get(fmt.Sprint("new", i-lag), now); ok {
					hits++
				}
			}
		}
		if hits < reads*9/10 {
			t.Errorf("MaxKeys 1000, MaxBytes %d: %d of %d values read %d writes after their write still held", maxBytes, hits, reads, lag)
		}
	}
}
