package store

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestNoReadsKeepsTheNewestAfterARewrite: a store bounded in keys, never
// read, one key deleted and written again (a returning key, which the
// sketch admits to the main queue): the values written once each still go
// in the order they came, and the store ends holding the newest.
func TestNoReadsKeepsTheNewestAfterARewrite(t *testing.T) {
	s := mustStore(t, Config{MaxKeys: 10})
	wall := testNow
	write := func(k string, tomb bool) {
		wall++
		rec := crdt.Record{Key: k, Time: crdt.Timestamp{Wall: wall, Node: 1}, Tombstone: tomb}
		if !tomb {
			rec.Value = []byte("v")
		}
		if _, err := s.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		write(fmt.Sprint("k", i), false)
	}
	write("k0", true)
	write("k0", false)
	for i := range 100 {
		write(fmt.Sprint("n", i), false)
	}
	var old []string
	for i := 1; i < 10; i++ {
		if r, ok := s.Lookup(fmt.Sprint("k", i)); ok && !r.Evicted && !r.Tombstone {
			old = append(old, r.Key)
		}
	}
	if len(old) > 0 {
		t.Fatalf("%v, written once and never read, outlived 100 newer values", old)
	}
}
