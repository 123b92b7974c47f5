package bcache

// Benchmarks of the Cache's local paths beside two in-process caches,
// hashicorp/golang-lru v2 and maypok86/otter v2, measured in one run so that
// the README can state ratios.
//
// The workload: 100,000 keys of 16 bytes with
// 100-byte values, keys drawn from a Zipf(1.1) distribution with a fixed
// seed. Every cache is built the way an application would fill it: a fresh
// key string and a fresh value per key. The Cache under test is a single
// member on 127.0.0.1 with replication on: its protocol goroutines run, and
// with no peers it queues no deltas (BenchmarkSet measures a member with a
// peer too).
//
//	go test -run '^$' -bench 'Get|Set|HeapPerKey' -benchmem -cpu 1,2 -count 5 .

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"
)

const (
	peerKeys      = 100_000
	peerKeysLarge = 1_000_000 // the second heap figure of BenchmarkHeapPerKey
	peerValueSize = 100
	peerSeqLen    = 1 << 16 // Zipf draws, indexed with a mask
)

// peerKey is the i-th key: exactly 16 bytes.
func peerKey(i int) string { return fmt.Sprintf("key:%012d", i) }

// peerSeq returns a fixed sequence of Zipf(1.1)-distributed keys over n
// keys. The strings are not the ones the caches hold, so every lookup
// compares key bytes as it would for a key read off the network.
func peerSeq(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(r, 1.1, 1, uint64(n-1))
	names := make([]string, n)
	for i := range names {
		names[i] = peerKey(i)
	}
	seq := make([]string, peerSeqLen)
	for i := range seq {
		seq[i] = names[z.Uint64()]
	}
	return seq
}

// peerCache is what the benchmarks need of each cache. The interface call
// costs the same for all three.
type peerCache interface {
	Get(key string) ([]byte, bool)
	Set(key string, value []byte) error
	Close()
}

type bcachePeer struct{ c *Cache }

func (p bcachePeer) Get(key string) ([]byte, bool)      { return p.c.Get(key) }
func (p bcachePeer) Set(key string, value []byte) error { return p.c.Set(key, value, 0) }
func (p bcachePeer) Close()                             { p.c.Close() }

// pairPeer is a member with a peer of its own, closed with it.
type pairPeer struct {
	bcachePeer
	peer *Cache
}

func (p pairPeer) Close() { p.c.Close(); p.peer.Close() }

type lruPeer struct{ c *lru.Cache[string, []byte] }

func (p lruPeer) Get(key string) ([]byte, bool) { return p.c.Get(key) }
func (p lruPeer) Set(key string, value []byte) error {
	p.c.Add(key, value)
	return nil
}
func (p lruPeer) Close() {}

type otterPeer struct{ c *otter.Cache[string, []byte] }

func (p otterPeer) Get(key string) ([]byte, bool) { return p.c.GetIfPresent(key) }
func (p otterPeer) Set(key string, value []byte) error {
	p.c.Set(key, value)
	return nil
}
func (p otterPeer) Close() { p.c.StopAllGoroutines() }

// peerSpec opens an empty cache with room for n keys.
type peerSpec struct {
	name string
	open func(n int) (peerCache, error)
}

func peerSpecs() []peerSpec {
	return []peerSpec{
		{"bcache", func(int) (peerCache, error) {
			c, err := New(Config{BindAddr: "127.0.0.1:0", NodeName: "bench"})
			return bcachePeer{c}, err
		}},
		{"golang-lru", func(n int) (peerCache, error) {
			c, err := lru.New[string, []byte](n)
			return lruPeer{c}, err
		}},
		{"otter", func(n int) (peerCache, error) {
			c, err := otter.New(&otter.Options[string, []byte]{MaximumSize: n})
			return otterPeer{c}, err
		}},
	}
}

