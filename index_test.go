package bcache

import (
	"fmt"
	"sync"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

func newItem(key, value string) *item {
	return &item{key: key, hash: crdt.HashKey(key), value: []byte(value)}
}

// TestIndexAgreesWithMap runs random puts and removes against a plain map.
func TestIndexAgreesWithMap(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var x index
		x.init()
		model := map[string]*item{}
		keys := rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"})
		for step := range rapid.IntRange(0, 300).Draw(t, "steps") {
			key := keys.Draw(t, "key")
			if rapid.IntRange(0, 2).Draw(t, "op") == 0 {
				got, want := x.remove(key, crdt.HashKey(key)), model[key]
				if got != want {
					t.Fatalf("step %d: remove(%s) = %p, want %p", step, key, got, want)
				}
				delete(model, key)
			} else {
				it := newItem(key, fmt.Sprint(step))
				if got, want := x.put(it), model[key]; got != want {
					t.Fatalf("step %d: put(%s) replaced %p, want %p", step, key, got, want)
				}
				model[key] = it
			}
			for k, want := range model {
				if got := x.get(k, crdt.HashKey(k)); got != want {
					t.Fatalf("step %d: get(%s) = %p, want %p", step, k, got, want)
				}
			}
			if x.len() != len(model) {
				t.Fatalf("step %d: len %d, want %d", step, x.len(), len(model))
			}
		}
	})
}

// TestIndexConcurrentReaders has readers look up keys while one writer
// replaces, removes and re-adds them, growing the table; run with -race.
// A reader must only ever see an item of the key it asked for.
func TestIndexConcurrentReaders(t *testing.T) {
	var x index
	x.init()
	var mu sync.Mutex // the shard lock writers hold
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = fmt.Sprint("key-", i)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := keys[i%len(keys)]
				if it := x.get(k, crdt.HashKey(k)); it != nil && it.key != k {
					t.Errorf("get(%s) returned the item of %s", k, it.key)
					return
				}
			}
		}()
	}
	for round := range 20 {
		for i, k := range keys {
			mu.Lock()
			if (i+round)%3 == 0 {
				x.remove(k, crdt.HashKey(k))
			} else {
				x.put(newItem(k, fmt.Sprint(round)))
			}
			mu.Unlock()
		}
	}
	close(done)
	wg.Wait()
}
