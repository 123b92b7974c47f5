package store

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestReturningKeysKeepTheirPlace: a key written here again after its
// value was evicted is demand that came back (the store still holds its
// version), and competes for the policy's main queue; so a loop of keys
// larger than the bound is partly held instead of missing every time.
func TestReturningKeysKeepTheirPlace(t *testing.T) {
	s := mustStore(t, Config{MaxKeys: 100})
	now := func() int64 { return testNow }
	wall, hits := testNow, 0
	for pass := range 20 {
		for i := range 300 {
			k := fmt.Sprint("loop", i)
			if _, ok := s.Get(k, now); ok {
				if pass >= 10 {
					hits++
				}
				continue
			}
			wall++
			s.Write(crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: wall, Node: 1}})
		}
	}
	if hits < 10*50 { // half the bound's worth of the loop per pass
		t.Fatalf("%d hits in 10 passes over a loop of 300 keys with room for 100", hits)
	}
}
