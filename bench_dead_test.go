package bcache

import (
	"flag"
	"fmt"
	"testing"
	"time"
)

// The benchmarks in this file measure what dead keys cost: records of
// deleted and expired keys that a member keeps until it may collect them
// (package lww). They run three members on 127.0.0.1 with the default
// horizon and intervals, and report figures rather than timings.

var steadyMinutes = flag.Int("steady.minutes", 10, "how long BenchmarkSteadyTTL writes")

// BenchmarkDeadKeys writes 100,000 keys with a 100 ms TTL at 20,000 a
// second on one of three members and reports, after the last write: the
// seconds until no member holds a record of them (collected-s), and the
// live heap 10 s after it less the heap before the writes, per member
// (heap-MB@10s, with peak-MB the most it reached while writing).
func BenchmarkDeadKeys(b *testing.B) {
	const keys, rate, ttl = 100_000, 20_000, 100 * time.Millisecond
	var collected, after10, peak float64
	for b.Loop() {
		cs := cluster(b, 3, func(_ int, c *Config) { c.AntiEntropyInterval = 0 })
		before := peerLiveHeap()
		top := uint64(0)
		pace(keys, rate, func(i int) {
			if err := cs[0].Set(fmt.Sprintf("dead:%09d", i), make([]byte, 100), ttl); err != nil {
				b.Fatal(err)
			}
		}, func() {
			if h := peerLiveHeap(); h > top {
				top = h
			}
		})
		last := time.Now()
		for recordsHeld(cs) > 0 && time.Since(last) < 10*time.Second {
			time.Sleep(50 * time.Millisecond) // polling a figure, not awaiting an event
		}
		collected += time.Since(last).Seconds()
		time.Sleep(time.Until(last.Add(10 * time.Second)))
		after10 += (float64(peerLiveHeap()) - float64(before)) / 3 / (1 << 20)
		peak += (float64(top) - float64(before)) / 3 / (1 << 20)
		if n := recordsHeld(cs); n > 0 {
			b.Logf("%d records still held 10 s after the last write", n)
		}
		for _, c := range cs {
			c.Close()
		}
	}
	b.ReportMetric(collected/float64(b.N), "collected-s")
	b.ReportMetric(after10/float64(b.N), "heap-MB@10s")
	b.ReportMetric(peak/float64(b.N), "peak-MB")
}

// BenchmarkSteadyTTL writes 1,000 new keys a second with a one-minute TTL
// on one of three members for -steady.minutes (default 10) and reports the
// live heap per member at the end of the second minute and of the last
// (heap-MB@2m, heap-MB@end), and the end figure over what the live keys
// alone need (x-live: their count times the heap per key of
// BenchmarkHeapPerKey's bcache, measured here on 60,000 keys that never
// expire).
func BenchmarkSteadyTTL(b *testing.B) {
	const rate, ttl = 1000, time.Minute
	minutes := *steadyMinutes
	var at2, atEnd, ratio float64
	for b.Loop() {
		perKey := peerHeapPerKey(b, peerSpecs()[0], 60_000)
		cs := cluster(b, 3, func(_ int, c *Config) { c.AntiEntropyInterval = 0 })
		before := peerLiveHeap()
		var heap2 float64
		for m := range minutes {
			pace(rate*60, rate, func(i int) {
				if err := cs[0].Set(fmt.Sprintf("steady:%03d:%06d", m, i), make([]byte, 100), ttl); err != nil {
					b.Fatal(err)
				}
			}, nil)
			h := (float64(peerLiveHeap()) - float64(before)) / 3 / (1 << 20)
			b.Logf("minute %d: %.1f MB per member, %d records on the writer", m+1, h, cs[0].Stats().Records)
			if m == 1 {
				heap2 = h
			}
			if m == minutes-1 {
				at2 += heap2
				atEnd += h
				live := float64(cs[0].Len()) * perKey / (1 << 20)
				ratio += h / live
			}
		}
		for _, c := range cs {
			c.Close()
		}
	}
	b.ReportMetric(at2/float64(b.N), "heap-MB@2m")
	b.ReportMetric(atEnd/float64(b.N), "heap-MB@end")
	b.ReportMetric(ratio/float64(b.N), "x-live")
}

// pace calls write(i) for i in [0, n) at rate calls a second, in bursts
// every millisecond, and sample after each 500 ms of writes.
func pace(n, rate int, write func(i int), sample func()) {
	start := time.Now()
	for i := 0; i < n; {
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; i < min(due, n); i++ {
			write(i)
			if sample != nil && i%(rate/2) == 0 {
				sample()
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// recordsHeld returns the records held by all of cs.
func recordsHeld(cs []*Cache) int {
	n := 0
	for _, c := range cs {
		n += c.Stats().Records
	}
	return n
}
