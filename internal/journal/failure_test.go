package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// appendWait appends record i (EveryWrite) and reports whether its write
// was acknowledged: the append and its frame returned nil.
func appendWait(t *testing.T, l *Log, i int) bool {
	t.Helper()
	r := rec(i)
	b, err := l.Append(&r, false)
	if err != nil {
		return false
	}
	return b.Wait() == nil
}

// TestFailedSegmentCreationLosesNoAcknowledgedWrite: a new segment whose
// creation fails after its header is written (its sync fails), and whose
// removal fails too (or is not durable: a power cut brings the file
// back), stays beside the log with a header saying the current segment
// ends at its length then. The log went on writing, and acknowledging,
// frames in the current segment past that length, and Read, taking the
// leftover for the next segment, read the current one only up to it: the
// acknowledged writes were silently lost at the next start. And every
// later segment change failed on the leftover's name (O_EXCL), for good.
func TestFailedSegmentCreationLosesNoAcknowledgedWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: EveryWrite}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	var acked []string
	for i := 0; i < 3; i++ {
		if !appendWait(t, l, i) {
			t.Fatalf("write %d not acknowledged on a healthy disk", i)
		}
		acked = append(acked, fmt.Sprint("k", i))
	}
	two := segmentPath(path, 2)
	eio := errors.New("input/output error")
	underWriter(l, func() {
		syncFile = func(f *os.File) error {
			if f.Name() == two {
				return eio
			}
			return f.Sync()
		}
		removeFile = func(p string) error {
			if p == two {
				return eio
			}
			return os.Remove(p)
		}
	})
	defer underWriter(l, func() { syncFile, removeFile = (*os.File).Sync, os.Remove })
	if _, err := l.Rotate(); err == nil {
		t.Fatal("Rotate succeeded with the new segment's sync failing")
	}
	for i := 3; i < 6; i++ {
		if appendWait(t, l, i) {
			acked = append(acked, fmt.Sprint("k", i))
		}
	}
	recs, _ := mustRead(t, path) // as a crash now leaves the files
	got := keys(recs)
	for _, k := range acked {
		if !slices.Contains(got, k) {
			t.Fatalf("acknowledged write %s missing from the log as read: %v (acknowledged %v)", k, got, acked)
		}
	}
	// The disk is well again: the log changes segments again, and what
	// it acknowledges reads back.
	underWriter(l, func() { syncFile, removeFile = (*os.File).Sync, os.Remove })
	if _, err := l.Rotate(); err != nil {
		t.Fatalf("Rotate once the disk is well: %v", err)
	}
	if !appendWait(t, l, 6) {
		t.Fatal("a write once the disk is well not acknowledged")
	}
	recs, _ = mustRead(t, path)
	if !slices.Contains(keys(recs), "k6") {
		t.Fatalf("k6 missing from %v", keys(recs))
	}
}

// TestBrokenLogRecoversWithoutASnapshot: a frame that fails, whose
// segment cannot be cut back, and a new segment that cannot be started,
// break the log (nothing may follow the broken frame). Once the disk is
// well again, the log starts a new segment by itself: it waited for the
// next snapshot's Rotate, every write failing with ErrNotDurable until
// then (5 minutes by default; for ever with SnapshotInterval negative,
// for a log that refuses records does not grow to the length that makes
// one), while it went on writing the kept records after the broken frame.
func TestBrokenLogRecoversWithoutASnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: EveryWrite}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(false)
	if !appendWait(t, l, 0) {
		t.Fatal("write 0 not acknowledged")
	}
	eio := errors.New("input/output error")
	underWriter(l, func() {
		l.file.f.Close() // the write, the truncate and the sync fail
		openBufferedFile = func(string) (*os.File, error) { return nil, eio }
	})
	defer underWriter(l, func() { openBufferedFile = openBuffered })
	if appendWait(t, l, 1) {
		t.Fatal("a write to a closed file acknowledged")
	}
	if l.failure.Load() == nil {
		t.Fatal("the log is not broken")
	}
	underWriter(l, func() { openBufferedFile = openBuffered }) // the disk is well again
	r := rec(2)
	l.Append(&r, false) // refused, or taken: either way it wakes the writer
	l.Flush()
	if !appendWait(t, l, 3) {
		t.Fatalf("a write once the disk is well is refused: %v", l.failure.Load())
	}
	recs, _ := mustRead(t, path)
	got := keys(recs)
	for _, k := range []string{"k0", "k1", "k3"} { // k1's frame failed: kept, written again
		if !slices.Contains(got, k) {
			t.Fatalf("%s missing from %v", k, got)
		}
	}
}
