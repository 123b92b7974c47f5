package store

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestRewriteOfAPendingVictimEvictsNoMore: a value chosen as a victim
// and rewritten larger before its eviction has dropped it goes with its
// new size; the writer that grew it, and writers after, must not evict
// another value for that growth (the victim counted as pending at its old
// size made them think the store would still be over once it went, and
// they evicted a second value, taking the store below its bound).
func TestRewriteOfAPendingVictimEvictsNoMore(t *testing.T) {
	cfg := Config{Shards: 16, MaxBytes: 100}
	s := mustStore(t, cfg)
	// a (the victim) and b in one shard, c (whose write evicts) in another.
	shardOf := func(k string) int { return s.shardOf(crdt.HashKey(k)) }
	a := "a"
	var b, c string
	for i := 10; b == "" || c == ""; i++ {
		k := fmt.Sprint("k", i) // 3 bytes
		switch {
		case b == "" && shardOf(k) == shardOf(a) && len(k) == 3:
			b = k
		case c == "" && shardOf(k) != shardOf(a) && len(k) == 3:
			c = k
		}
	}
	wall := testNow
	stamp := func() crdt.Timestamp { wall++; return crdt.Timestamp{Wall: wall, Node: 1} }
	val := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	s.Write(crdt.Record{Key: a, Value: val(40), Time: stamp()}) // 41 bytes
	s.Write(crdt.Record{Key: b, Value: val(38), Time: stamp()}) // 41
	tsGrow, tsC := stamp(), stamp()
	// c: 41 bytes, 123 in all: a is chosen (oldest written once), and
	// rewritten to 61 bytes between its choice and its drop.
	grown := false
	s.beforeDrop = func(key string) {
		if key == a && !grown {
			grown = true
			s.Write(crdt.Record{Key: a, Value: val(60), Time: tsGrow})
		}
	}
	s.Write(crdt.Record{Key: c, Value: val(38), Time: tsC})
	if !grown {
		t.Fatal("a was not chosen as the victim of c's write")
	}
	now := func() int64 { return wall }
	_, hasB := s.Get(b, now)
	_, hasC := s.Get(c, now)
	st := s.Stats()
	if st.Bytes > cfg.MaxBytes {
		t.Fatalf("%d bytes held, over %d", st.Bytes, cfg.MaxBytes)
	}
	// Once a went (61 bytes), b and c (82 bytes) were within the bound.
	if !hasB || !hasC || st.Evictions != 1 {
		t.Fatalf("b held %v, c held %v, %d bytes held, %d evictions: evicted below the bound", hasB, hasC, st.Bytes, st.Evictions)
	}
}
