package store

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// BenchmarkGet measures a hit on a store of 100,000 keys of 16 bytes with
// 100-byte values, keys drawn from Zipf(1.1): the path Cache.Get takes.
func BenchmarkGet(b *testing.B) {
	s := mustStore(b, Config{})
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%012d", i)
		s.Write(crdt.Record{Key: keys[i], Value: make([]byte, 100), Time: crdt.Timestamp{Wall: testNow + int64(i), Node: 1}})
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, n-1)
	seq := make([]string, 1<<16)
	for i := range seq {
		seq[i] = keys[z.Uint64()]
	}
	now := func() int64 { return testNow }
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := s.Get(seq[i&(len(seq)-1)], now); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkBoundedWrite measures a local write to a store bounded at
// 10,000 values, of keys that cycle through 100,000 (16-byte keys,
// 100-byte values): every write evicts one value, the path a full
// bounded member's Set takes.
//
//	go test -run '^$' -bench BoundedWrite ./internal/store
func BenchmarkBoundedWrite(b *testing.B) {
	s := mustStore(b, Config{MaxKeys: 10_000})
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%012d", i)
	}
	value := make([]byte, 100)
	wall := testNow
	for i := 0; b.Loop(); i++ {
		wall++
		s.Write(crdt.Record{Key: keys[i%n], Value: value, Time: crdt.Timestamp{Wall: wall, Node: 1}})
	}
	if got := s.Len(); got > 10_000 {
		b.Fatalf("%d values held, bound 10,000", got)
	}
}
