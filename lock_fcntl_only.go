//go:build (solaris && !illumos) || aix

package bcache

import "os"

// lockFile takes the lock of a SnapshotPath with an fcntl record lock:
// flock is not at hand on Solaris and AIX (see lockFileFcntl).
func lockFile(path string) (unlock func() error, held os.FileInfo, err error) {
	return lockFileFcntl(path)
}
