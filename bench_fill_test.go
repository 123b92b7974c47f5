package bcache

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/clusterfill"
)

// BenchmarkForwardedFill: GetOrFill of cold keys on a member of 3 on
// 127.0.0.1, with a filler that returns at once, for keys another member
// owns (forwarded: a call there and back, the owner's Set, the answer
// applied here) and for keys this member owns (filled here), in the same
// run: p50 and p99 in ms; the difference is what forwarding adds.
//
//	go test -run '^$' -bench ForwardedFill -benchtime 2000x .
func BenchmarkForwardedFill(b *testing.B) {
	filler := func(_ context.Context, key string) ([]byte, error) { return []byte(key), nil }
	var cs []*Cache
	for i := range 3 {
		cfg := Config{NodeName: fmt.Sprint("b", i), BindAddr: "127.0.0.1:0", Timings: FastTimings(), Filler: filler}
		if i > 0 {
			cfg.Peers = []string{cs[0].Addr()}
		}
		cs = append(cs, newCache(b, cfg))
	}
	for _, c := range cs {
		await.Until(b, 10*time.Second, func() bool { return len(c.Members()) == 3 }, "members never met")
	}
	var forwarded, local []float64
	n := 0
	for b.Loop() {
		for {
			n++
			key := fmt.Sprint("key", n)
			start := time.Now()
			if _, err := cs[0].GetOrFill(context.Background(), key); err != nil {
				b.Fatal(err)
			}
			ms := float64(time.Since(start).Microseconds()) / 1000
			if cs[0].owner(key) == cs[0].Name() {
				local = append(local, ms)
				continue
			}
			forwarded = append(forwarded, ms)
			break
		}
	}
	slices.Sort(forwarded)
	slices.Sort(local)
	pct := func(xs []float64, p int) float64 { return xs[min(len(xs)-1, len(xs)*p/100)] }
	b.ReportMetric(pct(forwarded, 50), "fwd-p50-ms")
	b.ReportMetric(pct(forwarded, 99), "fwd-p99-ms")
	if len(local) > 0 {
		b.ReportMetric(pct(local, 50), "local-p50-ms")
		b.ReportMetric(pct(local, 99), "local-p99-ms")
	}
}

// BenchmarkGetAfterPull: GetAfter on a member of 2 on 127.0.0.1 for a
// write whose delta never comes (written on the other member without
// replication, anti-entropy an hour apart): after PullAfter the reader
// asks its peer for the key. It reports, in ms, how long the read took
// beyond PullAfter, p50 and p99, and beside it the round trip of the same
// fetch called directly after each read (rtt), p50 and p99, and after as
// long an idle wait as the read's (idle-rtt: every thread parked, as the
// pull finds them): the pull should take one round trip after the bound.
//
//	go test -run '^$' -bench GetAfterPull -benchtime 300x .
func BenchmarkGetAfterPull(b *testing.B) {
	w := newCache(b, Config{NodeName: "w", BindAddr: "127.0.0.1:0", Timings: FastTimings(), AntiEntropyInterval: time.Hour})
	r := newCache(b, Config{NodeName: "r", BindAddr: "127.0.0.1:0", Timings: FastTimings(), AntiEntropyInterval: time.Hour,
		Peers: []string{w.Addr()}})
	r.fetchOnly = true
	await.Until(b, 10*time.Second, func() bool { return len(r.Members()) == 2 && len(w.Members()) == 2 }, "never met")
	var beyond, rtt, idleRTT []float64
	n := 0
	for b.Loop() {
		n++
		key := fmt.Sprint("k", n)
		rec, err := w.store.Write(crdt.Record{Key: key, Value: []byte("v"), Time: w.clock.Now()}) // no delta
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		v, ok, err := r.GetAfter(context.Background(), key, newToken(rec))
		if err != nil || !ok || string(v) != "v" {
			b.Fatalf("%q %v %v", v, ok, err)
		}
		beyond = append(beyond, float64((time.Since(start)-r.pullAfter).Microseconds())/1000)
		start = time.Now()
		if _, err := r.repl.Call(context.Background(), "w", clusterfill.Request(clusterfill.FetchRequest, key)); err != nil {
			b.Fatal(err)
		}
		rtt = append(rtt, float64(time.Since(start).Microseconds())/1000)
		// The same fetch after as long idle as the read's wait: every
		// thread of the process parked, as the pull finds them.
		<-time.After(pullTimer(r.pullAfter))
		start = time.Now()
		if _, err := r.repl.Call(context.Background(), "w", clusterfill.Request(clusterfill.FetchRequest, key)); err != nil {
			b.Fatal(err)
		}
		idleRTT = append(idleRTT, float64(time.Since(start).Microseconds())/1000)
	}
	slices.Sort(beyond)
	slices.Sort(rtt)
	slices.Sort(idleRTT)
	pct := func(xs []float64, p int) float64 { return xs[min(len(xs)-1, len(xs)*p/100)] }
	b.ReportMetric(pct(beyond, 50), "beyond-p50-ms")
	b.ReportMetric(pct(beyond, 99), "beyond-p99-ms")
	b.ReportMetric(pct(rtt, 50), "rtt-p50-ms")
	b.ReportMetric(pct(rtt, 99), "rtt-p99-ms")
	b.ReportMetric(pct(idleRTT, 50), "idle-rtt-p50-ms")
	b.ReportMetric(pct(idleRTT, 99), "idle-rtt-p99-ms")
}
