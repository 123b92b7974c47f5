package bcache

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestStalledStreamFillRequestEndsByTheFillTimeout: a fill request larger
// than a datagram waits in the stream queue behind a frame whose dial
// hangs (up to TCPTimeout, a minute here). The owner never gets it; the
// asker falls back to its own fill by about its fill timeout, not after
// the stream unsticks.
func TestStalledStreamFillRequestEndsByTheFillTimeout(t *testing.T) {
	mn := memnet.NewNetwork(1)
	var ownerRuns, askerRuns atomic.Int32
	timings := FastTimings()
	timings.ProbeInterval, timings.ProbeTimeout, timings.SuspicionMult = time.Second, 500*time.Millisecond, 4
	tw, err := mn.NewTransport("w")
	if err != nil {
		t.Fatal(err)
	}
	w := newCache(t, Config{NodeName: "w", Network: tw, Timings: timings, FillTimeout: time.Second,
		Filler: func(context.Context, string) ([]byte, error) { ownerRuns.Add(1); return []byte("w"), nil }})
	tr, err := mn.NewTransport("r")
	if err != nil {
		t.Fatal(err)
	}
	hd := &hangingDials{Transport: tr, shut: make(chan struct{}), freed: make(chan struct{})}
	defer close(hd.freed)
	timings.TCPTimeout = time.Minute
	r := newCache(t, Config{NodeName: "r", Network: hd, Peers: []string{w.Addr()}, Timings: timings, FillTimeout: time.Second,
		Filler: func(context.Context, string) ([]byte, error) { askerRuns.Add(1); return []byte("r"), nil }})
	for _, c := range []*Cache{w, r} {
		await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 2 }, "%s sees %d members", c.Name(), len(c.Members()))
	}
	var key string
	for i := 0; ; i++ {
		if key = fmt.Sprint(strings.Repeat("k", 4096), i); r.owner(key) == "w" {
			break
		}
	}
	hd.on.Store(true)
	cancel, err := r.repl.Ask("w", make([]byte, 4096), func([]byte, error) {}) // its dial hangs
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	start := time.Now()
	v, err := r.GetOrFill(ctx, key)
	took := time.Since(start)
	if err != nil || took > 10*time.Second { // FillTimeout and up to two seconds more is the promise; the wide margin is for a loaded machine
		t.Fatalf("GetOrFill: %q, %v after %v; want a value by about the fill timeout (1 s)", v, err, took.Round(time.Millisecond))
	}
	if n := ownerRuns.Load(); n != 0 {
		t.Fatalf("the owner ran its filler %d times for a request it never got", n)
	}
}
