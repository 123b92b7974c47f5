package journal

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestCloseReportsRecordsDroppedFromTheLog: with Interval, the records of
// failed frames past maxRetry are dropped from the log (their appends had
// returned nil); the log stays failing until a snapshot covers them. A
// Close with no snapshot covering them (covered false), whose final frame
// is written, returned nil: the records are on no disk, and the owner was
// told nothing, as with a final frame that fails.
func TestCloseReportsRecordsDroppedFromTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	size := func(int) int { return 10 }
	appendSized(t, l, 0, 3, size)
	mustFlush(t, l)
	frame := int(l.Stats().Bytes) - frameHead
	defer func(was int) { maxRetry = was }(maxRetry)
	maxRetry = frame * 3 / 2
	full := errors.New("no space left on device")
	underWriter(l, func() { syncFile = func(*os.File) error { return full } })
	defer func() { syncFile = (*os.File).Sync }()
	appendSized(t, l, 3, 6, size) // acknowledged: nil
	if err := l.Flush(); !errors.Is(err, full) {
		t.Fatal(err)
	}
	appendAfterFailureKept(t, l, 6, 9, size, full)
	if err := l.Flush(); !errors.Is(err, full) { // 3 to 5 dropped
		t.Fatal(err)
	}
	underWriter(l, func() { syncFile = (*os.File).Sync })
	err = l.Close(false)
	recs, _ := mustRead(t, path)
	if slices.Contains(keys(recs), "k3") {
		t.Fatalf("k3, dropped, is in the log: %v", keys(recs))
	}
	if err == nil {
		t.Fatalf("Close(false) returned nil, though records 3 to 5, appended with nil, are on no disk: the log holds %v", keys(recs))
	}
}
