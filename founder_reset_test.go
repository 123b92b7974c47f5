package bcache

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport"
)

// TestAMemberResetAfterMeetingOthersDoesNotFound: pod-0 founds, meets
// pod-1 (its lineage mark removed), and closes; its snapshot is damaged,
// and DamageReset moves it aside at the next start, which restores
// nothing, while its members file, kept, lists pod-1. Its lookup, stale,
// finds only itself: it must not found its cluster (ready with none of
// its data, its empty marks complete for a newcomer), as a member that
// restored its state must not; it waits for a peer, as that one does
// (found by review: taken for a member beginning a lineage alone, it
// founded, and stayed ready once pod-1 was listed again, before any
// sync).
func TestAMemberResetAfterMeetingOthersDoesNotFound(t *testing.T) {
	var more atomic.Pointer[[]string]
	cfg := testConfig("pod-0")
	cfg.SnapshotPath = filepath.Join(t.TempDir(), "snap")
	c := founded(t, cfg, &more)
	p1 := newCache(t, testConfig("pod-1", c.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p1.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { _, marked := founderMarkOf(cfg.SnapshotPath); return !marked }, "pod-0 met pod-1 and kept its mark")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := readKnownFile(cfg.SnapshotPath + knownSuffix)
	if err != nil || !slices.ContainsFunc(f.Members, func(k transport.Known) bool { return k.Name == "pod-1" }) {
		t.Fatalf("the members file beside the snapshot: %+v, %v; want pod-1 in it", f.Members, err)
	}
	if err := os.WriteFile(cfg.SnapshotPath, []byte("not a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.OnDamage = DamageReset
	c = founding(t, cfg, &more) // its lookup finds only itself
	if n := c.Stats().DamageResets; n != 1 {
		t.Fatalf("%d damage resets, want 1", n)
	}
	// Settled only itself: a founder it would be by now (setOnlySelf
	// decides under the lock that says it).
	await.Until(t, 10*time.Second, func() bool { elsewhere, _ := c.repl.SeedsElsewhere(); return !elsewhere }, "pod-0's lookup never settled")
	if s := c.Status(); s.Founder || c.marksComplete() {
		mark, _ := founderMarkOf(cfg.SnapshotPath)
		t.Fatalf("reset after it met pod-1: %+v, marks complete %v, mark %q; want no founder, its marks not complete", s, c.marksComplete(), mark)
	}
	never := []string{"127.0.0.1:1"} // pod-1 listed again, not come yet
	more.Store(&never)
	await.Until(t, 10*time.Second, func() bool { return c.Status().PeersConfigured }, "the listed peer was never looked up")
	if s := c.Status(); s.Ready() {
		t.Fatalf("reset after it met pod-1, its listed peer not come: %+v, ready; want unready until it syncs", s)
	}
}
