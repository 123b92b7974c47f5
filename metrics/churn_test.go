package metrics

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestExportedCountersNeverGoDownAsMembersComeAndGo: every counter and
// histogram a member exports, collected over and over while peers join,
// write and leave and the member closes, never goes down, and no
// histogram has a bucket over its count (under the race detector: no race
// between a scrape and the members coming and going).
func TestExportedCountersNeverGoDownAsMembersComeAndGo(t *testing.T) {
	net := memnet.NewNetwork(1)
	a := member(t, net, "a")
	col := New(a)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	// The first 100 are kept: a send that waited for room blocked the
	// scraper, and the test waited for it for ever instead of failing (a
	// counter that went down at every other scrape).
	report := func(e string) {
		select {
		case errs <- e:
		default:
		}
	}
	var scrapes atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := map[string]float64{}
		for ; ; scrapes.Add(1) {
			select {
			case <-stop:
				return
			default:
			}
			ch := make(chan prometheus.Metric, 1000)
			col.Collect(ch)
			close(ch)
			for m := range ch {
				var d dto.Metric
				if err := m.Write(&d); err != nil {
					report(err.Error())
					continue
				}
				id := m.Desc().String()
				for _, l := range d.Label {
					id += "," + l.GetName() + "=" + l.GetValue()
				}
				var v float64
				switch {
				case d.Counter != nil:
					v = d.Counter.GetValue()
				case d.Histogram != nil:
					v = float64(d.Histogram.GetSampleCount())
					var prev uint64
					for _, b := range d.Histogram.Bucket {
						if b.GetCumulativeCount() < prev {
							report("bucket down " + id)
						}
						prev = b.GetCumulativeCount()
					}
					if prev > d.Histogram.GetSampleCount() {
						report(fmt.Sprintf("buckets %d over count %d: %s", prev, d.Histogram.GetSampleCount(), id))
					}
				default:
					continue
				}
				if v < last[id] {
					report(fmt.Sprintf("%s went from %v to %v", id, last[id], v))
				}
				last[id] = v
			}
		}
	}()
	for round := range 3 {
		b := member(t, net, fmt.Sprintf("b%d", round), a.Addr())
		for i := range 200 {
			a.Set(fmt.Sprint("k", i), []byte("v"), 0)
			b.Set(fmt.Sprint("j", round, i), []byte("v"), time.Second)
			a.Get(fmt.Sprint("k", i+1))
		}
		// Scraped while b's writes reach a and its TTLs run out.
		await.Until(t, 10*time.Second, func() bool { _, ok := a.Get(fmt.Sprint("j", round, 199)); return ok }, "b%d's writes never reached a", round)
		b.Close()
	}
	a.Close()
	closed := scrapes.Load()
	await.Until(t, 10*time.Second, func() bool { return scrapes.Load() >= closed+2 }, "no scrape after Close")
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
