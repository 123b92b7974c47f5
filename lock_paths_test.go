//go:build linux

package bcache

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAMemberKeepsItsDirectoryWhenALinkToItChanges: a SnapshotPath whose
// directory is reached through a symbolic link (a deploy's "current"
// link to a release) is the directory the link named at New, for as long
// as the member runs: the link turned to another directory while it ran
// (the next release, whose member starts as this one closes), the member
// wrote its snapshot and log there by name, beside the files of the
// member that holds that directory's lock, and removed that member's
// write log, acknowledged writes in it.
func TestAMemberKeepsItsDirectoryWhenALinkToItChanges(t *testing.T) {
	dir := t.TempDir()
	real1, real2 := filepath.Join(dir, "r1"), filepath.Join(dir, "r2")
	for _, d := range []string{real1, real2} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "current")
	if err := os.Symlink(real1, link); err != nil {
		t.Fatal(err)
	}
	a := mustNew(t, syncConfig(filepath.Join(link, "x"), SyncWrite))
	if err := a.Set("a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	// The link turned, atomically, as a deploy does.
	if err := os.Symlink(real2, link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}
	b := mustNew(t, syncConfig(filepath.Join(link, "x"), SyncWrite))
	bOwnsItsFiles(t, a, b, filepath.Join(real2, "x"))
	// And a's own files hold its write.
	d := mustNew(t, syncConfig(filepath.Join(real1, "x"), SyncWrite))
	defer d.Close()
	if v, ok := d.Get("a"); !ok || string(v) != "1" {
		t.Errorf("a's write in r1's files: %q, %v (files: %v)", v, ok, dirNames(t, filepath.Join(real1, "x")))
	}
}

// bOwnsItsFiles has b write, with SyncWrite, on its path, then a (which
// wrote "a" on a path that came to name b's files) close, then b crash:
// the files at path must hold b's acknowledged write and not a's.
func bOwnsItsFiles(t *testing.T, a, b *Cache, path string) {
	t.Helper()
	if err := b.Set("b", []byte("2"), 0); err != nil { // acknowledged: in b's log
		t.Fatal(err)
	}
	mustClose(t, a)
	img := crashImage(t, path) // b crashes now: its files as they stand
	mustClose(t, b)
	c := mustNew(t, syncConfig(img, SyncWrite))
	defer c.Close()
	if v, ok := c.Get("b"); !ok || string(v) != "2" {
		t.Errorf("b's acknowledged write after its crash: %q, %v (files: %v)", v, ok, dirNames(t, path))
	}
	if _, ok := c.Get("a"); ok {
		t.Errorf("the other member wrote its value into %s's files", path)
	}
}

// fds counts this process's open descriptors.
func fds(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(es)
}

// TestFailedNewAndCloseLeaveNoDescriptor: a New refused for a path in
// use, one failing on damage or on its port, and a Close (twice) give
// back every descriptor they opened.
func TestFailedNewAndCloseLeaveNoDescriptor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x")
	before := fds(t)
	a := mustNew(t, syncConfig(path, SyncWrite))
	a.Set("k", []byte("v"), 0)
	for range 5 {
		if c, err := New(syncConfig(path, SyncWrite)); err == nil {
			c.Close()
			t.Fatal("a second member on the path started")
		}
	}
	mustClose(t, a)
	mustClose(t, a)
	if n := fds(t); n > before {
		t.Errorf("%d descriptors after a member and 5 refused, %d before", n, before)
	}
	// A damaged snapshot, refused.
	if err := os.WriteFile(path, []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if c, err := New(syncConfig(path, SyncWrite)); err == nil {
			c.Close()
			t.Fatal("a damaged snapshot started")
		}
	}
	if n := fds(t); n > before {
		t.Errorf("%d descriptors after 5 New failing on damage, %d before", n, before)
	}
	os.Remove(path)
	// A port taken: New fails after the log is opened.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before = fds(t)
	for range 5 {
		cfg := syncConfig(path, SyncWrite)
		cfg.BindAddr = l.Addr().String()
		if c, err := New(cfg); err == nil {
			c.Close()
			t.Fatal("New took a port in use")
		}
	}
	if n := fds(t); n > before {
		t.Errorf("%d descriptors after 5 New failing on the port, %d before", n, before)
	}
}

