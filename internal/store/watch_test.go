package store

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestAWatcherSetSeesEveryChangeNotYetVisible: a change that a reader
// could not see yet when Watch returned is reported to the watcher. A
// peer's record read the watcher before it merged: one merged just after
// Watch, its value not there for a reader who had looked, reached no
// watcher (found by review). Keys merge one after another on a goroutine
// of their own while watchers are set and looked behind, many times.
func TestAWatcherSetSeesEveryChangeNotYetVisible(t *testing.T) {
	s := mustStore(t, Config{Shards: 1, Founder: true})
	key := func(i int64) string { return fmt.Sprint("k", i) }
	var applied atomic.Int64 // keys merged so far
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := int64(0); !stop.Load(); i++ {
			s.Apply(crdt.Record{Key: key(i), Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow + i, Node: 2}}, true, testNow)
			applied.Store(i + 1)
		}
	})
	defer func() { stop.Store(true); wg.Wait() }()
	rounds := 2000
	if raceEnabled {
		rounds = 300
	}
	for round := range rounds {
		var mu sync.Mutex
		seen := map[string]bool{}
		s.Watch(func(ev *Event) {
			mu.Lock()
			seen[ev.Record.Key] = true
			mu.Unlock()
		})
		// The first key a reader cannot see now: every key from it on
		// changes the values after the watcher was set.
		first := applied.Load()
		for ; ; first++ {
			if _, ok := s.Get(key(first), func() int64 { return testNow }); !ok {
				break
			}
		}
		for applied.Load() < first+3 {
			runtime.Gosched()
		}
		s.Watch(nil)
		mu.Lock()
		missed := !seen[key(first)]
		mu.Unlock()
		if missed {
			t.Fatalf("round %d: %s, not visible when the watcher was set, merged without an event", round, key(first))
		}
	}
}
