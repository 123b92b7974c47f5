package bcache

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAResetMemberStartedBehindLearnsWhatWasCollectedOnceItsClockIsSet:
// a, b and r (a NodeName, a snapshot, OnDamage: DamageReset) collect the
// delete of k, which h (a name drawn at New) held in its snapshot when it
// closed. r closes, its snapshot is damaged, and it restarts, reset and
// empty, with its clock 10 s behind (more than MaxClockDrift, less than
// the horizon: a device booted before its clock was set). The marks a
// gives it are taken no further ahead of that clock than MaxClockDrift
// (store.OfferMarks), below k's delete. Its clock is then set (a step
// shorter than the horizon: no return from an absence), and r is cut off
// from a and b with h, restarted from its old snapshot: r must not serve
// k. It did: it took the capped answer for complete and never asked again
// (found by review).
func TestAResetMemberStartedBehindLearnsWhatWasCollectedOnceItsClockIsSet(t *testing.T) {
	resetBehind(t, 10*time.Second, func(r *Cache) {
		await.Until(t, 10*time.Second, r.marks.taken.Load, "r never took an answer to its ask for marks")
	})
}

// TestAResetMemberLongBehindLearnsWhatWasCollectedOnceItsClockIsSet: as
// TestAResetMemberStartedBehindLearnsWhatWasCollectedOnceItsClockIsSet,
// the clock a minute behind and set only after r had maxIncompleteMarks
// capped answers: each was counted as an answer not complete, r stopped
// asking at the eighth, and, its clock set, never asked again and served
// k (found by review).
func TestAResetMemberLongBehindLearnsWhatWasCollectedOnceItsClockIsSet(t *testing.T) {
	resetBehind(t, time.Minute, func(r *Cache) {
		await.Until(t, 20*time.Second, func() bool { return r.marks.incomplete.Load() >= maxIncompleteMarks }, "r never had %d capped answers", maxIncompleteMarks)
	})
}

// resetBehind is the scene of the two tests above: r restarts, reset,
// with its clock behindBy behind, and its clock is set once asked (r's
// answers to its ask for marks awaited).
func resetBehind(t *testing.T, behindBy time.Duration, asked func(r *Cache)) {
	net := memnet.NewNetwork(1)
	dir := t.TempDir()
	rPath, hPath := filepath.Join(dir, "r.snap"), filepath.Join(dir, "h.snap")
	var behind atomic.Int64
	member := func(tname, name, path string, peers ...string) *Cache {
		tr, err := net.NewTransport(tname)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{NodeName: name, Network: tr, Peers: peers, Timings: FastTimings(), SnapshotPath: path,
			AntiEntropyInterval: 50 * time.Millisecond, GCInterval: 50 * time.Millisecond,
			MaxClockSkew: 10 * time.Millisecond, MaxClockDrift: 500 * time.Millisecond}
		if name == "r" {
			cfg.OnDamage = DamageReset
			cfg.Clock = func() time.Time { return time.Now().Add(-time.Duration(behind.Load())) }
		}
		return newCache(t, cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := member("a", "a", "")
	b := member("b", "b", "", a.Addr())
	r := member("r", "r", rPath, a.Addr())
	h := member("h", "", hPath, a.Addr()) // drawn name: not waited for once it has left
	for _, c := range []*Cache{b, r, h} {
		if err := c.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Set("k", []byte("old"), 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Cache{b, r, h} {
		await.Until(t, 10*time.Second, func() bool { _, ok := c.Get("k"); return ok }, "%s never got k", c.Name())
	}
	held, _ := h.store.Lookup("k")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("k"); err != nil {
		t.Fatal(err)
	}
	awaitCollected(t, "k", a, b, r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rPath, []byte("not a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}

	behind.Store(int64(behindBy))
	r = member("r", "r", rPath, a.Addr())
	if n := r.Stats().DamageResets; n != 1 {
		t.Fatalf("%d damage resets, want 1", n)
	}
	if err := r.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	asked(r)
	behind.Store(0) // the clock is set
	awaitRefused(t, r, "k", held.Time)

	net.Partition([]string{"a", "b"}) // r and h one side
	h = member("h2", "", hPath, r.Addr())
	if st := h.Stats(); st.Restored != 1 {
		t.Fatalf("h restored %d records from its snapshot, want k", st.Restored)
	}
	if within(5*time.Second, func() bool { _, ok := r.Get("k"); return ok }) {
		t.Fatal("r served h's k, whose delete it collected with a and b in its last life")
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := h.Get("k"); return !ok }, "h still holds k, cut off with r")
}
