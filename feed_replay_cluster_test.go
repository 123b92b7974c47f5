package bcache

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// feedState is what replaying a feed's changes holds: each key's value
// and version.
type feedState map[string]crdt.Record

// apply replays one change; it reports an overflow as an error.
func (s feedState) apply(ch Change) error {
	switch ch.Cause {
	case CauseSet:
		rec := crdt.Record{Key: ch.Key, Value: bytes.Clone(ch.Value), Time: ch.Version}
		if !ch.Expires.IsZero() {
			rec.Expires = ch.Expires.UnixNano()
		}
		s[ch.Key] = rec
	case CauseDelete, CauseEvict, CauseExpire, CauseDrop:
		delete(s, ch.Key)
	case CauseOverflow:
		return fmt.Errorf("overflow at %q", ch.Key)
	default:
		return fmt.Errorf("change of cause %v", ch.Cause)
	}
	return nil
}

// heldState is what c's store holds: the keys with a value (expired or
// not), each with its value and version.
func heldState(c *Cache) feedState {
	held := feedState{}
	c.store.Range(func(r crdt.Record) bool {
		if !r.Tombstone && !r.Evicted {
			held[r.Key] = crdt.Record{Key: r.Key, Value: bytes.Clone(r.Value), Time: r.Time, Expires: r.Expires}
		}
		return true
	})
	return held
}

func diffStates(got, want feedState) string {
	var out bytes.Buffer
	n := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || !bytes.Equal(g.Value, w.Value) || g.Time != w.Time || g.Expires != w.Expires {
			if n++; n <= 5 {
				fmt.Fprintf(&out, "%q: replayed %v (%v), held %q %v\n", k, g.Value, ok, w.Value, w.Time)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			if n++; n <= 5 {
				fmt.Fprintf(&out, "%q: replayed %q %v, not held\n", k, g.Value, g.Time)
			}
		}
	}
	if n > 0 {
		fmt.Fprintf(&out, "%d keys differ", n)
	}
	return out.String()
}

// TestFeedReplayRebuildsHeldStateUnderClusterLoad: a member under
// concurrent local and peers' writes, deletes, TTL expiry, collection
// past MaxDeadRecords and eviction past MaxKeys and MaxBytes: replaying
// its feed from an empty start gives exactly the values (and versions)
// it holds, once the writes have stopped.
func TestFeedReplayRebuildsHeldStateUnderClusterLoad(t *testing.T) {
	net := memnet.NewNetwork(1)
	atr, err := net.NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	filler := func(ctx context.Context, key string) ([]byte, error) { return []byte("filled:" + key), nil }
	a := newCache(t, Config{NodeName: "a", Network: atr, Filler: filler, FillTTL: 40 * time.Millisecond, Timings: FastTimings(), AntiEntropyInterval: 50 * time.Millisecond, GCInterval: 20 * time.Millisecond})
	btr, err := net.NewTransport("b")
	if err != nil {
		t.Fatal(err)
	}
	b := newCache(t, Config{NodeName: "b", Network: btr, Filler: filler, FillTTL: 40 * time.Millisecond, Peers: []string{a.Addr()}, Timings: FastTimings(),
		AntiEntropyInterval: 50 * time.Millisecond, GCInterval: 20 * time.Millisecond,
		MaxKeys: 150, MaxBytes: 150 * 40, MaxDeadRecords: 50, MaxValueSize: 60})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
		}
	}()

	var wg sync.WaitGroup
	for w, c := range []*Cache{a, a, b, b} {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 3000 {
				key := fmt.Sprint("k", rng.IntN(400))
				switch r := rng.IntN(12); {
				case r == 10:
					_, _ = b.GetOrFill(context.Background(), key)
				case r == 11:
					if tok, err := a.SetWithToken(key, fmt.Appendf(nil, "tok-%d-%d", w, i), 0); err == nil {
						ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
						_, _, _ = b.GetAfter(ctx, key, tok)
						cancel()
					}
				case r < 2:
					_ = c.Delete(key)
				case r < 5:
					_ = c.Set(key, fmt.Appendf(nil, "%d-%d-ttl", w, i), time.Duration(1+rng.IntN(30))*time.Millisecond)
				case r < 6 && c == a:
					_ = c.Set(key, bytes.Repeat([]byte{'x'}, 80), 0) // over b's MaxValueSize
				default:
					_ = c.Set(key, fmt.Appendf(nil, "%d-%d", w, i), 0)
				}
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()

	// The writes stopped; collections go on. Each look writes a marker on
	// b and waits for it in the feed: every change before it was
	// replayed by then.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		marker := fmt.Sprint("marker", i)
		if err := b.Set(marker, []byte("m"), 0); err != nil {
			t.Fatal(err)
		}
		var diff string
		for time.Now().Before(deadline) {
			mu.Lock()
			_, seen := replayed[marker]
			if seen {
				held := heldState(b)
				diff = diffStates(replayed, held)
			}
			err := feedErr
			mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if seen {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if diff == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replaying b's feed does not give what b holds:\n%s", diff)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sub.Close()
	<-readerDone
	if st := b.Stats(); st.Evictions == 0 || st.Oversized == 0 || st.CollectedByBound == 0 || st.Pulled == 0 {
		t.Logf("the load did not reach every path: %d evictions, %d oversized, %d collected by the bound, %d pulled", st.Evictions, st.Oversized, st.CollectedByBound, st.Pulled)
	}
}