// TestAnotherProcessHoldsThePathByAnyName: a member in another process
// holds its SnapshotPath against a New here by any spelling of it (the
// path, a link to the file, a link to its directory, relative), and a
// New succeeds once that process is killed (its lock file left behind).
func TestAnotherProcessHoldsThePathByAnyName(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(real, "x")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s", killChildEnv, SyncWrite, 0, path))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatal("the child did not start")
	}
	go io.Copy(io.Discard, out)
	if err := os.Symlink(real, filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path, filepath.Join(dir, "filelink")); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, filepath.Join(dir, "dirlink", "x"), filepath.Join(dir, "filelink"), rel, filepath.Join(real, ".", "x")} {
		if c, err := New(syncConfig(p, SyncWrite)); err == nil {
			c.Close()
			t.Errorf("a member on %s started beside another process's on %s", p, path)
		} else if !strings.Contains(err.Error(), "in use") {
			t.Errorf("New on %s: %v, want it in use", p, err)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	c := mustNew(t, syncConfig(filepath.Join(dir, "dirlink", "x"), SyncWrite))
	mustClose(t, c)
}

// TestANewRacingCloseOnThePathSeesEveryWrite: a New on a path whose
// member is closing is refused, or starts with every write the closing
// member acknowledged (it waits for the lock's release, the last thing
// Close does).
func TestANewRacingCloseOnThePathSeesEveryWrite(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncNone, SyncWrite} {
		path := filepath.Join(t.TempDir(), "x")
		for i := range 20 {
			a := mustNew(t, syncConfig(path, pol))
			for j := range 50 {
				if err := a.Set(fmt.Sprint(i, "-", j), []byte("v"), 0); err != nil {
					t.Fatal(err)
				}
			}
			closed := make(chan error, 1)
			go func() { closed <- a.Close() }()
			b, err := New(syncConfig(path, pol))
			if err != nil {
				if !strings.Contains(err.Error(), "in use") {
					t.Fatal(err)
				}
				if err := <-closed; err != nil {
					t.Fatal(err)
				}
				b = mustNew(t, syncConfig(path, pol))
			} else if err := <-closed; err != nil {
				t.Fatal(err)
			}
			for k := 0; k <= i; k++ {
				for j := range 50 {
					if _, ok := b.Get(fmt.Sprint(k, "-", j)); !ok {
						t.Fatalf("%v round %d: %d-%d lost", pol, i, k, j)
					}
				}
			}
			mustClose(t, b)
		}
	}
}

// TestAMemberOnARelativePathKeepsItsDirectoryAcrossAChdir: a relative
// SnapshotPath is the file it named at New: the process's working
// directory changed after, the member wrote its snapshot beside the
// files of a member started on the same relative path in the new
// directory, and removed that member's write log.
func TestAMemberOnARelativePathKeepsItsDirectoryAcrossAChdir(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	t.Chdir(dir1)
	a := mustNew(t, syncConfig("x", SyncWrite))
	if err := a.Set("a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir2)
	b := mustNew(t, syncConfig("x", SyncWrite))
	bOwnsItsFiles(t, a, b, filepath.Join(dir2, "x"))
}

// TestAMemberWritesNoFileWhereItsLockIsNoLonger: a member whose directory
// is moved away (and a new one made at its name), or whose lock file is
// removed, while it runs, no longer holds the lock at its SnapshotPath,
// and a second member starts there. The first, reaching its files by
// name, wrote its snapshot over the second's at Close and removed the
// second's write log, acknowledged writes in it. It writes nothing there
// now, and its Close reports the snapshot it could not write; its own
// acknowledged writes stay in the log it kept open.
func TestAMemberWritesNoFileWhereItsLockIsNoLonger(t *testing.T) {
	for _, how := range []string{"directory moved", "lock removed"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			d, moved := filepath.Join(dir, "d"), filepath.Join(dir, "moved")
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(d, "x")
			a := mustNew(t, syncConfig(path, SyncWrite))
			if err := a.Set("a", []byte("1"), 0); err != nil {
				t.Fatal(err)
			}
			aFiles := path
			switch how {
			case "directory moved":
				if err := os.Rename(d, moved); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(d, 0o700); err != nil {
					t.Fatal(err)
				}
				aFiles = filepath.Join(moved, "x")
				// A new segment (a snapshot's, or after a write failed)
				// is created by name: none in the new directory.
				if _, err := a.journal.Rotate(); err == nil || !strings.Contains(err.Error(), "no longer the lock file") {
					t.Errorf("a new log segment after the move: %v, want it refused", err)
				}
				if names := dirNames(t, path); len(names) != 0 {
					t.Errorf("the member wrote %v in the directory made at its old one's name", names)
				}
			case "lock removed":
				if err := os.Remove(path + ".lock"); err != nil {
					t.Fatal(err)
				}
			}
			b := mustNew(t, syncConfig(path, SyncWrite))
			if err := b.Set("b", []byte("2"), 0); err != nil {
				t.Fatal(err)
			}
			err := a.Close()
			if err == nil || !strings.Contains(err.Error(), "no longer the lock file") {
				t.Errorf("Close of the member whose lock went: %v, want the snapshot it could not write", err)
			}
			if s := a.Stats(); s.SnapshotErrors == 0 {
				t.Errorf("snapshot errors counted: %d, want at least one", s.SnapshotErrors)
			}
			img := crashImage(t, path) // b crashes now: its files as they stand
			mustClose(t, b)
			c := mustNew(t, syncConfig(img, SyncWrite))
			if v, ok := c.Get("b"); !ok || string(v) != "2" {
				t.Errorf("b's acknowledged write after its crash: %q, %v (files: %v)", v, ok, dirNames(t, path))
			}
			mustClose(t, c)
			if how != "directory moved" {
				return // b read a's writes at its start, from a's log beside it
			}
			if _, ok := c.Get("a"); ok {
				t.Errorf("the member whose lock went wrote its value into %s's files", path)
			}
			// a's acknowledged write is in the files it took with it.
			e := mustNew(t, syncConfig(aFiles, SyncWrite))
			defer e.Close()
			if v, ok := e.Get("a"); !ok || string(v) != "1" {
				t.Errorf("a's write in the directory moved: %q, %v (files: %v)", v, ok, dirNames(t, aFiles))
			}
		})
	}
}
