package store

import (
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// BenchmarkGet measures a hit on a store of 100,000 keys of 16 bytes with
// 100-byte values, keys drawn from Zipf(1.1): the path Cache.Get takes.
//
//	go test -run '^$' -bench '^BenchmarkGet' -cpu 1,2 ./internal/store
func BenchmarkGet(b *testing.B) {
	s, seq := getFixture(b)
	now := func() int64 { return testNow }
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := s.Get(seq[i&(len(seq)-1)], now); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkGetParallel is BenchmarkGet from GOMAXPROCS goroutines at
// once, each from its own place in the sequence: the hot keys' shards are
// read by all of them.
func BenchmarkGetParallel(b *testing.B) {
	s, seq := getFixture(b)
	now := func() int64 { return testNow }
	var started atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := started.Add(1) * 0x9e3779b97f4a7c15
		for ; pb.Next(); i++ {
			if _, ok := s.Get(seq[i&uint64(len(seq)-1)], now); !ok {
				b.Error("miss")
				return
			}
		}
	})
}

// getFixture returns the store of BenchmarkGet and the keys to read, a
// sequence of 65,536 drawn from Zipf(1.1).
func getFixture(b *testing.B) (*Store, []string) {
	s := mustStore(b, Config{})
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%012d", i)
		s.Write(crdt.Record{Key: keys[i], Value: make([]byte, 100), Time: crdt.Timestamp{Wall: testNow + int64(i), Node: 1}})
	}
	// A collection, as a Cache makes one every GCInterval: a shard's key
	// table that a put began to resize has its old slots moved (see
	// lww.Finder), which a reader probes too until then.
	s.Collect(testNow, true, lww.NoStable)
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, n-1)
	seq := make([]string, 1<<16)
	for i := range seq {
		seq[i] = keys[z.Uint64()]
	}
	return s, seq
}

// BenchmarkBoundedWrite measures a local write to a store bounded at
// 10,000 values, of keys drawn at random from 100,000 (16-byte keys,
// 100-byte values): nine writes in ten find the key's value evicted and
// evict another, the path a full bounded member's Set takes. Beside it,
// the same writes to a store with no bound: the ratio of the two is what
// the bound costs. (With the keys written in turn, each key's entry lay
// next to the last one's in memory and the processor's prefetcher made
// the writes without a bound look 2.4 times cheaper than in random order,
// the bounded ones 1.5 times.)
//
//	go test -run '^$' -bench BoundedWrite ./internal/store
func BenchmarkBoundedWrite(b *testing.B) {
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%012d", i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	seq := make([]string, 1<<20)
	for i := range seq {
		seq[i] = keys[r.IntN(n)]
	}
	value := make([]byte, 100)
	for _, bound := range []int{0, 10_000} {
		name := "unbounded"
		if bound > 0 {
			name = "bounded"
		}
		b.Run(name, func(b *testing.B) {
			s := mustStore(b, Config{MaxKeys: bound})
			wall := testNow
			for i := 0; b.Loop(); i++ {
				wall++
				s.Write(crdt.Record{Key: seq[i&(len(seq)-1)], Value: value, Time: crdt.Timestamp{Wall: wall, Node: 1}})
			}
			if got := s.Len(); bound > 0 && got > bound {
				b.Fatalf("%d values held, bound %d", got, bound)
			}
		})
	}
}

// BenchmarkCollect measures a collection (CollectCount, as a Cache
// makes it) of a store of a million keys (16-byte keys, 100-byte values),
// and the longest write a writer running beside it waited for meanwhile
// (writer-max-us: a collection holds a shard's lock while it walks it):
//
//	go test -run '^$' -bench 'Collect|WriteSnapshot' -benchtime 5x ./internal/store
//
// few: one key in a thousand has an expiry, still ahead: the collection
// a member makes every GCInterval, which collects nothing. mass: every
// key expired over a horizon ago, and one collection takes them all (the
// store is written again before each, untimed).
func BenchmarkCollect(b *testing.B) {
	for _, mass := range []bool{false, true} {
		name := "few"
		if mass {
			name = "mass"
		}
		b.Run(name, func(b *testing.B) {
			build := func() *Store {
				return millionStore(b, func(i int) int64 {
					switch {
					case mass:
						return testNow
					case i%1000 == 0:
						return testNow + int64(3*time.Hour)
					}
					return 0
				})
			}
			later := testNow + int64(2*time.Hour) // past the horizon of values expired at testNow
			var most time.Duration
			collected := 0
			s := build()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if mass && i > 0 {
					b.StopTimer()
					s = build()
					b.StartTimer()
				}
				most = max(most, besideWriter(s, func() { collected += s.CollectCount(later, true, lww.NoStable) }))
			}
			if want := map[bool]int{false: 0, true: benchKeys}[mass]; collected != want*b.N {
				b.Fatalf("%d collected in %d collections, want %d each", collected, b.N, want)
			}
			b.ReportMetric(float64(most.Microseconds()), "writer-max-us")
		})
	}
}

// BenchmarkWriteSnapshot measures writing the snapshot of a store of a
// million keys (as BenchmarkCollect's, none expiring) to io.Discard, and
// the longest write a writer running beside it waited for meanwhile
// (writer-max-us: the snapshot copies a shard's records under its lock).
func BenchmarkWriteSnapshot(b *testing.B) {
	s := millionStore(b, func(int) int64 { return 0 })
	var most time.Duration
	b.ResetTimer()
	for b.Loop() {
		most = max(most, besideWriter(s, func() {
			if n, err := s.WriteSnapshot(io.Discard, testNow); err != nil || n < benchKeys {
				b.Fatalf("wrote %d records: %v", n, err)
			}
		}))
	}
	b.ReportMetric(float64(most.Microseconds()), "writer-max-us")
}

// benchKeys is the number of keys of millionStore.
const benchKeys = 1_000_000

// millionStore returns a store of benchKeys keys of 16 bytes with
// 100-byte values, written at testNow less a minute on, the ith expiring
// at expires(i) (0: never).
func millionStore(b *testing.B, expires func(i int) int64) *Store {
	s := mustStore(b, Config{Founder: true})
	value := make([]byte, 100)
	for i := range benchKeys {
		s.Write(crdt.Record{Key: fmt.Sprintf("key:%012d", i), Value: value, Expires: expires(i),
			Time: crdt.Timestamp{Wall: testNow - int64(time.Minute) + int64(i), Node: 1}})
	}
	runtime.GC()
	return s
}

// besideWriter runs fn while a writer writes 10,000 keys of its own to s
// in turn, and returns the longest a write took.
func besideWriter(s *Store, fn func()) time.Duration {
	stop, longest := make(chan struct{}), make(chan time.Duration)
	go func() {
		var most time.Duration
		value := make([]byte, 100)
		for i := 0; ; i++ {
			select {
			case <-stop:
				longest <- most
				return
			default:
			}
			start := time.Now()
			s.Write(crdt.Record{Key: fmt.Sprintf("own:%012d", i%10_000), Value: value, Time: crdt.Timestamp{Wall: testNow + int64(3*time.Hour) + int64(i), Node: 2}})
			most = max(most, time.Since(start))
		}
	}()
	fn()
	close(stop)
	return <-longest
}
