package bcache

import "syscall"

// lostDataErrors are the system's errors for data a device could not read
// back (see lostData): EIO, and the file system's own report that what it
// reads is corrupt (ext4, XFS: EFSCORRUPTED, which is EUCLEAN, "structure
// needs cleaning", and EFSBADCRC, which is EBADMSG, "bad message"). These
// last until a person repairs the file system, as a bad block does: not
// damage, an unattended device whose snapshot a corruption reached never
// started under DamageReset (found by review).
var lostDataErrors = []error{syscall.EIO, syscall.EUCLEAN, syscall.EBADMSG}
