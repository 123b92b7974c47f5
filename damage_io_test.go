package bcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/internal/store"
)

// dirNames returns the names in path's directory, sorted.
func dirNames(t *testing.T, path string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// newestSegment returns the path of the newest segment of the log beside
// path ("" if none).
func newestSegment(path string) string {
	segs, _ := journal.Segments(path)
	if len(segs) == 0 {
		return ""
	}
	return segs[len(segs)-1].Path
}

// ioFaults are the files TestIOErrorsAreNotDamage and its kin make fail:
// the one that fails, and fail, which makes its reads fail with errno,
// the first failures of them (all if negative), counting the reads.
var ioFaults = []struct {
	name   string
	file   func(path string) string
	fail   func(path string, errno syscall.Errno, failures int, reads *int)
	damage func(path string) // damages another file, if set
}{
	{"snapshot", func(path string) string { return path }, func(_ string, errno syscall.Errno, failures int, reads *int) {
		loadSnapshot = func(path string, bits int) (*store.Snapshot, error) {
			if *reads++; failures < 0 || *reads <= failures {
				return nil, fmt.Errorf("%w: reading it: %w", store.ErrSnapshot, &fs.PathError{Op: "read", Path: path, Err: errno})
			}
			return store.LoadSnapshot(path, bits)
		}
	}, nil},
	{"log", newestSegment, func(path string, errno syscall.Errno, failures int, reads *int) {
		seg := newestSegment(path)
		readLog = func(path string) ([]journal.Entry, journal.ReadStats, error) {
			if *reads++; failures < 0 || *reads <= failures {
				// As a fault reading a mapping is reported (journal's readMapped).
				return nil, journal.ReadStats{}, fmt.Errorf("read %s: %w (a fault reading its mapping)", seg, errno)
			}
			return journal.Read(path)
		}
	}, nil},
	{"members", func(path string) string { return path + knownSuffix }, func(_ string, errno syscall.Errno, failures int, reads *int) {
		readKnownBytes = func(path string, limit int64) ([]byte, error) {
			if *reads++; failures < 0 || *reads <= failures {
				return nil, &fs.PathError{Op: "open", Path: path, Err: errno}
			}
			return readAtMost(path, limit)
		}
	}, nil},
	// The snapshot damaged, and the members file unreadable: nothing is
	// moved aside before New fails for the members file.
	{"members, snapshot damaged", func(path string) string { return path + knownSuffix }, func(_ string, errno syscall.Errno, failures int, reads *int) {
		readKnownBytes = func(path string, limit int64) ([]byte, error) {
			if *reads++; failures < 0 || *reads <= failures {
				return nil, &fs.PathError{Op: "read", Path: path, Err: errno}
			}
			return readAtMost(path, limit)
		}
	}, func(path string) {
		if err := os.WriteFile(path, []byte("not a snapshot"), 0o600); err != nil {
			panic(err)
		}
	}},
}

// ioFaultImage returns the files of a member that wrote a, snapshotted,
// then wrote b (in its log), as a crash left them, tc's damage done.
func ioFaultImage(t *testing.T, damage func(string)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cache.snap")
	a := mustNew(t, syncConfig(path, SyncWrite))
	a.Set("a", []byte("1"), 0)
	mustSnapshot(t, a) // a snapshot, a members file naming it, and a log after it
	a.Set("b", []byte("2"), 0)
	image := crashImage(t, path)
	mustClose(t, a)
	// A write under way as the image was taken (the founder's mark, by a
	// goroutine of a's) left its temporary file there, which New
	// removes: the tests compare the files before and after New, and
	// failed when the image caught one (found by review).
	tmps, err := filepath.Glob(image + ".*.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(image + ".tmp-*")
	for _, tmp := range append(tmps, more...) {
		if err := os.Remove(tmp); err != nil {
			t.Fatal(err)
		}
	}
	if damage != nil {
		damage(image)
	}
	return image
}

// quickRetries makes readAgain's pauses nothing, for the test.
func quickRetries(t *testing.T) {
	pauses := ioRetryPauses
	if len(pauses) < 2 {
		t.Fatalf("New reads the files %d times after an I/O error; the tests make the first two fail", len(pauses))
	}
	ioRetryPauses = make([]time.Duration, len(pauses))
	t.Cleanup(func() {
		ioRetryPauses = pauses
		loadSnapshot, readLog, readKnownBytes = store.LoadSnapshot, journal.Read, readAtMost
	})
}

// TestIOErrorsAreNotDamage: a snapshot, write log or members file whose
// open, mapping or read fails with an error of the file system that may
// pass or is a person's to fix (a flaky network file system, a
// shortage, permissions), at every read of it (New reads four times), is
// not damage: under either policy New fails, naming the file and saying
// nothing was moved aside, and leaves every file as it was; once the file
// reads again, the member restores its acknowledged writes. Only EMFILE,
// ENFILE, ENOMEM and permissions were told apart: DamageReset moved the
// files aside for an ESTALE or ETIMEDOUT and started empty (found by
// review).
func TestIOErrorsAreNotDamage(t *testing.T) {
	quickRetries(t)
	errnos := []syscall.Errno{syscall.ESTALE, syscall.ETIMEDOUT, syscall.EINTR, syscall.EAGAIN,
		syscall.ENOMEM, syscall.EMFILE, syscall.ENFILE, syscall.EACCES, syscall.EPERM}
	for _, tc := range ioFaults {
		t.Run(tc.name, func(t *testing.T) {
			image := ioFaultImage(t, tc.damage)
			before := dirNames(t, image)
			if tc.file(image) == "" || !slices.Contains(before, filepath.Base(tc.file(image))) {
				t.Fatalf("no %s to fail: %v", tc.file(image), before)
			}
			for _, errno := range errnos {
				for _, policy := range []DamagePolicy{DamageFail, DamageReset} {
					reads := 0
					tc.fail(image, errno, -1, &reads)
					cfg := syncConfig(image, SyncWrite)
					cfg.OnDamage = policy
					c, err := New(cfg)
					loadSnapshot, readLog, readKnownBytes = store.LoadSnapshot, journal.Read, readAtMost
					if err == nil {
						c.Close()
						t.Fatalf("%v, %v: New started with a file it could not read", errno, policy)
					}
					if !errors.Is(err, errno) || !strings.Contains(err.Error(), tc.file(image)) || !strings.Contains(err.Error(), "nothing was moved aside") {
						t.Fatalf("%v, %v: New = %v; want the error, naming %s, saying nothing was moved aside", errno, policy, err, tc.file(image))
					}
					if reads != 1+len(ioRetryPauses) {
						t.Fatalf("%v, %v: %s read %d times, want %d", errno, policy, tc.file(image), reads, 1+len(ioRetryPauses))
					}
					if after := dirNames(t, image); !slices.Equal(after, before) {
						t.Fatalf("%v, %v: the files changed: %v, then %v", errno, policy, before, after)
					}
				}
			}
			if tc.damage != nil {
				return
			}
			c := mustNew(t, syncConfig(image, SyncWrite))
			defer mustClose(t, c)
			for k, want := range map[string]string{"a": "1", "b": "2"} {
				if v, ok := c.Get(k); !ok || string(v) != want {
					t.Fatalf("lost the acknowledged write %s: %q, %v", k, v, ok)
				}
			}
			if n := c.Stats().DamageResets; n != 0 {
				t.Fatalf("%d resets", n)
			}
		})
	}
}

// TestAPassingIOErrorIsReadAgain: a file whose first reads fail with an
// I/O error, EIO included (a network file system's soft mount reports
// its timeouts so), and whose next read passes, is read again: New
// starts, with DamageReset too, holding every acknowledged write, and
// moves nothing aside. Taken for the file's state at the first error, a
// passing EIO moved good files aside.
func TestAPassingIOErrorIsReadAgain(t *testing.T) {
	quickRetries(t)
	for _, tc := range ioFaults {
		if tc.damage != nil {
			continue
		}
		for _, errno := range []syscall.Errno{syscall.EIO, syscall.ESTALE} {
			t.Run(fmt.Sprint(tc.name, errno), func(t *testing.T) {
				image := ioFaultImage(t, nil)
				before := dirNames(t, image)
				reads := 0
				tc.fail(image, errno, 2, &reads) // the third read passes
				cfg := syncConfig(image, SyncWrite)
				cfg.OnDamage = DamageReset
				c := mustNew(t, cfg)
				defer mustClose(t, c)
				loadSnapshot, readLog, readKnownBytes = store.LoadSnapshot, journal.Read, readAtMost
				for k, want := range map[string]string{"a": "1", "b": "2"} {
					if v, ok := c.Get(k); !ok || string(v) != want {
						t.Fatalf("lost the acknowledged write %s: %q, %v", k, v, ok)
					}
				}
				if n := c.Stats().DamageResets; n != 0 || reads != 3 {
					t.Fatalf("%d resets, %d reads; want 0, 3", n, reads)
				}
				for _, n := range dirNames(t, image) {
					if strings.Contains(n, asideSuffix) {
						t.Fatalf("moved aside: %v (before: %v)", n, before)
					}
				}
			})
		}
	}
}

// TestAFileTheDeviceCannotReadIsDamage: EIO at every read (a bad block
// under the file) is the file's damage, as the issue of unattended
// devices asks: DamageFail fails New, moving nothing, DamageReset moves
// the file aside (the snapshot and its log together, or the members file
// alone) and starts; an unattended device would otherwise never start
// until someone moved the file by hand.
func TestAFileTheDeviceCannotReadIsDamage(t *testing.T) {
	quickRetries(t)
	for _, tc := range ioFaults {
		t.Run(tc.name, func(t *testing.T) {
			image := ioFaultImage(t, tc.damage)
			before := dirNames(t, image)
			failing := tc.file(image)
			reads := 0
			tc.fail(image, syscall.EIO, -1, &reads)
			cfg := syncConfig(image, SyncWrite)
			// (With the snapshot damaged too, New fails for the first it reads.)
			if _, err := New(cfg); !errors.Is(err, syscall.EIO) && !(tc.damage != nil && errors.Is(err, ErrSnapshot)) {
				t.Fatalf("DamageFail: New = %v, want EIO", err)
			}
			if after := dirNames(t, image); !slices.Equal(after, before) {
				t.Fatalf("DamageFail: the files changed: %v, then %v", before, after)
			}
			cfg.OnDamage = DamageReset
			c := mustNew(t, cfg)
			defer mustClose(t, c)
			loadSnapshot, readLog, readKnownBytes = store.LoadSnapshot, journal.Read, readAtMost
			if n := c.Stats().DamageResets; n == 0 {
				t.Fatal("DamageReset: no reset counted")
			}
			if aside, _ := filepath.Glob(failing + asideSuffix + "*"); len(aside) != 1 {
				t.Fatalf("DamageReset: %s moved aside as %v: %v", failing, aside, dirNames(t, image))
			}
			// The members file alone: the snapshot and its log restored.
			_, kept := c.Get("b")
			if alone := tc.name == "members"; kept != alone {
				t.Fatalf("DamageReset: b held %v, want %v", kept, alone)
			}
		})
	}
}

// TestResetsKeepTheNewestSetsAside: each reset moves a set of files aside
// (the snapshot, its log's segments, its members file, sharing a time);
// only the keptAsideSets newest stay, the older are removed as a new set
// is moved aside. All were kept: a device that reset at every start
// filled its disk (found by review).
func TestResetsKeepTheNewestSetsAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	cfg := snapshotConfig(path, nil)
	cfg.OnDamage = DamageReset
	resets := keptAsideSets + 2
	for i := range resets {
		// A damaged snapshot, a segment of a log beside it, and a damaged
		// members file: one set, each file saying which reset it was of.
		for _, f := range []string{path, path + ".log.7", path + knownSuffix} {
			if err := os.WriteFile(f, fmt.Appendf(nil, "damaged %d", i), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		c := mustNew(t, cfg)
		if n := c.Stats().DamageResets; n != 2 { // the snapshot with its log, and the members file
			t.Fatalf("reset %d: %d resets counted, want 2", i, n)
		}
		mustClose(t, c)
	}
	snaps, err := filepath.Glob(path + asideSuffix + "*")
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != keptAsideSets {
		t.Fatalf("after %d resets, %d snapshots moved aside stay: %v; want %d", resets, len(snaps), snaps, keptAsideSets)
	}
	slices.Sort(snaps) // by time
	all := 0
	for _, n := range dirNames(t, path) {
		if strings.Contains(n, asideSuffix) {
			all++
		}
	}
	if all != 3*keptAsideSets {
		t.Fatalf("%d files moved aside stay, want %d: %v", all, 3*keptAsideSets, dirNames(t, path))
	}
	for j, snap := range snaps {
		suffix := strings.TrimPrefix(snap, path)
		want := fmt.Sprintf("damaged %d", resets-keptAsideSets+j) // the newest, in order
		for _, f := range []string{path, path + ".log.7", path + knownSuffix} {
			b, err := os.ReadFile(f + suffix)
			if err != nil || string(b) != want {
				t.Fatalf("%s: %q, %v; want the set of the reset %q", f+suffix, b, err, want)
			}
		}
	}
}

// TestMembersFileMovedAsideIsSynced: a members file moved aside as damaged
// (DamageReset) has its directory synced after the rename, as the
// snapshot's move does (journal.MoveAside): unsynced, a power cut could
// undo the rename, and the next start reset and counted it again (found
// by review). A failed sync fails New, as it does the snapshot's.
func TestMembersFileMovedAsideIsSynced(t *testing.T) {
	defer func() { syncDir = store.SyncDir }()
	for _, failSync := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "m.snap")
		if err := os.WriteFile(path+knownSuffix, []byte("{not json"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig("m")
		cfg.SnapshotPath = path
		newAfterSyncedRemoval(t, cfg, failSync, "the members file was moved aside", func() bool {
			_, err := os.Stat(path + knownSuffix)
			aside, _ := filepath.Glob(path + knownSuffix + asideSuffix + "*")
			return errors.Is(err, fs.ErrNotExist) && len(aside) == 1
		})
	}
}

// newAfterSyncedRemoval starts a member from cfg under DamageReset, whose
// damaged file must be gone (removed, or moved aside: what) with its
// directory synced after: gone says it is, as the sync comes. With the
// sync failing (failSync), New must fail, saying so; else one reset is
// counted.
func newAfterSyncedRemoval(t *testing.T, cfg Config, failSync bool, what string, gone func() bool) {
	t.Helper()
	synced := false // the directory, once the file was gone
	syncDir = func(dir string) error {
		if dir == filepath.Dir(cfg.SnapshotPath) && gone() {
			synced = true
		}
		if failSync {
			return syscall.EIO
		}
		return store.SyncDir(dir)
	}
	cfg.OnDamage = DamageReset
	c, err := New(cfg)
	switch {
	case !synced:
		if err == nil {
			c.Close()
		}
		t.Fatalf("sync failing %v: the directory was not synced after %s", failSync, what)
	case failSync && err == nil:
		c.Close()
		t.Fatalf("New started though the sync after %s failed", what)
	case failSync:
		if !strings.Contains(err.Error(), "syncing its directory") {
			t.Fatalf("New = %v, want the sync's failure", err)
		}
	case err != nil:
		t.Fatal(err)
	default:
		if n := c.Stats().DamageResets; n != 1 {
			t.Errorf("%d resets, want 1", n)
		}
		mustClose(t, c)
	}
}
