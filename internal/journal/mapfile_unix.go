//go:build unix

package journal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// mapFile returns the bytes of the file at path, mapped from the file
// rather than read into the heap, and the function that unmaps them:
// Read looks at a segment whole (a torn end is told from damage by what
// follows it), and a segment read into memory cost its size at every
// start, whatever it held (a file grown to 256 MiB around one record took
// 256 MiB of heap, and one larger than memory would end the process
// before OnDamage could move it aside: found by review). Entries decoded
// from the bytes copy what they keep (store.DecodeRecord), so that the
// mapping may go once the segment is read; a fault reading the mapping
// (the file cut under it, a disk's error) is an error, not the end of the
// process (see readMapped). The mapping is private and read-only: some
// file systems refuse shared ones (FUSE with direct I/O), and a file
// system that refuses any mapping gets the file read into memory, as
// before (found by review).
func mapFile(path string) ([]byte, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := info.Size()
	if size == 0 {
		return nil, func() {}, nil
	}
	if int64(int(size)) != size || size < 0 {
		return nil, nil, fmt.Errorf("%s: %d bytes, more than this process can map", path, size)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_PRIVATE)
	switch {
	case errors.Is(err, syscall.ENOMEM): // the address space is short: not the file's fault
		return nil, nil, fmt.Errorf("map %s (%d bytes): %w", path, size, err)
	case err != nil:
		b, err := os.ReadFile(path)
		return b, func() {}, err
	}
	return b, func() { syscall.Munmap(b) }, nil
}
