package metrics

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bcache-go/bcache"
	"github.com/bcache-go/bcache/internal/await"
)

// scraper gathers reg every period until stop is closed.
func scraper(reg *prometheus.Registry, period time.Duration, stop chan struct{}) {
	if period == 0 {
		return
	}
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if _, err := reg.Gather(); err != nil {
					panic(err)
				}
			}
		}
	}()
}

// BenchmarkSetScraped: Set on a member alone, with no scrape, a scrape
// every second, and one every millisecond (a thousand times Prometheus's
// usual rate), in the same run.
//
//	go test -run '^$' -bench SetScraped -benchtime 2s -cpu 2 ./metrics
func BenchmarkSetScraped(b *testing.B) {
	value := make([]byte, 100)
	for _, period := range []time.Duration{0, time.Second, time.Millisecond} {
		b.Run(fmt.Sprintf("scrape=%v", period), func(b *testing.B) {
			c, err := bcache.New(bcache.Config{BindAddr: "127.0.0.1:0"})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			reg := prometheus.NewRegistry()
			reg.MustRegister(New(c))
			stop := make(chan struct{})
			defer close(stop)
			scraper(reg, period, stop)
			var next atomic.Int64
			b.ResetTimer() // New is not a Set
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.Set(fmt.Sprint("key:", next.Add(1)%100_000), value, 0)
				}
			})
			b.StopTimer() // nor is the deferred Close
		})
	}
}

// BenchmarkReplicationScraped: write-to-visible latency on 3 members on
// 127.0.0.1, 1,000 writes a second for 2 s from one of them, seen through
// the others' change feeds, with every member scraped every second, every
// 10 ms, or never, in the same run: p50 and p99 in ms.
//
//	go test -run '^$' -bench ReplicationScraped -benchtime 1x -count 3 ./metrics
func BenchmarkReplicationScraped(b *testing.B) {
	for _, period := range []time.Duration{0, time.Second, 10 * time.Millisecond} {
		b.Run(fmt.Sprintf("scrape=%v", period), func(b *testing.B) {
			for b.Loop() {
				p50, p99 := replicateScraped(b, period)
				b.ReportMetric(p50, "p50-ms")
				b.ReportMetric(p99, "p99-ms")
			}
		})
	}
}

func replicateScraped(b *testing.B, period time.Duration) (p50, p99 float64) {
	var cs []*bcache.Cache
	for i := range 3 {
		cfg := bcache.Config{NodeName: fmt.Sprint("m", i), BindAddr: "127.0.0.1:0", Timings: bcache.FastTimings()}
		if i > 0 {
			cfg.Peers = []string{cs[0].Addr()}
		}
		c, err := bcache.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	for _, c := range cs {
		await.Until(b, 10*time.Second, func() bool { return len(c.Members()) == 3 }, "members never met")
	}
	reg := prometheus.NewRegistry()
	for _, c := range cs {
		reg.MustRegister(New(c))
	}
	stop := make(chan struct{})
	defer close(stop)
	scraper(reg, period, stop)

	const writes = 2000
	sent := make([]int64, writes)
	arrived := make([][]int64, 2)
	done := make(chan struct{}, 2)
	for i, c := range cs[1:] {
		sub, err := c.Subscribe("k", writes)
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		arrived[i] = make([]int64, writes)
		go func() {
			seen := 0
			for batch := range sub.C {
				now := time.Now().UnixNano()
				for _, ch := range batch {
					var w int
					if _, err := fmt.Sscanf(ch.Key, "k%d", &w); err == nil && w < writes && arrived[i][w] == 0 {
						arrived[i][w] = now
						seen++
					}
				}
				if seen == writes {
					done <- struct{}{}
					return
				}
			}
		}()
	}
	value := make([]byte, 100)
	start := time.Now()
	for w := 0; w < writes; {
		due := min(writes, int(time.Since(start).Seconds()*1000)+1)
		for ; w < due; w++ {
			sent[w] = time.Now().UnixNano()
			cs[0].Set(fmt.Sprintf("k%d", w), value, 0)
		}
		time.Sleep(100 * time.Microsecond)
	}
	for range 2 {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatal("writes never all arrived")
		}
	}
	var lat []float64
	for _, a := range arrived {
		for w, at := range a {
			lat = append(lat, float64(at-sent[w])/1e6)
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}
