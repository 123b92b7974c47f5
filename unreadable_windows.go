package bcache

import "syscall"

// lostDataErrors are the system's errors for data a device could not read
// back (see lostData): ERROR_CRC and ERROR_IO_DEVICE.
var lostDataErrors = []error{syscall.Errno(23), syscall.Errno(1117)}
