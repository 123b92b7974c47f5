//go:build !windows

package store

import "os"

// SyncDir makes the entries of directory dir durable: a file created,
// renamed into it or removed survives a power cut once it returns.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
