package store

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestMaxKeysSmallQueueShareIsInKeys: under MaxKeys alone, bytes are no
// bound, and the small queue's share is counted in entries. Counted in
// bytes too (the store's resident bytes were handed to Victim whatever its
// bounds), values larger than the read ones held made the small queue one
// entry, and a value written here went at the next write, before its
// first read (found by review of the byte share: 90 of 990 held).
func TestMaxKeysSmallQueueShareIsInKeys(t *testing.T) {
	s := mustStore(t, Config{MaxKeys: 1000})
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
	// New values of 2 KB, each read once, 10 writes after its own write
	// (well within a tenth of 1,000 entries).
	const lag, n = 10, 1000
	hits, reads := 0, 0
	for i := range n {
		write(fmt.Sprint("new", i), 2000)
		if i >= lag {
			reads++
			if _, ok := s.Get(fmt.Sprint("new", i-lag), now); ok {
				hits++
			}
		}
	}
	if hits < reads*9/10 {
		t.Fatalf("MaxKeys 1000, no MaxBytes: %d of %d values read %d writes after their write were still held (want nearly all: the small queue's share is a tenth of the keys)", hits, reads, lag)
	}
}

// TestSmallQueueShareInBytesOnlyWhileBytesBind: with a byte bound set but
// not reached (a loose cap beside MaxKeys), eviction for the keys counts
// the small queue's share in entries too: it counted bytes whenever a
// byte bound was set, and values larger than the read ones went at the
// next write (found by review of the fix: 90 of 990).
func TestSmallQueueShareInBytesOnlyWhileBytesBind(t *testing.T) {
	s := mustStore(t, Config{MaxKeys: 1000, MaxBytes: 1 << 30})
	now := func() int64 { return testNow }
	wall := testNow
	write := func(k string, size int) {
		wall++
		s.Write(crdt.Record{Key: k, Value: make([]byte, size), Time: crdt.Timestamp{Wall: wall, Node: 1}})
	}
	for i := range 900 {
		write(fmt.Sprintf("hot%03d", i), 1)
	}
	for range 3 {
		for i := range 900 {
			s.Get(fmt.Sprintf("hot%03d", i), now)
		}
	}
	hits, reads := 0, 0
	for i := range 1000 {
		write(fmt.Sprint("new", i), 2000)
		if i >= 10 {
			reads++
			if _, ok := s.Get(fmt.Sprint("new", i-10), now); ok {
				hits++
			}
		}
	}
	if hits < reads*9/10 {
		t.Fatalf("MaxKeys 1000, MaxBytes 1 GiB: %d of %d values read 10 writes after their write still held", hits, reads)
	}
}
