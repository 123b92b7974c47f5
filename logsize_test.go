package bcache

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/journal"
)

// slowLogChecks lowers the floor of a log's snapshot to 64 KiB and keeps
// the timer that checks the log's length from firing: the tests call
// snapshotIfLogLong themselves, as that timer would at any moment.
func slowLogChecks(t *testing.T) {
	oldFloor, oldEvery := logSnapshotFloor, logCheckEvery
	logSnapshotFloor, logCheckEvery = 64<<10, time.Hour
	t.Cleanup(func() { logSnapshotFloor, logCheckEvery = oldFloor, oldEvery })
}

// logBytes returns the bytes of the write log's segments beside path.
func logBytes(t *testing.T, path string) int64 {
	t.Helper()
	segs, err := journal.Segments(path)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range segs {
		info, err := os.Stat(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		n += info.Size()
	}
	return n
}

// TestLogLeftByCrashesIsCoveredBySnapshot: a log is covered by a snapshot
// once it has grown past twice the last snapshot and the floor (README,
// Durability: a restart replays the whole log, holding it in memory). The
// length was counted from what this process wrote alone: the segments a
// crash left, replayed at the start and kept on disk until a snapshot,
// were not, so a member that crashed every time before its log reached
// the floor (the out-of-memory killer, in a loop) grew its log, and what
// each start replays, without bound.
func TestLogLeftByCrashesIsCoveredBySnapshot(t *testing.T) {
	slowLogChecks(t)
	path := filepath.Join(t.TempDir(), "cache.snap")
	value := make([]byte, 1000)
	for run := range 5 {
		cfg := syncConfig(path, SyncWrite)
		cfg.SnapshotInterval = time.Hour
		c := mustNew(t, cfg)
		for i := range 50 { // 50 KB of log, below the floor, to 10 keys
			if err := c.Set(fmt.Sprint("k", i%10), value, 0); err != nil {
				t.Fatal(err)
			}
		}
		c.snapshotIfLogLong() // as the timer would, before the crash
		img := crashImage(t, path)
		c.Close()
		path = img
		if n := logBytes(t, path); n > 3*logSnapshotFloor {
			t.Fatalf("after %d crashes the log beside a snapshot of 10 keys is %d bytes, past twice the floor (%d) and twice the snapshot: a start replays it all (log snapshots in the last run: %d)",
				run+1, n, logSnapshotFloor, c.Stats().LogSnapshots)
		}
	}
}

// TestLogSnapshotAfterARestartWeighsTheRestoredSnapshot: after a
// restart, the log is covered by a snapshot once it has grown past twice
// the snapshot restored (and the floor), as before it: the restored
// snapshot's size was taken for 0, and a member holding a large store
// rewrote it whole after the floor's worth of log.
func TestLogSnapshotAfterARestartWeighsTheRestoredSnapshot(t *testing.T) {
	slowLogChecks(t)
	path := filepath.Join(t.TempDir(), "cache.snap")
	cfg := syncConfig(path, SyncWrite)
	cfg.SnapshotInterval = time.Hour
	big := make([]byte, 4000)
	small := make([]byte, 1000)
	grow := func(c *Cache) {
		t.Helper()
		for i := range 100 { // 100 KB of log: past the floor, under twice the snapshot
			if err := c.Set(fmt.Sprint("s", i%10), small, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	a := mustNew(t, cfg)
	for i := range 100 { // a snapshot of 400 KB
		if err := a.Set(fmt.Sprint("b", i), big, 0); err != nil {
			t.Fatal(err)
		}
	}
	mustSnapshot(t, a)
	grow(a)
	a.snapshotIfLogLong()
	if n := a.Stats().LogSnapshots; n != 0 {
		t.Fatalf("before the restart: %d log snapshots for 100 KB of log beside a 400 KB snapshot; want 0", n)
	}
	mustClose(t, a)

	b := mustNew(t, cfg)
	defer b.Close()
	grow(b)
	b.snapshotIfLogLong()
	if n := b.Stats().LogSnapshots; n != 0 {
		info, _ := os.Stat(path)
		t.Fatalf("after the restart: %d log snapshots for 100 KB of log beside the %d-byte snapshot restored; want 0, as before it", n, info.Size())
	}
}
