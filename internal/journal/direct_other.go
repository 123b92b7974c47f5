//go:build !linux

package journal

import (
	"errors"
	"os"
)

// openDirect reports that direct I/O is not used on this system: the log
// writes through the page cache.
func openDirect(string) (*os.File, error) {
	return nil, errors.New("direct I/O is used on Linux only")
}
