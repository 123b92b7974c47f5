//go:build (solaris && !illumos) || aix

package bcache

import (
	"errors"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// locked are the lock files this process holds: a POSIX record lock
// belongs to the process, so a second lock of the same file from this
// process would be granted (flock's, elsewhere, belongs to the open
// file, and is not).
var locked struct {
	sync.Mutex
	paths map[string]bool
}

// lockFile takes an exclusive record lock on path (created if need be)
// with fcntl, where flock is not at hand (Solaris, AIX), for as long as
// the process holds it: the kernel releases it when the file is closed or
// the process ends, however it ends. It returns errLocked if another
// process holds it, or this one does already.
func lockFile(path string) (unlock func() error, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	locked.Lock()
	defer locked.Unlock()
	if locked.paths[abs] {
		return nil, errLocked
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0} // the whole file
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return nil, errLocked
		}
		return nil, err
	}
	if locked.paths == nil {
		locked.paths = map[string]bool{}
	}
	locked.paths[abs] = true
	return func() error {
		locked.Lock()
		defer locked.Unlock()
		delete(locked.paths, abs)
		return f.Close()
	}, nil
}
