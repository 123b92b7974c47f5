//go:build !windows

package bcache

import "syscall"

// notDamage is the system's errors for files that cannot be read now (see
// unreadableNow).
var notDamage = []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM}
