package proptest

import (
	"testing"
	"time"
)

// TestSimulateWorkersBeyondTheNodes: Workers past what the nodes can
// occupy (a chunk of nodes each) changes nothing, the result nor the
// time: each half round started every one of them as a goroutine, so
// that -workers 1000000 ran a 3-node cluster a million goroutines a half
// round, and a huge count never ended (found by review).
func TestSimulateWorkersBeyondTheNodes(t *testing.T) {
	cfg := SimConfig{Factory: MapFactory(DefaultMapConfig()), Nodes: 3, Keys: 20, Writes: 20, PerRound: 10,
		Seed: 1, Split: 0.1, Workers: 1}
	want, err := Simulate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Workers = 1 << 30
	type result struct {
		res SimResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := Simulate(cfg)
		done <- result{res, err}
	}()
	select {
	case got := <-done:
		if got.err != nil || got.res != want {
			t.Fatalf("%d workers: %+v, %v; one worker: %+v", cfg.Workers, got.res, got.err, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%d workers on %d nodes: no result in 30 s (one worker: %+v)", cfg.Workers, cfg.Nodes, want)
	}
}
