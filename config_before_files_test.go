package bcache

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestGossipConfigRefusedBeforeTheFilesAreRead: a rule gossip owns (here a
// peer's address without a port) is refused before New reads or moves
// anything. It was checked only once the snapshot and its log had been
// restored: a typo cost a large snapshot's restore, and under DamageReset
// a damaged snapshot had been moved aside by the time New said the
// configuration was wrong.
func TestGossipConfigRefusedBeforeTheFilesAreRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.snap")
	if err := os.WriteFile(path, []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirNames(t, path)
	cfg := snapshotConfig(path, nil)
	cfg.OnDamage = DamageReset
	cfg.Peers = []string{"127.0.0.1"} // no port
	if _, err := New(cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("New = %v, want ErrConfig", err)
	}
	if after := dirNames(t, path); !slices.Equal(after, before) {
		t.Fatalf("the files changed under a refused configuration: %v, then %v", before, after)
	}
	cfg.Peers = nil // the same files, a configuration that starts: reset as before
	c := mustNew(t, cfg)
	defer mustClose(t, c)
	if n := c.Stats().DamageResets; n != 1 {
		t.Fatalf("%d resets counted, want 1", n)
	}
}
