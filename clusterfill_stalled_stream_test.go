package bcache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestStalledStreamFillRequestEndsByTheFillTimeout: a fill request larger
// than a datagram waits in the stream queue behind a frame whose dial
// hangs (up to TCPTimeout, a minute here). The owner never gets it; the
// asker falls back to its own fill by about its fill timeout, not after
// the stream unsticks.
func TestStalledStreamFillRequestEndsByTheFillTimeout(t *testing.T) {
	var ownerRuns, askerRuns atomic.Int32
	_, r, hd, key := stalledPair(t, memnet.NewNetwork(1),
		func(context.Context, string) ([]byte, error) { ownerRuns.Add(1); return []byte("w"), nil },
		func(context.Context, string) ([]byte, error) { askerRuns.Add(1); return []byte("r"), nil }, time.Second)
	defer close(hd.freed)
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
	if n := askerRuns.Load(); n != 1 || string(v) != "r" {
		t.Fatalf("the asker ran its filler %d times and got %q; want its own fill, once", n, v)
	}
}
