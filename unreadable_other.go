//go:build !windows && !linux

package bcache

import "syscall"

// lostDataErrors are the system's errors for data a device could not read
// back (see lostData).
var lostDataErrors = []error{syscall.EIO}
