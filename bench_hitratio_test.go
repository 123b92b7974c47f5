package bcache

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"
)

// BenchmarkHitRatio replays seeded request traces against bcache's store
// (the one a Cache runs, without the network: every run gives the same
// table), golang-lru and otter, each bounded to the same number of
// entries, as a read-through cache: a miss is followed by a Set. It
// prints one table of hit ratios (Markdown); its timings mean nothing.
//
//	go test -run '^$' -bench HitRatio -benchtime 1x .
//
// -short keeps to the bound of 1,000.
func BenchmarkHitRatio(b *testing.B) {
	bounds := []int{1_000, 10_000, 100_000}
	if testing.Short() {
		bounds = bounds[:1]
	}
	for b.Loop() {
		var rows []string
		for _, bound := range bounds {
			for _, tr := range hitTraces(bound) {
				row := fmt.Sprintf("| %s | %d |", tr.name, bound)
				for _, c := range hitCaches() {
					row += fmt.Sprintf(" %.3f |", c.replay(bound, tr))
				}
				rows = append(rows, row)
			}
		}
		fmt.Printf("\n| trace | bound | bcache | golang-lru | otter |\n| --- | ---: | ---: | ---: | ---: |\n%s\n", strings.Join(rows, "\n"))
	}
}

// BenchmarkHitRatioLoopBlocks breaks the loop trace of BenchmarkHitRatio
// down into its blocks (Z: the Zipf requests between two passes, L: a pass
// over the loop), at the bounds of 10,000 and 100,000 entries, for bcache
// and otter: the hit ratio of each block, in order.
//
//	go test -run '^$' -bench HitRatioLoopBlocks -benchtime 1x .
func BenchmarkHitRatioLoopBlocks(b *testing.B) {
	for b.Loop() {
		for _, bound := range []int{10_000, 100_000} {
			for _, tr := range hitTraces(bound) {
				if !strings.Contains(tr.name, "loop") {
					continue
				}
				for _, c := range hitCaches() {
					if c.name == "golang-lru" {
						continue
					}
					var blocks []string
					inLoop, hits, reads := false, 0, 0
					end := func() {
						if reads > 0 {
							blocks = append(blocks, fmt.Sprintf("%s %.3f", map[bool]string{false: "Z", true: "L"}[inLoop], float64(hits)/float64(reads)))
						}
						hits, reads = 0, 0
					}
					loopKeys := keySpace(bound) // its first key
					tr.read = func(key int32, hit bool) {
						if loop := key >= loopKeys && key < loopKeys+int32(3*bound); loop != inLoop {
							end()
							inLoop = loop
						}
						reads++
						if hit {
							hits++
						}
					}
					c.replay(bound, tr)
					end()
					fmt.Printf("%s, bound %d, %s: %s\n", tr.name, bound, c.name, strings.Join(blocks, ", "))
				}
			}
		}
	}
}

// hitTrace is a request sequence: reads of keys, each a read-through, and
// optionally writes that arrive from another member (remote).
type hitTrace struct {
	name string
	reqs []hitReq
	// read, if set, sees every local read and whether it hit.
	read func(key int32, hit bool)
}

type hitReq struct {
	key    int32
	remote bool // a peer's write, not a local read
}

// hitKey is the key string of key number i.
func hitKey(i int32) string { return fmt.Sprintf("key:%010d", i) }

// hitTraces returns the traces for a bound: 20 requests per entry of it
// (at least 400,000), keys from a space of 100 times the bound (10 times
// at the largest bound).
func hitTraces(bound int) []hitTrace {
	n := max(20*bound, 400_000)
	space := int(keySpace(bound))
	var traces []hitTrace
	for _, s := range []float64{0.7, 0.8, 0.9, 1.0, 1.1, 1.2} {
		z := newZipf(space, s, uint64(bound))
		reqs := make([]hitReq, n)
		for i := range reqs {
			reqs[i].key = z.next()
		}
		traces = append(traces, hitTrace{name: fmt.Sprintf("Zipf %.1f", s), reqs: reqs})
	}
	traces = append(traces,
		zipfWith(fmt.Sprintf("Zipf 1.0 with scans of %d new keys", bound), space, n, bound, func(i int, z *zipf, next *int32) []int32 {
			// every 10 bounds of requests, a scan of one bound of keys never
			// read before or after
			if i%(10*bound) != 10*bound-1 {
				return nil
			}
			scan := make([]int32, bound)
			for j := range scan {
				scan[j] = *next
				*next++
			}
			return scan
		}),
		zipfWith(fmt.Sprintf("Zipf 1.1 alternating with a loop of %d keys", 3*bound), space, n, bound, func(i int, z *zipf, next *int32) []int32 {
			// blocks of 2 bounds of Zipf requests alternate with a pass over
			// a loop of 3 bounds of keys
			if i%(2*bound) != 2*bound-1 {
				return nil
			}
			loop := make([]int32, 3*bound)
			for j := range loop {
				loop[j] = int32(space) + int32(j)
			}
			return loop
		}),
		hotWindow(space, n, bound),
		replicated(space, n, bound, false),
		replicated(space, n, bound, true),
	)
	return traces
}

// keySpace returns the number of keys the traces draw from at a bound:
// 100 times the bound (10 times at the largest). The loop's keys follow
// them.
func keySpace(bound int) int32 {
	if bound >= 100_000 {
		return int32(10 * bound)
	}
	return int32(100 * bound)
}

