package store

import (
	"fmt"
	"sync"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestReadCountsAreExactAcrossReaders: eight goroutines read at once,
// hits and misses (of keys absent and of a value expired); the counts,
// kept in stripes, add up to every read, and the readers counted in more
// than one stripe (one count that every read wrote had two processors'
// readers pass its line back and forth: the Cache's parallel Get took
// twice as long).
func TestReadCountsAreExactAcrossReaders(t *testing.T) {
	s := mustStore(t, Config{})
	for i := range 100 {
		s.Write(crdt.Record{Key: fmt.Sprint("k", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: testNow + int64(i), Node: 1}})
	}
	s.Write(crdt.Record{Key: "expired", Value: []byte("v"), Expires: testNow + 10, Time: crdt.Timestamp{Wall: testNow - 1, Node: 1}})
	const readers, reads = 8, 10_000
	now := func() int64 { return testNow + 20 }
	var wg sync.WaitGroup
	for g := range readers {
		wg.Go(func() {
			for i := range reads {
				switch i % 4 {
				case 0, 1:
					if _, ok := s.Get(fmt.Sprint("k", (g+i)%100), now); !ok {
						t.Error("a written key not found")
						return
					}
				case 2:
					key := fmt.Sprint("absent", i)
					if i%8 == 2 {
						key = "expired" // a value held, past its expiry
					}
					if _, ok := s.Get(key, now); ok {
						t.Errorf("%s found", key)
						return
					}
				case 3:
					s.Missed()
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Hits != readers*reads/2 || st.Misses != readers*reads/2 {
		t.Fatalf("%d hits and %d misses counted, want %d each", st.Hits, st.Misses, readers*reads/2)
	}
	used := 0
	for i := range s.reads {
		if s.reads[i].hits.Load() > 0 {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("%d readers counted their hits in %d stripe", readers, used)
	}
}