// build opens a cache and fills it with n keys, each a fresh string with a
// fresh value, in a shuffled order (the same at every call). Filled in key
// order, the keys the Zipf draws favour (the first ones) lay next to each
// other in memory, in every cache, and reads found them in fewer cache
// lines than a cache filled as its keys come would: bcache's parallel Get
// took 23.5-29.4 ns against 29.7-40.3 (2026-12-06).
func (s peerSpec) build(b *testing.B, n int) peerCache {
	b.Helper()
	c, err := s.open(n)
	if err != nil {
		b.Fatalf("%s: %v", s.name, err)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, i := range order {
		if err := c.Set(peerKey(i), make([]byte, peerValueSize)); err != nil {
			c.Close()
			b.Fatalf("%s: fill: %v", s.name, err)
		}
	}
	return c
}

// BenchmarkGet reads Zipf keys from every goroutine of b.RunParallel; all
// keys are present, so every read is a hit. Run it with -cpu 1,2.
func BenchmarkGet(b *testing.B) {
	seq := peerSeq(peerKeys)
	for _, s := range peerSpecs() {
		var c peerCache // built once, kept across b.N rounds
		b.Run(s.name, func(b *testing.B) {
			if c == nil {
				c = s.build(b, peerKeys)
			}
			b.ResetTimer()
			peerParallelGet(b, c, seq)
		})
		if c != nil {
			c.Close()
		}
	}
}

func peerParallelGet(b *testing.B, c peerCache, seq []string) {
	var goroutines, misses, sink atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		// Spread the starting points of the goroutines over the sequence.
		i := goroutines.Add(1) * 0x9E3779B97F4A7C15
		var miss, n uint64
		for pb.Next() {
			v, ok := c.Get(seq[i&(peerSeqLen-1)])
			if !ok {
				miss++
			}
			n += uint64(len(v))
			i++
		}
		misses.Add(miss)
		sink.Add(n)
	})
	if m := misses.Load(); m > 0 {
		b.Fatalf("%d misses, want none", m)
	}
}

// BenchmarkSet overwrites Zipf keys with a 100-byte value from one
// goroutine. bcache copies the value (its API lets the caller reuse the
// buffer); the peers keep the slice they are given. A member alone (the
// spec "bcache") queues no delta; "bcache-with-a-peer" is a member with a
// peer in the same process, which hands each write to its protocol
// goroutine to be sent (at -cpu 1 the peer's receiving shares the
// processor). For bcache, dropped/op is the share of writes whose delta
// found the protocol's queue full (anti-entropy would carry them).
func BenchmarkSet(b *testing.B) {
	seq := peerSeq(peerKeys)
	specs := peerSpecs()
	specs = slices.Insert(specs, 1, peerSpec{"bcache-with-a-peer", func(int) (peerCache, error) {
		c, err := New(Config{BindAddr: "127.0.0.1:0", NodeName: "bench"})
		if err != nil {
			return nil, err
		}
		peer, err := New(Config{BindAddr: "127.0.0.1:0", NodeName: "bench-peer", Peers: []string{c.Addr()}})
		if err != nil {
			c.Close()
			return nil, err
		}
		for len(c.Members()) < 2 {
			time.Sleep(10 * time.Millisecond) // polling a figure while the peer joins
		}
		return pairPeer{bcachePeer{c}, peer}, nil
	}})
	for _, s := range specs {
		b.Run(s.name, func(b *testing.B) {
			c := s.build(b, peerKeys)
			defer c.Close()
			dropped := func() uint64 { // the writes whose delta was dropped, of a bcache member
				if p, ok := c.(pairPeer); ok {
					r := p.c.Stats().Replication
					return r.Protocol.DeltasDropped + r.WritesDropped
				}
				if bc, ok := c.(bcachePeer); ok {
					r := bc.c.Stats().Replication
					return r.Protocol.DeltasDropped + r.WritesDropped
				}
				return 0
			}
			before := dropped() // the fill's are not the timed writes'
			v := make([]byte, peerValueSize)
			i := 0
			for b.Loop() {
				if err := c.Set(seq[i&(peerSeqLen-1)], v); err != nil {
					b.Fatal(err)
				}
				i++
			}
			_, pair := c.(pairPeer)
			if _, alone := c.(bcachePeer); pair || alone {
				b.ReportMetric(float64(dropped()-before)/float64(b.N), "dropped/op")
			}
		})
	}
}

// BenchmarkHeapPerKey reports the live heap a cache holds per key, filled
// with fresh 16-byte keys and fresh 100-byte values: B/key with 100,000
// keys, B/key@1M with 1,000,000 (skipped with -short). Fixed costs (for
// bcache: 256 shards, their digest trees, the memberlist member) are
// included. ns/op is the time to build and measure one cache of 100,000.
func BenchmarkHeapPerKey(b *testing.B) {
	for _, s := range peerSpecs() {
		b.Run(s.name, func(b *testing.B) {
			var sum float64
			for b.Loop() {
				sum += peerHeapPerKey(b, s, peerKeys)
			}
			b.ReportMetric(sum/float64(b.N), "B/key")
			if !testing.Short() {
				b.ReportMetric(peerHeapPerKey(b, s, peerKeysLarge), "B/key@1M")
			}
		})
	}
}

// peerHeapPerKey builds a cache of n keys and returns the live heap it
// added, per key.
func peerHeapPerKey(b *testing.B, s peerSpec, n int) float64 {
	before := peerLiveHeap()
	c := s.build(b, n)
	after := peerLiveHeap()
	runtime.KeepAlive(c)
	c.Close()
	return (float64(after) - float64(before)) / float64(n)
}

// peerLiveHeap returns the heap still reachable after a full collection.
// Two collections also empty the sync.Pools' victim caches.
func peerLiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
