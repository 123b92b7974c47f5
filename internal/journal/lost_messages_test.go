package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkMessage fails unless err wraps want and its message says what
// happened (every of says) and nothing else (none of not).
func checkMessage(t *testing.T, what string, err, want error, says, not []string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want it to wrap %v", what, err, want)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("%s: %q does not say %q", what, err, s)
		}
	}
	for _, s := range not {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("%s: %q says %q, which did not happen", what, err, s)
		}
	}
}

// TestRefusedAppendsAreReportedAsRefused: once the disk is well again,
// appends refused while the log could start no segment keep the log
// failing until a snapshot covers them. The appends said "the write log's
// last sync failed, none since", though a frame had been written since,
// and Close(false) said records of failed frames were dropped past
// maxRetry (none were): each message said what had not happened.
func TestRefusedAppendsAreReportedAsRefused(t *testing.T) {
	l, _, _, try, heal := brokenLog(t)
	broken := l.failure.Load()
	if broken == nil {
		t.Fatal("the log is not broken")
	}
	why := *broken
	if err := try(2); !errors.Is(err, why) {
		t.Fatalf("an append to a broken log: %v, want %v", err, why)
	}
	heal() // the disk is well again
	try(3)
	mustFlush(t, l) // a new segment, and a frame: synced
	checkMessage(t, "an append after a frame was written", try(4), why,
		[]string{"refused appends while it could start no segment"},
		[]string{"last sync failed", "dropped"})
	mustFlush(t, l)
	checkMessage(t, "Close(false) with no snapshot covering the refused appends", l.Close(false), why,
		[]string{"refused appends while it could start no segment"},
		[]string{"last sync failed", "last frame failed", "dropped"})
}

// TestDroppedRecordsAreReportedAsDropped: records of failed frames
// dropped past maxRetry keep the log failing until a snapshot covers
// them; once a frame is written, appends said "the write log's last sync
// failed, none since", which was no longer so.
func TestDroppedRecordsAreReportedAsDropped(t *testing.T) {
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
	appendSized(t, l, 3, 6, size)
	if err := l.Flush(); !errors.Is(err, full) {
		t.Fatal(err)
	}
	r := rec(6)
	r.Value = []byte(value(6, size))
	_, err = l.Append(&r, false)
	checkMessage(t, "an append after a failed frame", err, full,
		[]string{"last sync failed, none since"}, nil)
	appendAfterFailureKept(t, l, 7, 9, size, full)
	if err := l.Flush(); !errors.Is(err, full) { // 3 to 5 dropped
		t.Fatal(err)
	}
	underWriter(l, func() { syncFile = (*os.File).Sync })
	mustFlush(t, l) // written, with 6 to 8
	r = rec(9)
	r.Value = []byte(value(9, size))
	_, err = l.Append(&r, false)
	checkMessage(t, "an append after a frame was written", err, full,
		[]string{"dropped the records of frames that failed"},
		[]string{"last sync failed", "refused"})
	mustFlush(t, l)
	checkMessage(t, "Close(false) with no snapshot covering the dropped records", l.Close(false), full,
		[]string{"dropped the records of frames that failed"},
		[]string{"last sync failed", "last frame failed", "refused"})
}
