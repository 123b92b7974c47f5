package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCloseReportsItsFinalFrameFailing: with Interval, an append returns
// before its frame is written; Close writes the last frame, and if that
// fails (a full disk) the records appended since the last sync are on no
// disk. Close returned nil all the same: the only caller told of it was
// OnError, and an owner that closes the log learnt nothing.
func TestCloseReportsItsFinalFrameFailing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap")
	l, err := Open(Options{Path: path, Mode: Interval, Interval: time.Hour}, ReadStats{})
	if err != nil {
		t.Fatal(err)
	}
	r := rec(1)
	if _, err := l.Append(&r, false); err != nil {
		t.Fatal(err)
	}
	full := errors.New("no space left on device")
	syncFile = func(*os.File) error { return full }
	defer func() { syncFile = (*os.File).Sync }()
	if err := l.Close(false); !errors.Is(err, full) {
		t.Fatalf("Close after its final frame failed: %v, want %v", err, full)
	}
}
