package gossip

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/netstat"
	"github.com/bcache-go/bcache/lww"

	"github.com/bcache-go/bcache/crdt"
)

// The replication benchmarks run real members on 127.0.0.1 in one process,
// with memberlist's LAN timings, and write 16-byte keys with 100-byte
// values. Run them one at a time:
//
//	go test -run '^$' -bench 'Replication|Throughput' -benchtime 1x ./transport/gossip

// benchCluster starts n members with production timings.
func benchCluster(b *testing.B, n int) []*node {
	b.Helper()
	// As a Cache runs: LAN timings, a 16-bit digest, a session a second,
	// the packet size of its address (on 127.0.0.1, LoopbackPacketSize).
	// (With the tests' 12-bit digest and a session every 200 ms, sessions
	// comparing the leaves that deltas in flight make differ took most
	// of the CPU at 100,000 writes/s.)
	asCache := func(c *Config) {
		c.Timings, c.Protocol.AntiEntropyInterval, c.Label, c.PacketSize = LANTimings(), 0, "", 0
	}
	bits := lww.DefaultDigestBits
	first := startNodeBits(b, "n0", nil, bits, asCache)
	nodes := []*node{first}
	for i := 1; i < n; i++ {
		nodes = append(nodes, startNodeBits(b, fmt.Sprintf("n%d", i), []string{first.r.Addr()}, bits, asCache))
	}
	waitMembers(b, n, nodes...)
	return nodes
}

func benchKey(i int) string { return fmt.Sprintf("key-%011d", i) } // 15 bytes + 1 below

// arrivals records when each write was first applied on each member.
type arrivals struct {
	at [][]atomic.Int64 // [member][write] unix ns, 0 until applied
}

func watch(nodes []*node, writes int) *arrivals {
	a := &arrivals{at: make([][]atomic.Int64, len(nodes))}
	for i, nd := range nodes {
		a.at[i] = make([]atomic.Int64, writes)
		nd.rep.onApply = func(r crdt.Record) {
			var w int
			if _, err := fmt.Sscanf(r.Key, "k%015d", &w); err == nil && w < writes {
				a.at[i][w].CompareAndSwap(0, time.Now().UnixNano())
			}
		}
	}
	return a
}

// wireBytes sums what every member has put on the wire.
func wireBytes(nodes []*node) uint64 {
	var total uint64
	for _, nd := range nodes {
		s := nd.r.Stats()
		total += s.WirePacketBytes + s.WireStreamBytes
	}
	return total
}

// BenchmarkReplication writes at a fixed rate on one member, for a second
// to warm up (the cluster has just formed: memberlist still gossips the
// joins, and the first sessions run) and then for two seconds more, and
// measures, for every write of those two seconds, the time until every
// other member has applied it, and the bytes all members put on the wire
// per write while they ran.
func BenchmarkReplication(b *testing.B) {
	for _, n := range []int{3, 5} {
		for _, rate := range []int{50, 1000, 10_000} {
			b.Run(fmt.Sprintf("nodes=%d/rate=%d", n, rate), func(b *testing.B) {
				for b.Loop() {
					replicateAt(b, n, rate, time.Second, 2*time.Second)
				}
			})
		}
	}
}

func replicateAt(b *testing.B, n, rate int, warmup, d time.Duration) {
	nodes := benchCluster(b, n)
	warm := int(float64(rate) * warmup.Seconds())
	writes := warm + int(float64(rate)*d.Seconds())
	arr := watch(nodes[1:], writes)
	value := make([]byte, 100)
	sent := make([]int64, writes)
	writeAt := func(from, to int) { // writes from..to-1 at the rate
		start := time.Now()
		for w := from; w < to; {
			due := min(to, from+int(time.Since(start).Seconds()*float64(rate))+1)
			for ; w < due; w++ {
				sent[w] = time.Now().UnixNano()
				nodes[0].rep.write(nodes[0].r, fmt.Sprintf("k%015d", w), value, false)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	writeAt(0, warm)
	before := wireBytes(nodes)
	writeAt(warm, writes)
	lat := make([]float64, writes)
	for w := range writes {
		for m := range arr.at {
			await.Until(b, 10*time.Second, func() bool { return arr.at[m][w].Load() != 0 }, "write %d never reached member %d", w, m+1)
			lat[w] = max(lat[w], float64(arr.at[m][w].Load()-sent[w])/1e6)
		}
	}
	bytes := wireBytes(nodes) - before
	lat = lat[warm:]
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(float64(bytes)/float64(len(lat)), "wire-B/write")
	b.ReportMetric(float64(bytes)/float64(len(lat))/float64((n-1)*(16+100)), "x-min")
	closeNodes(nodes)
}

// BenchmarkThroughput offers paced writes, spread over every member, at
// increasing rates for two seconds each, and reports for each rate how long
// after the last write every member held every write, and how many writes
// were dropped on the way (left to anti-entropy): by the senders
// (dropped), and, on Linux, the datagrams full receive buffers made the
// kernel drop (rcvbuf-drops, machine-wide). The highest rate with no
// drop and a lag of well under a second is the converging write rate.
func BenchmarkThroughput(b *testing.B) {
	for n, rates := range map[int][]int{3: {50_000, 100_000, 150_000, 200_000}, 5: {25_000, 50_000, 75_000, 100_000}} {
		for _, rate := range rates {
			b.Run(fmt.Sprintf("nodes=%d/rate=%d", n, rate), func(b *testing.B) {
				for b.Loop() {
					throughput(b, n, rate, 2*time.Second)
				}
			})
		}
	}
}

func throughput(b *testing.B, n, rate int, d time.Duration) {
	nodes := benchCluster(b, n)
	writes := int(float64(rate) * d.Seconds())
	var applied atomic.Int64 // records applied from peers, all members
	for _, nd := range nodes {
		nd.rep.onApply = func(crdt.Record) { applied.Add(1) }
	}
	value := make([]byte, 100)
	before := wireBytes(nodes)
	rcvbufBefore, rcvbufOK := netstat.UDPRcvbufErrors()
	start := time.Now()
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Add(1)
		go func() { // member i writes writes i, i+n, i+2n, ... on schedule
			defer wg.Done()
			for w := i; w < writes; {
				due := min(writes, int(time.Since(start).Seconds()*float64(rate))+1)
				for ; w < due; w += n {
					nd.rep.write(nd.r, fmt.Sprintf("k%015d", w), value, false)
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	issued := time.Now()
	want := int64(writes * (n - 1))
	await.Until(b, 60*time.Second, func() bool { return applied.Load() >= want },
		"%d of %d records applied", applied.Load(), want)
	lag := time.Since(issued)
	var dropped uint64
	for _, nd := range nodes {
		s := nd.r.Stats()
		dropped += s.WritesDropped + s.StreamsDropped + s.Protocol.DeltasDropped
	}
	b.ReportMetric(float64(writes)/issued.Sub(start).Seconds(), "offered-writes/s")
	b.ReportMetric(float64(lag.Milliseconds()), "lag-ms")
	b.ReportMetric(float64(dropped), "dropped")
	if after, ok := netstat.UDPRcvbufErrors(); ok && rcvbufOK {
		b.ReportMetric(float64(after-rcvbufBefore), "rcvbuf-drops")
	}
	b.ReportMetric(float64(wireBytes(nodes)-before)/float64(writes), "wire-B/write")
	closeNodes(nodes)
}

func closeNodes(nodes []*node) {
	for _, nd := range nodes {
		nd.r.Close()
	}
}
