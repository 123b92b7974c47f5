//go:build unix

package journal

import (
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
// mapping may go once the segment is read. The log's lock keeps other
// writers out of the file while it is mapped.
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
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("map %s (%d bytes): %w", path, size, err)
	}
	return b, func() { syscall.Munmap(b) }, nil
}
