//go:build unix && !solaris && !aix

package bcache

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestSnapshotPathMustBeAFile: a SnapshotPath that is a directory or a
// named pipe (a device alike, /dev/null say) is refused by New, with
// DamageReset too: read as a damaged snapshot, it was moved aside and a
// file written in its place. Both are made in the test's own directory.
func TestSnapshotPathMustBeAFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "adir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pipe := filepath.Join(t.TempDir(), "apipe")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skipf("no named pipe here: %v", err)
	}
	for _, path := range []string{dir, pipe} {
		c, err := New(Config{BindAddr: "127.0.0.1:0", SnapshotPath: path, OnDamage: DamageReset})
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, ErrConfig) {
			t.Fatalf("SnapshotPath %s: %v, want ErrConfig", path, err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s is gone: %v", path, err)
		}
	}
}

// TestSnapshotPathThroughASymlink: a SnapshotPath that is a symlink (to a
// persistent volume, say) is followed: the snapshots go to its target. A
// snapshot renamed over the link replaced it with a file, and the target
// was never written again (found by review). A link to a file not there
// yet is followed too.
func TestSnapshotPathThroughASymlink(t *testing.T) {
	for _, exists := range []bool{true, false} {
		persistent := filepath.Join(t.TempDir(), "cache.snap")
		if exists {
			a := mustNew(t, snapshotConfig(persistent, nil))
			a.Set("old", []byte("v"), 0)
			mustClose(t, a)
		}
		link := filepath.Join(t.TempDir(), "cache.snap")
		if err := os.Symlink(persistent, link); err != nil {
			t.Skip(err)
		}
		b := mustNew(t, snapshotConfig(link, nil))
		if _, ok := b.Get("old"); exists && !ok {
			t.Fatal("not restored through the link")
		}
		b.Set("new", []byte("v"), 0)
		mustClose(t, b)
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the link is no longer one: %v, %v", fi.Mode(), err)
		}
		c := mustNew(t, snapshotConfig(persistent, nil))
		if _, ok := c.Get("new"); !ok {
			t.Fatalf("the link's target does not hold the write (target there before: %v)", exists)
		}
		mustClose(t, c)
	}
}

// TestTempFilesOfCutSnapshotsAreRemoved: a process killed while writing a
// snapshot leaves its temporary file; the next member on the path removes
// them (they were never removed: 40 kills left 13, each up to a whole
// snapshot in size, found by review). Other files beside it stay.
func TestTempFilesOfCutSnapshotsAreRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.snap")
	for _, name := range []string{"cache.snap.tmp-123", "cache.snap.tmp-456", "other.snap.tmp-1", "cache.snapx.tmp-1"} {
		os.WriteFile(filepath.Join(dir, name), []byte("cut short"), 0o600)
	}
	mustClose(t, mustNew(t, snapshotConfig(path, nil))) // its own writes (the lineage mark's too) done
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			left = append(left, e.Name())
		}
	}
	if !slices.Equal(left, []string{"cache.snapx.tmp-1", "other.snap.tmp-1"}) {
		t.Fatalf("temporary files left: %v, want only the other paths'", left)
	}
}

// TestSnapshotPathRelativeLinkInALinkedDirectory: a relative link in a
// directory reached through another link (volume mounts often are) leads
// where the kernel says: ".." after the directory's own link. Resolved
// against the path as spelled, it led elsewhere, and New failed or
// restored nothing (found by review).
func TestSnapshotPathRelativeLinkInALinkedDirectory(t *testing.T) {
	for _, decoy := range []bool{false, true} {
		root := t.TempDir()
		for _, d := range []string{"real", "data", "other"} {
			os.Mkdir(filepath.Join(root, d), 0o755)
		}
		if decoy { // where resolving ".." as spelled lands
			os.Mkdir(filepath.Join(root, "other", "data"), 0o755)
		}
		persistent := filepath.Join(root, "data", "cache.snap")
		a := mustNew(t, snapshotConfig(persistent, nil))
		a.Set("k", []byte("v"), 0)
		mustClose(t, a)
		if err := os.Symlink(filepath.Join(root, "real"), filepath.Join(root, "other", "vol")); err != nil {
			t.Skip(err)
		}
		if err := os.Symlink("../data/cache.snap", filepath.Join(root, "real", "cache.snap")); err != nil {
			t.Fatal(err)
		}
		c, err := New(snapshotConfig(filepath.Join(root, "other", "vol", "cache.snap"), nil))
		if err != nil {
			t.Fatalf("decoy %v: %v", decoy, err)
		}
		_, ok := c.Get("k")
		mustClose(t, c)
		if !ok {
			t.Fatalf("decoy %v: the snapshot the link leads to was not restored", decoy)
		}
	}
}
