package bcache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestSubscriptionChurnRacingCloseLeavesNothing: subscribers of
// overlapping prefixes come and go (some read, some never do, some close
// mid-batch) while writers write and the Cache closes under them: every
// Subscribe returns a subscription or ErrClosed, every C is closed once
// the Cache's Close has returned, and no goroutine is left behind.
func TestSubscriptionChurnRacingCloseLeavesNothing(t *testing.T) {
	base := runtime.NumGoroutine()
	for round := range 10 {
		c, err := New(testConfig(fmt.Sprint("churn", round)))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var subs []*Subscription
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if err := c.Set(fmt.Sprint("p", w%2, "/", i%50), []byte("v"), 0); errors.Is(err, ErrClosed) {
						return
					}
				}
			})
		}
		for s := range 6 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(round), uint64(s)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					sub, err := c.Subscribe([]string{"", "p", "p0", "p1/", "p0/1"}[rng.IntN(5)], 1+rng.IntN(8))
					if errors.Is(err, ErrClosed) {
						return
					} else if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					subs = append(subs, sub)
					mu.Unlock()
					switch rng.IntN(3) {
					case 0: // never reads
					case 1:
						for range rng.IntN(5) {
							if _, ok := <-sub.C; !ok {
								break
							}
						}
					case 2:
						go func() {
							for range sub.C {
							}
						}()
					}
					if rng.IntN(2) == 0 {
						sub.Close()
					}
				}
			})
		}
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		mu.Lock()
		for i, sub := range subs {
			select {
			case <-sub.stopped:
			default:
				t.Fatalf("round %d: subscription %d's goroutine still runs after the Cache's Close", round, i)
			}
		}
		mu.Unlock()
		if _, err := c.Subscribe("", 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Subscribe after Close: %v", err)
		}
	}
	await.Until(t, 10*time.Second, func() bool { return runtime.NumGoroutine() <= base+2 },
		"goroutines left: %d, %d before", runtime.NumGoroutine(), base)
}
