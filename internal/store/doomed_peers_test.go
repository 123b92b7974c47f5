package store

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestReadValueOutlivesAPeersWriteWhenAKeyComesBack: a key written here
// again after its delete, counted often enough to win the main queue's
// next victim's place, must not have that victim, a value written and
// read here, evicted while a peer's write never read here is held
// (README: values written by other members and never read here are
// evicted before anything this member's readers use). The victim was
// doomed, and the doomed went before the peers' writes.
func TestReadValueOutlivesAPeersWriteWhenAKeyComesBack(t *testing.T) {
	s := mustStore(t, Config{MaxKeys: 10})
	now := func() int64 { return testNow }
	wall := testNow
	write := func(k string, del bool) {
		t.Helper()
		wall++
		rec := crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: wall, Node: 1}}
		if del {
			rec.Value, rec.Tombstone = nil, true
		}
		if _, err := s.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // "back" written and deleted: counted three times
		write("back", false)
		write("back", true)
	}
	var local []string
	for i := range 9 {
		local = append(local, fmt.Sprint("local", i))
		write(local[i], false)
	}
	for _, k := range local {
		s.Get(k, now) // read here once
	}
	write("x", false)
	write("y", false) // over the bound: the read values are kept, x goes
	write("y", true)
	wall++
	s.Apply(crdt.Record{Key: "peer", Value: []byte("v"), Time: crdt.Timestamp{Wall: wall, Node: 2}}, true, testNow)
	write("back", false)
	if s.Len() != 10 {
		t.Fatalf("%d values held, want the bound, 10", s.Len())
	}
	for _, k := range local {
		if rec, _ := s.Lookup(k); rec.Evicted {
			if prec, _ := s.Lookup("peer"); !prec.Evicted {
				t.Fatalf("%s, written and read here, evicted while the peer's write, never read here, is held", k)
			}
		}
	}
}
