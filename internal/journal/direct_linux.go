package journal

import (
	"os"
	"syscall"
)

// openDirect creates the file at path for writing with direct I/O: its
// writes bypass the page cache.
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_DIRECT, 0o600)
}
