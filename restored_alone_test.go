package bcache

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestARestoredMemberWithNoPeersCollectsAtTheHorizon: a member restored
// from state it built with another, then started with no peers to join
// (an edge device on its own), collects a delete past the horizon without
// ever syncing, as the README's "A member alone" says; the package doc
// said every restored member collects nothing until it has synced with a
// peer (found by review).
func TestARestoredMemberWithNoPeersCollectsAtTheHorizon(t *testing.T) {
	cfg := testConfig("edge")
	cfg.SnapshotPath = filepath.Join(t.TempDir(), "snap")
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := newCache(t, testConfig("other", c.Addr()))
	await.Until(t, 10*time.Second, func() bool { s := c.Status(); return s.Synced && !s.Founder }, "never met")
	if err := d.Set("theirs", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := c.Get("theirs"); return ok }, "never received")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	d.Close()

	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	cfg.Clock, cfg.GCInterval = func() time.Time { return time.Unix(0, now.Load()) }, time.Hour
	c = newCache(t, cfg) // restored, no peers to join
	if c.Stats().Restored == 0 {
		t.Fatal("nothing restored")
	}
	collectsPastTheHorizon(t, c, &now, "restored with no peers to join, it kept %d tombstones past the horizon (the README's \"A member alone\")")
	if s := c.Status(); s.Synced {
		t.Fatalf("synced with no peer: %+v", s)
	}
}