// zipfWith is a Zipf trace into which extra(i) splices requests after
// request i; next numbers keys outside the Zipf space.
func zipfWith(name string, space, n, bound int, extra func(i int, z *zipf, next *int32) []int32) hitTrace {
	z := newZipf(space, 1.0, uint64(bound)+1)
	if strings.Contains(name, "1.1") {
		z = newZipf(space, 1.1, uint64(bound)+2)
	}
	next := int32(2 * space)
	reqs := make([]hitReq, 0, n)
	for i := 0; len(reqs) < n; i++ {
		reqs = append(reqs, hitReq{key: z.next()})
		for _, k := range extra(i, z, &next) {
			reqs = append(reqs, hitReq{key: k})
		}
	}
	return hitTrace{name: name, reqs: reqs[:n]}
}

// hotWindow reads uniformly within a window of half the bound that slides
// through the key space, one key every 20 requests.
func hotWindow(space, n, bound int) hitTrace {
	r := rand.New(rand.NewPCG(uint64(bound), 3))
	w := bound / 2
	reqs := make([]hitReq, n)
	for i := range reqs {
		base := i / 20
		reqs[i].key = int32((base + r.IntN(w)) % space)
	}
	return hitTrace{name: "hot window sliding through the key space", reqs: reqs}
}

// replicated is the local readers' Zipf 1.0 trace, and, if remote, with a
// peer's writes at 4 per local read: half to keys of the local space
// (drawn uniformly, so mostly keys read here rarely or never), half to
// keys never read here.
func replicated(space, n, bound int, remote bool) hitTrace {
	z := newZipf(space, 1.0, uint64(bound)+4)
	r := rand.New(rand.NewPCG(uint64(bound), 5))
	name := "Zipf 1.0, local reads alone"
	if remote {
		name = "Zipf 1.0 with a peer's writes at 4x the reads"
	}
	reqs := make([]hitReq, 0, 5*n)
	for range n {
		reqs = append(reqs, hitReq{key: z.next()})
		if !remote {
			continue
		}
		for j := range 4 {
			k := int32(r.IntN(space))
			if j%2 == 1 {
				k += int32(3 * space)
			}
			reqs = append(reqs, hitReq{key: k, remote: true})
		}
	}
	return hitTrace{name: name, reqs: reqs}
}

// zipf draws key numbers in [0, n) with P(k) proportional to 1/(k+1)^s, any
// s > 0, from a table of the cumulative distribution; key numbers are
// scattered so that the popular keys are not neighbours.
type zipf struct {
	cdf  []float64
	perm []int32
	r    *rand.Rand
}

func newZipf(n int, s float64, seed uint64) *zipf {
	z := &zipf{cdf: make([]float64, n), r: rand.New(rand.NewPCG(seed, uint64(s*1000)))}
	sum := 0.0
	for k := range n {
		sum += 1 / math.Pow(float64(k+1), s)
		z.cdf[k] = sum
	}
	for k := range z.cdf {
		z.cdf[k] /= sum
	}
	z.perm = make([]int32, n)
	for i := range z.perm {
		z.perm[i] = int32(i)
	}
	z.r.Shuffle(n, func(i, j int) { z.perm[i], z.perm[j] = z.perm[j], z.perm[i] })
	return z
}

func (z *zipf) next() int32 {
	return z.perm[sort.SearchFloat64s(z.cdf, z.r.Float64())]
}

// hitCache is a cache under a hit-ratio replay.
type hitCache struct {
	name   string
	replay func(bound int, tr hitTrace) float64
}

func hitCaches() []hitCache {
	return []hitCache{
		{"bcache", replayStore},
		{"golang-lru", func(bound int, tr hitTrace) float64 {
			c, _ := lru.New[string, []byte](bound)
			return replayWith(tr, func(k string) bool { _, ok := c.Get(k); return ok },
				func(k string) { c.Add(k, hitValue) }, func(k string) { c.Add(k, hitValue) })
		}},
		{"otter", func(bound int, tr hitTrace) float64 {
			c := otter.Must(&otter.Options[string, []byte]{MaximumSize: bound})
			defer c.StopAllGoroutines()
			return replayWith(tr, func(k string) bool { _, ok := c.GetIfPresent(k); return ok },
				func(k string) { c.Set(k, hitValue) }, func(k string) { c.Set(k, hitValue) })
		}},
	}
}

var hitValue = []byte("v")

// replayStore replays tr on bcache's store: local Sets are Writes, a
// peer's writes are applied as received deltas, through the member's clock
// as a member receives them, and time moves a microsecond a request.
func replayStore(bound int, tr hitTrace) float64 {
	s, err := store.New(store.Config{MaxKeys: bound})
	if err != nil {
		panic(err)
	}
	t := crdt.NewManualTime(time.Now().UnixNano())
	local, peer := crdt.NewHLC(1, t.Now, 0), crdt.NewHLC(2, t.Now, 0)
	return replayWith(tr,
		func(k string) bool {
			t.Advance(time.Microsecond)
			_, ok := s.Get(k, t.Now)
			return ok
		},
		func(k string) { s.Write(crdt.Record{Key: k, Value: hitValue, Time: local.Now()}) },
		func(k string) {
			t.Advance(time.Microsecond)
			rec := crdt.Record{Key: k, Value: hitValue, Time: peer.Now()}
			if local.Update(rec.Time) == nil {
				s.Apply(rec, true, t.Now())
			}
		})
}

// replayWith replays tr as a read-through cache and returns the local
// reads' hit ratio.
func replayWith(tr hitTrace, get func(string) bool, set, remote func(string)) float64 {
	hits, reads := 0, 0
	for _, q := range tr.reqs {
		k := hitKey(q.key)
		if q.remote {
			remote(k)
			continue
		}
		reads++
		hit := get(k)
		if tr.read != nil {
			tr.read(q.key, hit)
		}
		if hit {
			hits++
		} else {
			set(k)
		}
	}
	return float64(hits) / float64(reads)
}
