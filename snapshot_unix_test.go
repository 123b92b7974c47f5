//go:build unix

package bcache

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSnapshotPathMustBeAFile: a SnapshotPath that is a directory or a
// named pipe (a device alike, /dev/null say) is refused by New, with
// DamageReset too: read as a damaged snapshot, it was moved aside and a
// file written in its place. Both are made in the test's own directory.
func TestSnapshotPathMustBeAFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "adir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pipe := filepath.Join(t.TempDir(), "apipe")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Skipf("no named pipe here: %v", err)
	}
	for _, path := range []string{dir, pipe} {
		c, err := New(Config{BindAddr: "127.0.0.1:0", SnapshotPath: path, OnDamage: DamageReset})
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, ErrConfig) {
			t.Fatalf("SnapshotPath %s: %v, want ErrConfig", path, err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s is gone: %v", path, err)
		}
	}
}
