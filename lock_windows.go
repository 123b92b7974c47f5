//go:build windows

package bcache

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive lock on the first byte of path (created if
// need be) until unlock, or until the process ends, however it ends.
// It returns errLocked if another holds it (another process, or another
// handle of this one).
func lockFile(path string) (unlock func() error, held os.FileInfo, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, err
	}
	var whole windows.Overlapped // offset 0
	err = windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &whole)
	if err != nil {
		f.Close()
		if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
			return nil, nil, errLocked
		}
		return nil, nil, err
	}
	if held, err = f.Stat(); err != nil {
		windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &whole)
		f.Close()
		return nil, nil, err
	}
	// Unlocked before the handle is closed: Windows releases the locks of
	// a closed handle in its own time, and a member started right after
	// this one closed could find the path still locked.
	return func() error {
		uerr := windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &whole)
		return errors.Join(uerr, f.Close())
	}, held, nil
}
