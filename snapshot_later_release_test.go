package bcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestASnapshotOfALaterReleaseIsDamage: a snapshot in a format this
// release cannot read (written by a later one, then the binary rolled
// back) fails New with ErrSnapshot naming its format; with DamageReset it
// is moved aside whole, as damage is, kept for the release that can read
// it, and the member starts empty. The README said nothing of a
// downgrade.
func TestASnapshotOfALaterReleaseIsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.snap")
	c := mustNew(t, syncConfig(path, SyncNone))
	mustSet(t, c, "k1")
	mustClose(t, c)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const magic = "bcache snapshot\n"
	if !bytes.HasPrefix(b, []byte(magic)) || len(b) < len(magic)+5 {
		t.Fatalf("not a snapshot: %q", b[:min(len(b), 32)])
	}
	b[len(magic)] = 200 // a format this release does not know, the file's checksum made again
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := New(syncConfig(path, SyncNone)); !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "format version 200") {
		if err == nil {
			c.Close()
		}
		t.Fatalf("New on a later release's snapshot: %v, want ErrSnapshot naming its format", err)
	}
	cfg := syncConfig(path, SyncNone)
	cfg.OnDamage = DamageReset
	c = mustNew(t, cfg)
	defer c.Close()
	if st := c.Stats(); st.DamageResets == 0 || st.Records != 0 {
		t.Fatalf("reset: %d damage resets, %d records; want the snapshot set aside and none", st.DamageResets, st.Records)
	}
	aside, err := filepath.Glob(path + ".damaged-*")
	if err != nil || len(aside) != 1 {
		t.Fatalf("set aside: %q, %v; want the snapshot", aside, err)
	}
	if kept, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(kept, b) {
		t.Fatalf("the snapshot set aside is not the later release's file (%v)", err)
	}
}
