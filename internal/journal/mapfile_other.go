//go:build !unix

package journal

import "os"

// mapFile returns the bytes of the file at path, read into memory (see
// mapfile_unix.go for the systems that map them), and a function that
// does nothing.
func mapFile(path string) ([]byte, func(), error) {
	b, err := os.ReadFile(path)
	return b, func() {}, err
}
