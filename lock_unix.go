//go:build unix && !(solaris && !illumos) && !aix

package bcache

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on path (created if need be) for as
// long as the process holds it: the kernel releases it when the process
// ends, however it ends. It returns errLocked if another holds it.
func lockFile(path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return f.Close, nil
}
