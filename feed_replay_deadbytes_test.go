package bcache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestFeedReplayRebuildsHeldStateUnderMaxDeadBytes: as
// TestFeedReplayRebuildsHeldStateUnderClusterLoad, with long keys (up to
// 6,000 bytes) and a MaxDeadBytes of a few of them on the member
// watched: its deletes and expired values, its own and its peer's, are
// collected by the bound on bytes (MaxDeadRecords is far off; a
// MaxClockSkew of 2 s keeps them from early collections, and the bound
// takes the values that expired within it, after the deletes), and replaying its feed from an empty start still gives exactly
// the values (and versions) it holds once the writes have stopped.
func TestFeedReplayRebuildsHeldStateUnderMaxDeadBytes(t *testing.T) {
	net := memnet.NewNetwork(1)
	atr, err := net.NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	a := newCache(t, Config{NodeName: "a", Network: atr, Timings: FastTimings(), MaxClockSkew: 2 * time.Second, AntiEntropyInterval: 50 * time.Millisecond, GCInterval: 20 * time.Millisecond})
	btr, err := net.NewTransport("b")
	if err != nil {
		t.Fatal(err)
	}
	const deadBytes = 20_000
	b := newCache(t, Config{NodeName: "b", Network: btr, Peers: []string{a.Addr()}, Timings: FastTimings(),
		AntiEntropyInterval: 50 * time.Millisecond, GCInterval: 10 * time.Millisecond,
		MaxDeadRecords: 10_000, MaxDeadBytes: deadBytes, MaxClockSkew: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe("", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	var mu sync.Mutex
	replayed := feedState{}
	var feedErr error
	batches := make(chan struct{}, 1) // a batch was replayed
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for batch := range sub.C {
			mu.Lock()
			for _, ch := range batch {
				if err := replayed.apply(ch); err != nil && feedErr == nil {
					feedErr = err
				}
			}
			mu.Unlock()
			select {
			case batches <- struct{}{}:
			default:
			}
		}
	}()

	lens := []int{0, 500, 2000, 6000}
	key := func(i int) string { return fmt.Sprint("k", i, "-") + strings.Repeat("x", lens[i%len(lens)]) }
	var wg sync.WaitGroup
	for w, c := range []*Cache{a, a, b, b} {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 383))
			for i := range 2000 {
				k := key(rng.IntN(200))
				switch r := rng.IntN(10); {
				case r < 1:
					_ = c.Delete(k)
				case r < 7:
					_ = c.Set(k, fmt.Appendf(nil, "%d-%d-ttl", w, i), time.Duration(1+rng.IntN(30))*time.Millisecond)
				default:
					_ = c.Set(k, fmt.Appendf(nil, "%d-%d", w, i), 0)
				}
			}
		})
	}
	wg.Wait()
	// Last, values of long keys that expire at once, 9 times MaxDeadBytes
	// of them: within MaxClockSkew of their expiry no early collection
	// takes them, and the bound must take all but those it has room for.
	var last []string
	for i := range 30 {
		k := fmt.Sprint("last", i, "-") + strings.Repeat("y", 6000)
		if err := b.Set(k, []byte("v"), time.Millisecond); err != nil {
			t.Fatal(err)
		}
		last = append(last, k)
	}
	// The bound keeps as many as fit in it (3): the others it must take.
	lastHeld := func() bool {
		n := 0
		for _, k := range last {
			if r, ok := b.store.Lookup(k); ok && !r.Tombstone {
				n++
			}
		}
		return n > deadBytes/6000
	}

	// The writes stopped; collections go on. Each look writes a marker on
	// b and waits for it in the feed: every change before it was
	// replayed by then. A difference left when no change comes for the
	// whole deadline is a failure; so is a bound that has not collected
	// the last values over it by then.
	recheck := time.NewTicker(20 * time.Millisecond)
	defer recheck.Stop()
	var diff string
	for i := 0; ; i++ {
		marker := fmt.Sprint("marker", i)
		if err := b.Set(marker, []byte("m"), 0); err != nil {
			t.Fatal(err)
		}
		for seen := false; !seen; {
			select {
			case <-batches:
			case <-recheck.C:
			case <-ctx.Done():
				t.Fatalf("replaying b's feed does not give what b holds (the last values held still: %v):\n%.3000s", lastHeld(), diff)
			}
			mu.Lock()
			_, seen = replayed[marker]
			if seen {
				diff = diffStates(replayed, heldState(b))
			}
			err := feedErr
			mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
		}
		if diff == "" && !lastHeld() {
			break
		}
		select {
		case <-batches:
		case <-recheck.C:
		case <-ctx.Done():
			t.Fatalf("replaying b's feed does not give what b holds (the last values held still: %v):\n%.3000s", lastHeld(), diff)
		}
	}
	sub.Close()
	<-readerDone
	st := b.Stats()
	if st.CollectedByBound == 0 {
		t.Fatalf("the bound collected nothing: %+v", st)
	}
	t.Logf("%d collected by the bound, %d expirations, %d evictions, dead key bytes %d", st.CollectedByBound, st.Expirations, st.Evictions, st.DeadKeyBytes)
}
