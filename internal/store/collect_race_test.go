package store

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
)

// TestWritesRacingBoundCollectionsOfTheirBucketAreKept: writers stamp
// their writes, are descheduled, and apply them while deletes of other
// keys of the same few buckets are made and collected under MaxDead 1 at
// once; every write that returned is held (stamped again past a
// watermark raised meanwhile, Stats.Restamped), never silently dropped.
func TestWritesRacingBoundCollectionsOfTheirBucketAreKept(t *testing.T) {
	var phys atomic.Int64
	phys.Store(testNow)
	clock := crdt.NewHLC(1, func() int64 { return phys.Load() }, time.Second)
	s := mustStore(t, Config{Shards: 1, DigestBits: 4, Horizon: time.Hour, MaxDead: 1, Founder: true})
	s.Overtaken(func(crdt.Timestamp) bool { return false }, clock.Now)
	var (
		wg   sync.WaitGroup
		stop atomic.Bool
		lost atomic.Int64
	)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				key := fmt.Sprint("w", w, "-", i%20)
				ts := clock.Now()
				runtime.Gosched()
				rec := crdt.Record{Key: key, Value: []byte("v"), Time: ts}
				if i%3 == 0 {
					rec = crdt.Record{Key: key, Tombstone: true, Time: ts}
				}
				got, err := s.Write(rec)
				if err != nil {
					t.Error(err)
					return
				}
				if r, ok := s.Lookup(key); (!ok || r.Time.Less(got.Time)) && !rec.Tombstone {
					lost.Add(1)
				}
			}
		}()
	}
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		for i := 0; !stop.Load(); i++ {
			s.Write(crdt.Record{Key: fmt.Sprint("d", i%50), Tombstone: true, Time: clock.Now()})
		}
	}()
	go func() {
		defer bg.Done()
		for !stop.Load() {
			phys.Add(1000)
			s.Collect(phys.Load(), true, lww.NoStable)
			runtime.Gosched()
		}
	}()
	wg.Wait()
	stop.Store(true)
	bg.Wait()
	if n := lost.Load(); n > 0 {
		t.Fatalf("%d writes returned and were not held", n)
	}
	t.Logf("stats %+v", s.Stats())
}
