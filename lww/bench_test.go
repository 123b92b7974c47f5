package lww

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// The benchmarks use the workload of the README: 100,000 keys of 16 bytes
// with 100-byte values, one goroutine, keys drawn from a Zipf(1.1)
// distribution (the one the peer comparisons in the README use).
// The uniform rows show the cost when every lookup misses the CPU caches.
const benchKeys = 100_000

func benchKey(i int) string { return fmt.Sprintf("key:%012d", i) }

func benchValue() []byte { return make([]byte, 100) }

// filled returns a map holding n keys written at wall times 1..n by node 1.
func filled(b *testing.B, n int) *Map { return filledBits(b, n, DefaultDigestBits) }

func filledBits(b *testing.B, n, bits int) *Map {
	b.Helper()
	m := newMap(b, Config{DigestBits: bits})
	for i := range n {
		apply(m, crdt.Record{Key: benchKey(i), Value: benchValue(), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}})
	}
	return m
}

// keySeq is a fixed pseudo-random sequence of keys; its length is a power
// of two so that benchmarks index it with a mask.
func keySeq(n int, zipf bool) []string {
	r := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(r, 1.1, 1, uint64(n-1))
	names := make([]string, n)
	for i := range names {
		names[i] = benchKey(i)
	}
	out := make([]string, 1<<16)
	for i := range out {
		if zipf {
			out[i] = names[z.Uint64()]
		} else {
			out[i] = names[r.IntN(n)]
		}
	}
	return out
}

func BenchmarkGet(b *testing.B) {
	for _, dist := range []string{"zipf", "uniform"} {
		b.Run(dist, func(b *testing.B) {
			m := filled(b, benchKeys)
			seq := keySeq(benchKeys, dist == "zipf")
			i := 0
			for b.Loop() {
				if _, ok := m.Get(seq[i&(len(seq)-1)], 0); !ok {
					b.Fatal("miss")
				}
				i++
			}
		})
	}
}

// BenchmarkSet overwrites existing keys with newer versions: a lookup, a
// record swap and a digest update along one leaf-to-root path.
func BenchmarkSet(b *testing.B) {
	m := filled(b, benchKeys)
	seq := keySeq(benchKeys, true)
	v := benchValue()
	wall := int64(benchKeys + 1)
	i := 0
	for b.Loop() {
		wall++
		apply(m, crdt.Record{Key: seq[i&(len(seq)-1)], Value: v, Time: crdt.Timestamp{Wall: wall, Node: 2}})
		i++
	}
}

// BenchmarkMerge applies a batch of 100 newer records received from a peer.
// The batches are built before the clock starts.
func BenchmarkMerge(b *testing.B) {
	m := filled(b, benchKeys)
	seq := keySeq(benchKeys, true)
	const batches = 256
	all := make([][]crdt.Record, batches)
	wall := int64(benchKeys + 1)
	for n := range all {
		all[n] = make([]crdt.Record, 100)
		for j := range all[n] {
			all[n][j] = crdt.Record{Key: seq[(n*100+j)&(len(seq)-1)], Value: benchValue()}
		}
	}
	n := 0
	for b.Loop() {
		batch := all[n%batches]
		n++
		for j := range batch {
			wall++
			batch[j].Time = crdt.Timestamp{Wall: wall, Node: 2}
			apply(m, batch[j])
		}
	}
}

// BenchmarkDiff compares two maps that differ in 100 keys. Its cost is the
// descent through the differing subtrees plus the versions held in each
// differing leaf (keys / 2^bits of them), never a pass over all keys.
func BenchmarkDiff(b *testing.B) {
	for _, tc := range []struct{ keys, bits int }{{100_000, 16}, {1_000_000, 16}, {1_000_000, 20}} {
		b.Run(fmt.Sprintf("keys=%d/bits=%d", tc.keys, tc.bits), func(b *testing.B) {
			n := tc.keys
			x, y := filledBits(b, n, tc.bits), filledBits(b, n, tc.bits)
			r := rand.New(rand.NewPCG(3, 4))
			for i := range 100 {
				apply(y, crdt.Record{Key: benchKey(r.IntN(n)), Value: benchValue(), Time: crdt.Timestamp{Wall: int64(n + i + 1), Node: 2}})
			}
			var leaves []uint32
			var diffs []Difference
			for b.Loop() {
				leaves, diffs, _ = Diff(x, y)
			}
			nodes, versions := diffWork(x, y, leaves)
			b.ReportMetric(float64(len(diffs)), "diffs")
			b.ReportMetric(float64(nodes), "nodes/op")
			b.ReportMetric(float64(versions), "versions/op")
		})
	}
}

// diffWork counts what a Diff that found the given leaves touched: the
// digest nodes compared on the way down (Fanout children of every differing
// inner node) and the versions read from both maps in the differing leaves.
func diffWork(x, y *Map, leaves []uint32) (nodes, versions int) {
	depth := x.Tree().Depth()
	for d := 0; d < depth; d++ {
		parents := map[uint32]bool{}
		for _, l := range leaves {
			parents[l>>(4*(depth-d))] = true
		}
		nodes += len(parents) * crdt.Fanout
	}
	for _, l := range leaves {
		versions += len(x.AppendVersions(nil, l)) + len(y.AppendVersions(nil, l))
	}
	return nodes, versions
}

// BenchmarkDeleteInOneLeaf deletes 16,384 keys, in the order they were
// written, that share one digest leaf (as a caller choosing keys can make
// them: package crdt's HashKey), against as many spread over the leaves:
// the time a delete. Each delete moves its key to a new entry, unlinking
// the old one from its leaf's list: a walk of the list before long leaves
// were indexed.
//
//	go test -run '^$' -bench DeleteInOneLeaf ./lww
func BenchmarkDeleteInOneLeaf(b *testing.B) {
	const n = 16_384
	alloc := func(key string) (*Entry, string) { return new(Entry), key }
	for _, shared := range []bool{false, true} {
		probe := newMap(b, Config{DigestBits: 8})
		var keys []string
		for i := 0; len(keys) < n; i++ {
			if k := benchKey(i); !shared || probe.Leaf(k) == probe.Leaf(benchKey(0)) {
				keys = append(keys, k)
			}
		}
		b.Run(map[bool]string{false: "spread", true: "one_leaf"}[shared], func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				m := newMap(b, Config{DigestBits: 8, Alloc: alloc})
				for i, k := range keys {
					apply(m, crdt.Record{Key: k, Value: benchValue(), Time: crdt.Timestamp{Wall: int64(i + 1), Node: 1}})
				}
				b.StartTimer()
				for i, k := range keys {
					apply(m, crdt.Record{Key: k, Tombstone: true, Time: crdt.Timestamp{Wall: int64(n + i + 1), Node: 1}})
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delete")
		})
	}
}
