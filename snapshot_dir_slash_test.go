//go:build unix && !solaris && !aix

package bcache

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestASnapshotPathEndingInASeparatorIsRefused: a SnapshotPath that names
// a directory with a trailing separator ("/var/cache/x/") is a directory,
// refused by New as one without it is. Resolving its directory took
// Dir("/a/x/") for "/a/x" and Base for "x", and the member wrote its
// snapshot, log and lock at "/a/x/x", a file nobody named.
func TestASnapshotPathEndingInASeparatorIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "adir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{BindAddr: "127.0.0.1:0", SnapshotPath: dir + string(filepath.Separator)})
	if err == nil {
		t.Errorf("SnapshotPath %s/: taken, as %q", dir, c.Config().SnapshotPath)
		c.Close()
	} else if !errors.Is(err, ErrConfig) {
		t.Fatalf("SnapshotPath %s/: %v, want ErrConfig", dir, err)
	}
}
