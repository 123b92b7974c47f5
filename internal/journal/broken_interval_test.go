package journal

import (
	"errors"
	"os"
	"slices"
	"testing"
)

// TestIntervalWritesRefusedWhileBrokenAreNotForgotten: an Interval log
// whose frame failed, whose segment could not be cut back and whose next
// segment could not be started is broken. Its appends returned an error
// (ErrNotDurable) and their records were refused; once the disk was well
// again, the next frame was written and the log said nothing was failing
// any more, its appends returned nil, while the records refused meanwhile
// were on no disk: a crash then lost writes older than the last sync that
// succeeded, past SyncInterval's bound and unreported (the docs: "their
// records are written with the next sync that succeeds").
func TestIntervalWritesRefusedWhileBrokenAreNotForgotten(t *testing.T) {
	l, path, _, tryOne, heal := brokenLog(t)
	appended := []string{"k0", "k1"}
	try := func(i int) error {
		appended = append(appended, rec(i).Key)
		return tryOne(i)
	}
	if err := try(2); err == nil {
		t.Fatal("an append to a broken log returned nil")
	}
	heal() // the disk is well again
	try(3)
	l.Flush() // a new segment, and a frame
	if err := try(4); err != nil {
		// The log still says writes are missing from it, until a
		// snapshot covers them.
		n, err := l.Rotate()
		if err != nil {
			t.Fatal(err)
		}
		if err := l.RemoveBefore(n); err != nil {
			t.Fatal(err)
		}
		if err := try(5); err != nil {
			t.Fatalf("an append once a snapshot covers the refused writes: %v", err)
		}
		return
	}
	mustFlush(t, l)
	recs, _ := mustRead(t, path) // as a crash now leaves it
	got := keys(recs)
	for _, k := range appended {
		if !slices.Contains(got, k) {
			t.Fatalf("an append returned nil once the disk was well, and %s, appended since the last sync that succeeded, is on no disk: the log holds %v", k, got)
		}
	}
}

// brokenLog returns an Interval log beside path that wrote k0 and then
// broke: k1's frame failed on a closed file, and no segment can be
// started (each open fails with eio) until heal (run at the test's end
// too); and try, which appends record i and returns Append's error.
func brokenLog(t *testing.T) (l *Log, path string, eio error, try func(int) error, heal func()) {
	t.Helper()
	l, path = openQuietLog(t)
	size := func(int) int { return 10 }
	appendSized(t, l, 0, 1, size)
	mustFlush(t, l)
	eio = errors.New("input/output error")
	fail := func(string) (*os.File, error) { return nil, eio }
	underWriter(l, func() {
		l.file.f.Close() // the write, the truncate and the sync fail
		openBufferedFile, openDirectFile = fail, fail
	})
	heal = func() { underWriter(l, func() { openBufferedFile, openDirectFile = openBuffered, openDirect }) }
	t.Cleanup(heal)
	appendSized(t, l, 1, 2, size) // taken: nothing failed yet
	if err := l.Flush(); err == nil {
		t.Fatal("a frame to a closed file written")
	}
	if l.failure.Load() == nil {
		t.Fatal("the log is not broken")
	}
	try = func(i int) error {
		r := rec(i)
		r.Value = []byte(value(i, size))
		_, err := l.Append(&r, false)
		return err
	}
	return l, path, eio, try, heal
}
