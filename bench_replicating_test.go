package bcache

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkGetWhileReplicating reads Zipf keys in parallel on a member
// that is also applying a peer's writes, 10,000 a second to keys of the
// same space, over 127.0.0.1: whether reads scale with cores on a member
// that replicates. Run it with -cpu 1,2: the ratio of the two times is
// what a second reader adds.
//
//	go test -run '^$' -bench GetWhileReplicating -cpu 1,2 .
func BenchmarkGetWhileReplicating(b *testing.B) {
	writer := newCache(b, testConfig("writer"))
	reader := newCache(b, testConfig("reader", writer.Addr()))
	value := make([]byte, peerValueSize)
	for i := range peerKeys {
		if err := writer.Set(peerKey(i), value, 0); err != nil {
			b.Fatal(err)
		}
	}
	for reader.Len() < peerKeys {
		time.Sleep(10 * time.Millisecond) // polling a figure while the member catches up
	}
	seq := peerSeq(peerKeys)
	var stop atomic.Bool
	done := make(chan int)
	go func() { // the peer's writes, 10,000 a second, catching up after a late wake-up
		n, start := 0, time.Now()
		for !stop.Load() {
			for due := int(time.Since(start).Seconds() * 10_000); n < due; n++ {
				writer.Set(seq[(n*7919)&(peerSeqLen-1)], value, 0)
			}
			time.Sleep(time.Millisecond) // pacing, not awaiting
		}
		done <- n
	}()
	applied := func() uint64 { return reader.Stats().Replication.Protocol.RecordsApplied }
	appliedBefore := applied()
	// The fill's garbage (100,000 writes, their deltas and the catch-up)
	// collected now, not in the timed reads of one -cpu setting and not
	// the other's: with it left, the ratio of the two times spread from
	// 1.24x to 2.40x over three runs.
	runtime.GC()
	b.ResetTimer()
	peerParallelGet(b, bcachePeer{reader}, seq)
	b.StopTimer()
	arrived := applied() - appliedBefore
	stop.Store(true)
	b.ReportMetric(float64(<-done)/b.Elapsed().Seconds(), "peer-writes/s") // made on the writer
	b.ReportMetric(float64(arrived)/b.Elapsed().Seconds(), "applied/s")    // applied on the reader while it read
}
