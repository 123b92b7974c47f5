package bcache

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestLockFileRefusesASecondHolder: a lock file taken is refused to a
// second taker in this process too (flock's lock is the open file's;
// fcntl's, on Solaris and AIX, the process's, which lockFile checks
// itself; LockFileEx's, on Windows, the handle's), and is free again once
// released.
func TestLockFileRefusesASecondHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, _, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if again, _, err := lockFile(path); !errors.Is(err, errLocked) {
		if again != nil {
			again()
		}
		t.Fatalf("a second lock of %s: %v, want errLocked", path, err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock, _, err = lockFile(path)
	if err != nil {
		t.Fatalf("the lock after its release: %v", err)
	}
	unlock()
}
