package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// copyAsCrashed copies the segments of the log beside path as they are
// now (a segment removed meanwhile is skipped) and returns the snapshot
// path of the copy.
func copyAsCrashed(t *testing.T, path string) string {
	t.Helper()
	segs, err := Segments(path)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), filepath.Base(path))
	for _, s := range segs {
		b, err := os.ReadFile(s.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(to), filepath.Base(s.Path)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// TestOwnerSequencingOnAFailingDiskLosesNoAcknowledgedRecord: writers
// append while the owner rotates, "snapshots" (everything applied before
// Rotate returned), removes the covered segments and flushes, on a disk
// whose syncs, creations, direct writes and removals fail at random.
// Every acknowledged record (EveryWrite: Wait nil; Interval: Append nil,
// then a Flush that returned nil) is in the snapshot or in the log as a
// crash leaves it, at every step.
func TestOwnerSequencingOnAFailingDiskLosesNoAcknowledgedRecord(t *testing.T) {
	for _, mode := range []Mode{EveryWrite, Interval} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "snap")
			l, err := Open(Options{Path: path, Mode: mode, Interval: time.Millisecond}, ReadStats{})
			if err != nil {
				t.Fatal(err)
			}
			var dice atomic.Uint64
			var failing atomic.Bool
			roll := func(one uint64) bool {
				x := dice.Add(0x9e3779b97f4a7c15)
				x ^= x >> 31
				x *= 0xbf58476d1ce4e5b9
				x ^= x >> 29
				return failing.Load() && x%one == 0
			}
			eio := errors.New("input/output error")
			underWriter(l, func() {
				syncFile = func(f *os.File) error {
					if roll(12) {
						return eio
					}
					return f.Sync()
				}
				removeFile = func(p string) error {
					if roll(4) {
						return eio
					}
					return os.Remove(p)
				}
				openBufferedFile = func(p string) (*os.File, error) {
					if roll(8) {
						return nil, eio
					}
					return openBuffered(p)
				}
				directWrite = func(f *os.File, b []byte, off int64) (int, error) {
					if roll(12) {
						n, _ := f.WriteAt(b[:len(b)/2], off)
						return n, eio
					}
					return f.WriteAt(b, off)
				}
			})
			defer underWriter(l, func() {
				syncFile, removeFile, openBufferedFile, directWrite = (*os.File).Sync, os.Remove, openBuffered, (*os.File).WriteAt
			})
			failing.Store(true)

			var mu sync.Mutex
			applied := map[string]bool{}  // Append called (the cache applied it before)
			returned := map[string]bool{} // Append returned nil (Interval)
			acked := map[string]bool{}
			snapshot := map[string]bool{}
			stop := make(chan struct{})
			var tick atomic.Pointer[chan struct{}]
			first := make(chan struct{})
			tick.Store(&first)
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := 0; ; i++ {
						if i%40 == 39 { // 40 appends a round, at most
							select {
							case <-stop:
								return
							case <-*tick.Load():
							}
						}
						select {
						case <-stop:
							return
						default:
						}
						k := fmt.Sprintf("w%d-%d", w, i)
						r := crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(1 + i), Node: 3}}
						mu.Lock()
						applied[k] = true
						mu.Unlock()
						b, err := l.Append(&r, false)
						if err != nil {
							continue
						}
						if mode == Interval {
							mu.Lock()
							returned[k] = true
							mu.Unlock()
							continue
						}
						if b.Wait() == nil {
							mu.Lock()
							acked[k] = true
							mu.Unlock()
						}
					}
				})
			}
			check := func(step string, p string) {
				t.Helper()
				mu.Lock()
				want := make([]string, 0, len(acked))
				for k := range acked {
					if !snapshot[k] {
						want = append(want, k)
					}
				}
				mu.Unlock()
				// Copied between frames, under the writer's lock: a copy
				// read while a frame was written held that frame's first
				// block as it was before the write and the frame after it
				// (direct writes rewrite their last block), which no crash
				// leaves (CI336 read it as damage).
				var image string
				underWriter(l, func() { image = copyAsCrashed(t, p) })
				recs, _, err := Read(image)
				if p == path && err != nil {
					t.Fatalf("%s: read: %v", step, err)
				}
				if err != nil {
					t.Fatalf("%s: read after a crash: %v", step, err)
				}
				got := map[string]bool{}
				for _, r := range recs {
					got[r.Key] = true
				}
				for _, k := range want {
					if !got[k] {
						t.Fatalf("%s: acknowledged %s neither in the snapshot nor in the log (%d records read)", step, k, len(recs))
					}
				}
			}
			for round := range 150 {
				nextTick := make(chan struct{})
				close(*tick.Swap(&nextTick))
				if mode == Interval {
					mu.Lock()
					pending := make([]string, 0, len(returned))
					for k := range returned {
						pending = append(pending, k)
					}
					mu.Unlock()
					ferr := l.Flush()
					var lost uint64
					underWriter(l, func() { lost = l.retry.lostIn })
					if ferr == nil && lost == 0 {
						mu.Lock()
						for _, k := range pending {
							acked[k] = true
						}
						mu.Unlock()
					}
				}
				check(fmt.Sprint("round ", round, " before Rotate"), path)
				n, err := l.Rotate()
				if err != nil {
					continue
				}
				mu.Lock()
				next := map[string]bool{}
				for k := range applied {
					next[k] = true
				}
				mu.Unlock()
				// The snapshot is durable before RemoveBefore is called:
				// only then does it hold what it holds.
				check(fmt.Sprint("round ", round, " after Rotate"), path)
				mu.Lock()
				snapshot = next
				mu.Unlock()
				l.RemoveBefore(n)
				check(fmt.Sprint("round ", round, " after RemoveBefore"), path)
			}
			close(stop)
			wg.Wait()
			failing.Store(false)
			if mode == Interval {
				mu.Lock()
				for k := range returned {
					acked[k] = true
				}
				mu.Unlock()
			}
			cerr := l.Close(false)
			if mode == Interval && cerr != nil {
				t.Logf("Close: %v", cerr)
				return
			}
			check("after Close", path)
			mu.Lock()
			t.Logf("%d acknowledged, %d applied, stats %+v", len(acked), len(applied), l.Stats())
			mu.Unlock()
		})
	}
}
