package bcache

import "syscall"

// notDamage is the system's errors for files that cannot be read now (see
// unreadableNow): too many files open, not enough memory (two codes), a
// file or a part of it another process holds. (syscall's EMFILE and the
// like are Go's own numbers on Windows, which no call returns.)
var notDamage = []error{syscall.Errno(4), syscall.Errno(8), syscall.Errno(14), syscall.Errno(32), syscall.Errno(33)}
