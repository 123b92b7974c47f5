//go:build unix

package journal

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestReadOfAGrownSegmentTakesNoHeap: a segment of one record grown by a
// sparse run of zeros to 256 MiB is read, its zeros a torn end, without
// taking its size of heap: the segment was read into memory whole, and
// one larger than memory ended the process at every start, before
// OnDamage could move it aside (found by review).
func TestReadOfAGrownSegmentTakesNoHeap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: EveryWrite}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	r := rec(1)
	b, err := l.Append(&r, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	l.Close(false)
	const grown = 256 << 20
	if err := os.Truncate(segmentPath(path, 1), grown); err != nil { // sparse: no disk taken
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	recs, st, err := Read(path)
	runtime.ReadMemStats(&after)
	if err != nil || len(recs) != 1 || recs[0].Record.Key != r.Key {
		t.Fatalf("Read: %d records, %v", len(recs), err)
	}
	if took := after.TotalAlloc - before.TotalAlloc; took > 16<<20 {
		t.Fatalf("Read of a segment of %d MiB holding one record (torn end %d bytes) allocated %d MiB", grown>>20, st.Torn, took>>20)
	}
}
