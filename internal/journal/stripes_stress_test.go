package journal

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// churn changes GOMAXPROCS and runs collections (which empty near's
// sync.Pool) until stop is closed.
func churn(stop <-chan struct{}) func() {
	done := make(chan struct{})
	before := runtime.GOMAXPROCS(0)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			runtime.GOMAXPROCS(1 + i%8)
			if i%3 == 0 {
				runtime.GC()
			}
			runtime.Gosched()
		}
	}()
	return func() { <-done; runtime.GOMAXPROCS(before) }
}

// TestStripesLoseNoAcknowledgedRecord: writers on every stripe, while
// GOMAXPROCS changes and collections empty the pool, each writing one key
// of its own over and over: every record acknowledged (EveryWrite: after
// Wait; Interval: Append returned, then Flush) is read back whole, once,
// and each key's newest version read is its last write.
func TestStripesLoseNoAcknowledgedRecord(t *testing.T) {
	for _, mode := range []Mode{EveryWrite, Interval} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			l, path := open(t, mode)
			stop := make(chan struct{})
			wait := churn(stop)
			const writers, each = 24, 400
			var wg sync.WaitGroup
			var acked atomic.Int64
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						r := crdt.Record{Key: fmt.Sprint("w", w), Value: fmt.Appendf(nil, "w%d-%d-%0*d", w, i, i%200, 0),
							Time: crdt.Timestamp{Wall: int64(1 + i), Node: 3}}
						b, err := l.Append(&r, false)
						if err != nil {
							t.Error(err)
							return
						}
						if mode == EveryWrite {
							if err := b.Wait(); err != nil {
								t.Error(err)
								return
							}
						}
						acked.Add(1)
						if i%50 == 0 {
							runtime.Gosched()
						}
					}
				})
			}
			wg.Wait()
			close(stop)
			wait()
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(false); err != nil {
				t.Fatal(err)
			}
			recs, st := mustRead(t, path)
			if st.Torn != 0 || len(recs) != int(acked.Load()) {
				t.Fatalf("read %d records (%+v), %d acknowledged", len(recs), st, acked.Load())
			}
			seen := map[string]bool{}
			newest := map[string]int64{}
			for _, r := range recs {
				var w, i, z int
				if _, err := fmt.Sscanf(string(r.Value), "w%d-%d-%d", &w, &i, &z); err != nil || r.Key != fmt.Sprint("w", w) || r.Time.Wall != int64(1+i) {
					t.Fatalf("record %v does not hold what was appended", r)
				}
				if seen[string(r.Value)] {
					t.Fatalf("record %v read twice", r)
				}
				seen[string(r.Value)] = true
				newest[r.Key] = max(newest[r.Key], r.Time.Wall)
			}
			for w := range writers {
				if newest[fmt.Sprint("w", w)] != each {
					t.Fatalf("key w%d: newest version read %d, last written %d", w, newest[fmt.Sprint("w", w)], each)
				}
			}
		})
	}
}

// TestStripesBoundedUnderABurstAndClose: writers outrunning a slow disk
// wait at their stripe's share of waitAt: what the stripes hold stays
// under waitAt plus a record a stripe, the free list under maxFreeChunks;
// a Close while they wait releases them, and every append that returned
// nil is in the log Close wrote.
func TestStripesBoundedUnderABurstAndClose(t *testing.T) {
	syncFile = func(f *os.File) error { time.Sleep(30 * time.Millisecond); return f.Sync() }
	defer func() { syncFile = (*os.File).Sync }()
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Millisecond, stripes: 2}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wait := churn(stop)
	const size = 200 << 10
	value := make([]byte, size)
	var wg sync.WaitGroup
	var acked atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := crdt.Record{Key: fmt.Sprint("w", w, "-", i), Value: value, Time: crdt.Timestamp{Wall: int64(1 + i), Node: 3}}
				if _, err := l.Append(&r, false); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
				acked.Add(1)
			}
		})
	}
	most, mostCap, mostFree := 0, 0, 0
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
		held, capHeld := 0, 0
		for i := range l.stripes {
			s := &l.stripes[i]
			s.mu.Lock()
			held += s.bytes
			for _, c := range s.chunks {
				capHeld += cap(c)
			}
			s.mu.Unlock()
		}
		most, mostCap, mostFree = max(most, held), max(mostCap, capHeld), max(mostFree, freeChunks(l))
	}
	closed := make(chan error)
	go func() { closed <- l.Close(false) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return")
	}
	wg.Wait()
	close(stop)
	wait()
	t.Logf("stripes held at most %d bytes in chunks of %d bytes; free list at most %d chunks", most, mostCap, mostFree)
	if bound := waitAt + len(l.stripes)*(size+maxRecordOverhead); most > bound {
		t.Errorf("stripes held %d bytes, past %d", most, bound)
	}
	if mostFree > maxFreeChunks {
		t.Errorf("free list held %d chunks, past %d", mostFree, maxFreeChunks)
	}
	recs, _ := mustRead(t, path)
	if len(recs) != int(acked.Load()) {
		t.Fatalf("read %d records, %d appends returned nil", len(recs), acked.Load())
	}
}

// TestOneWritersRecordsMayReadOutOfOrder: records appended one after
// another by one goroutine go to the stripe near hands it, which changes
// when the pool is emptied (a collection) or the goroutine moves; a frame
// holds the stripes' records stripe after stripe, so Read may return them
// out of the order appended (replay resolves by version, not position).
func TestOneWritersRecordsMayReadOutOfOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour, stripes: 4}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	for i := range 8 {
		r := rec(i)
		if _, err := l.Append(&r, false); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		runtime.GC()
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	recs, _ := mustRead(t, path)
	got := keys(recs)
	if len(got) != 8 {
		t.Fatalf("read %v, want 8 records", got)
	}
	if slices.IsSortedFunc(recs, func(a, b Entry) int { return cmp.Compare(a.Time.Wall, b.Time.Wall) }) {
		t.Fatalf("read %v in the order appended: the stripes went round 8 times over 4 stripes", got)
	}
}
