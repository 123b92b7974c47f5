//go:build unix

package journal

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
)

// TestReadOfAGrownSegmentTakesNoHeap: a segment of one record grown by a
// sparse run of zeros to 256 MiB is read, its zeros a torn end, without
// taking its size of heap: the segment was read into memory whole, and
// one larger than memory ended the process at every start, before
// OnDamage could move it aside (found by review).
func TestReadOfAGrownSegmentTakesNoHeap(t *testing.T) {
	l, path := open(t, EveryWrite)
	appendAll(t, l, 1, 2)
	l.Close(false)
	r := rec(1)
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

// TestASegmentCutWhileReadIsAnError: a segment cut under its mapping as
// it is read (by another process, or as a disk's error would) is an
// error; the fault ended the process, at
// every start, before OnDamage could move the files aside (found by
// review). The read runs in a child process: the fault, unhandled, ends
// it.
func TestASegmentCutWhileReadIsAnError(t *testing.T) {
	inChild(t, "JOURNAL_TEST_MAPFAULT", func(path string) {
		if err := readCutSegment(t, path); err == nil {
			t.Fatal("a segment cut as it was read: no error")
		}
	})
}

// inChild runs test in a child process (a fault reading a mapping,
// unhandled, ends the process), given the path of a log of 200 records
// written here; env names the variable that carries it, and marks the
// child.
func inChild(t *testing.T, env string, test func(path string)) {
	if path := os.Getenv(env); path != "" {
		test(path)
		return
	}
	l, path := open(t, EveryWrite)
	appendAll(t, l, 0, 200)
	l.Close(false)
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the read of a segment cut under it: %v\n%.800s", err, out)
	}
}

// readCutSegment maps the first segment of the log at path, cuts the
// file to nothing under the mapping, and returns the error of reading it.
func readCutSegment(t *testing.T, path string) error {
	segs, err := Segments(path)
	if err != nil {
		t.Fatal(err)
	}
	b, unmap, err := mapFile(segs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer unmap()
	if err := os.Truncate(segs[0].Path, 0); err != nil {
		t.Fatal(err)
	}
	var st ReadStats
	return readMapped(new(entryList), &st, b, segs[0], segs, 0, 0)
}

// TestAMappingFaultIsNotTheDevicesEIO: a fault reading a segment's
// mapping says nothing of its cause (the file cut under it, a network
// file system's timeout or stale handle), and a read of the file that
// meets none is no sign of lost data: the error is an I/O error
// (fs.PathError, read again by New) that does not wrap EIO, the device's
// report that it cannot read the data back, which DamageReset takes for
// damage. Every fault was reported as EIO, and a network file system's
// passing error moved good files aside (found by review).
func TestAMappingFaultIsNotTheDevicesEIO(t *testing.T) {
	inChild(t, "JOURNAL_TEST_MAPFAULT_EIO", func(path string) {
		err := readCutSegment(t, path)
		var pe *fs.PathError
		if !errors.As(err, &pe) || errors.Is(err, syscall.EIO) || errors.Is(err, ErrDamaged) {
			t.Fatalf("a fault reading a mapping, the file reading whole: %v; want an I/O error, not EIO", err)
		}
	})
}
