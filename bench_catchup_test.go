package bcache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkCatchUp measures how long a member that joins takes to hold
// what the cluster holds: one member holds n keys (16-byte keys, 100-byte
// values), a second starts with it as its peer, and the time from the
// second's New to its holding all n records is reported (catch-up-s), on
// 127.0.0.1 with the production timings; and how long after that the
// joiner's WaitSynced returned (synced-late-ms; negative: before).
//
//	go test -run '^$' -bench CatchUp -benchtime 1x .
func BenchmarkCatchUp(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var total, late float64
			for b.Loop() {
				d, l := catchUp(b, n)
				total, late = total+d, late+l
			}
			b.ReportMetric(total/float64(b.N), "catch-up-s")
			b.ReportMetric(late/float64(b.N), "synced-late-ms")
		})
	}
}

func catchUp(b *testing.B, n int) (seconds, syncedLateMs float64) {
	b.StopTimer()
	defer b.StartTimer()
	a, err := New(Config{NodeName: "holder", BindAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	value := make([]byte, 100)
	for i := range n {
		if err := a.Set(fmt.Sprintf("key:%012d", i), value, 0); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	j, err := New(Config{NodeName: "joiner", BindAddr: "127.0.0.1:0", Peers: []string{a.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	synced := make(chan time.Time, 1)
	go func() {
		if j.WaitSynced(context.Background()) == nil {
			synced <- time.Now()
		}
	}()
	for j.Stats().Records < n {
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("the joiner holds %d of %d records after 5 minutes", j.Stats().Records, n)
		}
		time.Sleep(time.Millisecond) // polling a figure, not awaiting an event
	}
	held := time.Now()
	return held.Sub(start).Seconds(), float64((<-synced).Sub(held).Microseconds()) / 1000
}
