//go:build unix && !(solaris && !illumos) && !aix

package bcache

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on path (created if need be) for as
// long as the process holds it: the kernel releases it when the process
// ends, however it ends. It returns errLocked if another holds it, and
// the file held (see Cache.ourFiles).
func lockFile(path string) (unlock func() error, held os.FileInfo, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, errLocked
		}
		return nil, nil, err
	}
	if held, err = f.Stat(); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f.Close, held, nil
}
