package bcache

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFeedNeverSkipsSilently: writers each set their own key to 0, 1,
// 2, ... while readers of small buffers and byte bounds read slowly (and
// keep each batch until the next receive, as C allows): between two sets
// of a key a reader sees, every value in between was delivered, or an
// overflow notice came between them. Each batch is checked again at the
// next receive: it must be intact until then.
func TestFeedNeverSkipsSilently(t *testing.T) {
	cfg := testConfig("gaps")
	cfg.SubscriptionBytes = 300
	c := newCache(t, cfg)
	const writers, writes = 4, 3000
	type reader struct {
		sub    *Subscription
		prefix string
	}
	var readers []reader
	for i, prefix := range []string{"", "w", "w1", "w2", "", "w3"} {
		sub, err := c.Subscribe(prefix, 1+i*3)
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, reader{sub, prefix})
	}
	var rwg sync.WaitGroup
	errs := make(chan error, len(readers))
	for i, r := range readers {
		rwg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			last := map[string]int{}
			notices := 0               // overflow notices so far
			seenAt := map[string]int{} // notices when each key's last change came
			var kept []Change
			var keptCopy []Change
			for batch := range r.sub.C {
				for _, ch := range batch {
					if ch.Cause == CauseOverflow {
						notices++
						continue
					}
					if !strings.HasPrefix(ch.Key, r.prefix) {
						errs <- fmt.Errorf("reader %d (prefix %q): got %q", i, r.prefix, ch.Key)
						return
					}
					n, err := strconv.Atoi(string(ch.Value))
					if err != nil {
						errs <- fmt.Errorf("reader %d: %+v", i, ch)
						return
					}
					if prev, ok := last[ch.Key]; ok && n != prev+1 && seenAt[ch.Key] == notices {
						errs <- fmt.Errorf("reader %d: %s went from %d to %d with no overflow notice", i, ch.Key, prev, n)
						return
					} else if ok && n <= prev {
						errs <- fmt.Errorf("reader %d: %s went back from %d to %d", i, ch.Key, prev, n)
						return
					}
					last[ch.Key] = n
					seenAt[ch.Key] = notices
				}
				kept = batch
				keptCopy = append(keptCopy[:0], batch...)
				if rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
				}
				for j := range kept { // the batch, held until the next receive
					if kept[j].Key != keptCopy[j].Key || string(kept[j].Value) != string(keptCopy[j].Value) || kept[j].Cause != keptCopy[j].Cause {
						errs <- fmt.Errorf("reader %d: a batch changed before the next receive: %+v, was %+v", i, kept[j], keptCopy[j])
						return
					}
				}
			}
			errs <- nil
		})
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprint("w", w)
			for i := range writes {
				if err := c.Set(key, []byte(strconv.Itoa(i)), 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, r := range readers {
		r.sub.Close()
	}
	rwg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
