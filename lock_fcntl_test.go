//go:build unix

package bcache

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFcntlLockKnowsTheFileByAnyName: the fcntl lock (Solaris, AIX),
// which the process holds whatever the descriptor, refuses the same file
// reached by another name (a link to its directory) in this process, and
// the refusal leaves it held: granted, the second member's Close closed
// a descriptor of the file and dropped the first's lock, which another
// process then took while the first member still wrote to the path.
func TestFcntlLockKnowsTheFileByAnyName(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	unlock, _, err := lockFileFcntl(filepath.Join(real, "x.lock"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{filepath.Join(real, "x.lock"), filepath.Join(link, "x.lock")} {
		if again, _, err := lockFileFcntl(name); !errors.Is(err, errLocked) {
			if again != nil {
				again()
			}
			t.Errorf("a second lock of the file as %s: %v, want errLocked", name, err)
		}
	}
	if lockedElsewhere(t, filepath.Join(link, "x.lock")) == nil {
		t.Fatal("another process took the lock while this one held it")
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if err := lockedElsewhere(t, filepath.Join(link, "x.lock")); err != nil {
		t.Fatalf("another process could not take the lock after its release: %v", err)
	}
	unlock, _, err = lockFileFcntl(filepath.Join(link, "x.lock"))
	if err != nil {
		t.Fatalf("the lock after its release: %v", err)
	}
	unlock()
}

// lockedElsewhere has another process (this test binary again) take the
// fcntl lock of path, and returns nil if it got it.
func lockedElsewhere(t *testing.T, path string) error {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFcntlLockOtherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BCACHE_FCNTL_LOCK="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("the other process: %v\n%s", err, out)
	}
	return err
}

// TestFcntlLockOtherProcess is the other process of lockedElsewhere.
func TestFcntlLockOtherProcess(t *testing.T) {
	path := os.Getenv("BCACHE_FCNTL_LOCK")
	if path == "" {
		t.Skip("run by TestFcntlLockKnowsTheFileByAnyName")
	}
	unlock, _, err := lockFileFcntl(path)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}
