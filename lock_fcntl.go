//go:build unix

package bcache

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// locked are the lock files this process holds with fcntl: a POSIX
// record lock belongs to the process, so a second lock of the same file
// from this process would be granted (flock's, elsewhere, belongs to the
// open file, and is not), and closing any descriptor of the file, the
// second taker's included, drops it. They are known by the file, not by
// its name: a second name of it (a link to its directory, a hard link, a
// bind mount) was granted the lock, and its member's Close released the
// first's (found by review).
var locked struct {
	sync.Mutex
	files []os.FileInfo
}

// heldByUs reports whether info is a file this process holds. Called
// with locked held.
func heldByUs(info os.FileInfo) bool {
	for _, h := range locked.files {
		if os.SameFile(h, info) {
			return true
		}
	}
	return false
}

// lockFileFcntl takes an exclusive record lock on path (created if need
// be) with fcntl, where flock is not at hand (Solaris, AIX: see
// lock_fcntl_only.go; built on every Unix so that its tests run
// anywhere), for as long as the process holds it: the kernel releases it
// when the file is closed or the process ends, however it ends. It
// returns errLocked if another process holds it, or this one does
// already, under this name or another.
func lockFileFcntl(path string) (unlock func() error, held os.FileInfo, err error) {
	locked.Lock()
	defer locked.Unlock()
	// Checked before the file is opened: the descriptor that found it
	// held could not be closed without dropping the process's lock.
	if info, err := os.Stat(path); err == nil && heldByUs(info) {
		return nil, nil, errLocked
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if heldByUs(info) { // linked to path since the check: kept open, as closing it would drop the lock
		strays = append(strays, f)
		return nil, nil, errLocked
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0} // the whole file
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return nil, nil, errLocked
		}
		return nil, nil, err
	}
	locked.files = append(locked.files, info)
	return func() error {
		locked.Lock()
		defer locked.Unlock()
		for i, h := range locked.files {
			if h == info {
				locked.files = append(locked.files[:i], locked.files[i+1:]...)
				break
			}
		}
		return f.Close()
	}, info, nil
}

// strays are descriptors of held lock files opened under another name in
// a race with the check before opening (a link made in between): never
// closed, as closing one would drop the process's lock. Guarded by locked.
var strays []*os.File
