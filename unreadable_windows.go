package bcache

import "syscall"

// lostDataErrors are the system's errors for data a device could not read
// back (see lostData): ERROR_CRC, ERROR_SECTOR_NOT_FOUND, ERROR_READ_FAULT,
// ERROR_IO_DEVICE, and the file system's own report that a file or the
// disk's structure is corrupt (ERROR_FILE_CORRUPT, ERROR_DISK_CORRUPT),
// as Linux's EUCLEAN and EBADMSG are (see unreadable_linux.go).
var lostDataErrors = []error{syscall.Errno(23), syscall.Errno(27), syscall.Errno(30), syscall.Errno(1117), syscall.Errno(1392), syscall.Errno(1393)}
