package bcache

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAPathThatIsAFileBesideASnapshotIsRefused: a SnapshotPath that is
// the name of one of the files kept beside another path's snapshot (its
// members file, lineage mark, lock, a write log segment, a temporary
// file) is refused, whether or not a member runs on that path: a member
// given <path>.members started beside the member on path and moved aside
// (DamageReset), then overwrote, its members file; one on a temporary
// file's name lost its snapshot whenever the member on path started
// (found by review). The member on path itself starts, and the other's
// refusal names it.
func TestAPathThatIsAFileBesideASnapshotIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x")
	owner := mustNew(t, syncConfig(path, SyncWrite))
	defer owner.Close()
	if err := owner.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	for _, beside := range []string{knownSuffix, founderSuffix, ".lock", ".log.1", ".tmp-123", knownSuffix + ".tmp-9"} {
		for _, running := range []bool{true, false} {
			p := path + beside
			if !running {
				p = filepath.Join(dir, "y"+beside) // no member on y
			}
			cfg := syncConfig(p, SyncWrite)
			cfg.OnDamage = DamageReset
			c, err := New(cfg)
			if err == nil {
				c.Close()
				t.Fatalf("a member on %s started", p)
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "kept beside the snapshot") {
				t.Fatalf("New on %s: %v, want ErrConfig naming the snapshot it is kept beside", p, err)
			}
		}
	}
	if v, ok := owner.Get("k"); !ok || string(v) != "v" {
		t.Fatalf("the member on %s after the refusals: Get = %q, %v", path, v, ok)
	}
}

func TestOwnersOfAPath(t *testing.T) {
	for path, want := range map[string][]string{
		"d/x":                 nil,
		"d/x.snap":            nil,
		"d/x.members":         {"d/x"},
		"d/x.founder":         {"d/x"},
		"d/x.lock":            {"d/x"},
		"d/x.log.12":          {"d/x"},
		"d/x.log.a":           nil,
		"d/x.tmp-1":           {"d/x"},
		"d/x.members.tmp-1":   {"d/x.members", "d/x"},
		"d/a.tmp-b.tmp-c":     {"d/a", "d/a.tmp-b"},
		"d/x.log.3.members":   {"d/x.log.3", "d/x"},
		"d/x.members.members": {"d/x.members", "d/x"},
		"d/.members":          nil,
		// Files a reset moves aside (pruneAside removes the older).
		"d/x.damaged-20200101T000000.000000000":         {"d/x"},
		"d/x.damaged-20200101T000000.000000000.2":       {"d/x"},
		"d/x.members.damaged-20200101T000000.000000000": {"d/x.members", "d/x"},
		"d/x.log.3.damaged-20200101T000000.000000000":   {"d/x.log.3", "d/x"},
		"d/x.damaged-2020":                              nil,
		"d/x.damaged-20200101T000000.000000000.a":       nil,
	} {
		got := ownersOf(path)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("ownersOf(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestALinkNamedAsAFileBesideASnapshotIsRefused: a SnapshotPath that is
// a symbolic link named as a file beside another path's snapshot
// ("x.members") is refused, as a file of that name is, wherever it
// points: the member on x reads, locks and moves aside what is at that
// name, the link, and through it the other member's snapshot (taken
// for x's damaged members file, it failed x's New).
func TestALinkNamedAsAFileBesideASnapshotIsRefused(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "x"+knownSuffix)
	if err := os.Symlink("y", link); err != nil {
		t.Skip(err)
	}
	c, err := New(syncConfig(link, SyncWrite))
	if err == nil {
		c.Set("k", []byte("v"), 0)
		c.Close()
		_, xerr := New(syncConfig(filepath.Join(dir, "x"), SyncWrite))
		t.Fatalf("a member on %s (a link to y) started; the member on x then: %v", link, xerr)
	}
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "kept beside the snapshot") {
		t.Fatalf("New on %s: %v, want ErrConfig naming the snapshot it is kept beside", link, err)
	}
}

// TestAPathNamedAsAFileMovedAsideIsRefused: a SnapshotPath named as a
// file a reset moves aside beside another path's snapshot
// ("x.damaged-<time>", the members file's or a segment's) is refused, as
// the other files kept beside a snapshot are: the member on x removes
// such files once they are older than the sets it keeps (pruneAside),
// and removed the snapshot of the member on that name (a person starting
// a member on a copy moved aside, to see what it held, lost it at x's
// third reset after; found by review).
func TestAPathNamedAsAFileMovedAsideIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x")
	at := asideSuffix + "20200101T000000.000000000"
	for _, name := range []string{path + at, path + at + ".1", path + knownSuffix + at, path + ".log.3" + at} {
		cfg := syncConfig(name, SyncWrite)
		c, err := New(cfg)
		if err == nil {
			c.Set("k", []byte("v"), 0)
			mustClose(t, c)
			// The member on x, resetting as often as it keeps sets,
			// removes what the member on name wrote.
			xcfg := syncConfig(path, SyncWrite)
			xcfg.OnDamage = DamageReset
			for range keptAsideSets {
				if err := os.WriteFile(path, []byte("damaged"), 0o600); err != nil {
					t.Fatal(err)
				}
				mustClose(t, mustNew(t, xcfg))
			}
			_, serr := os.Stat(name)
			t.Fatalf("a member on %s started; after %d resets of the member on x, its snapshot: %v", name, keptAsideSets, serr)
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "kept beside the snapshot") {
			t.Fatalf("New on %s: %v, want ErrConfig naming the snapshot it is kept beside", name, err)
		}
	}
}
