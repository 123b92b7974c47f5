package proptest

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/wire"
)

// TestFirstSyncAcrossASkewAndBackIsNotBeforeTheIncarnation: n1, new to
// the cluster, starts its first session at skew 0; while it is in flight
// its clock is set 1 s ahead and then back to the cluster's. The step
// back moves the session's start back by the step (transport's rebase:
// TestStepBackAfterAForwardStepMovesAStartBeforeTheNode), so its first
// sync says it began 1 s before the harness saw n1 come: the harness,
// bounding a start by the incarnation's time plus the least skew since,
// failed the run ("made its first sync in an exchange it says began at T,
// before its incarnation", seen once by a reviewer in TestConvergence).
func TestFirstSyncAcrossASkewAndBackIsNotBeforeTheIncarnation(t *testing.T) {
	h := newTestHarness(t, 2)
	h.model.write(h.c.Set(0, "a", []byte("v"), 0))
	if err := h.c.DeliverAll(budget); err != nil {
		t.Fatal(err)
	}
	h.c.Advance(100 * time.Millisecond)
	h.checkFirstSyncs(t)
	h.c.Crash(1)
	if err := h.c.Restart(1); err != nil { // a new incarnation, to sync with n0
		t.Fatal(err)
	}
	h.checkFirstSyncs(t)
	h.c.Advance(100 * time.Millisecond)
	h.c.StartSession(1, 0)
	for n := 0; ; n++ {
		if n > 100 {
			t.Fatal("no Versions from n1")
		}
		i := -1
		for j, p := range h.c.Net.InFlight() {
			if p.Kind == wire.KindVersions && p.From == "n1" {
				i = j
			}
		}
		if i >= 0 {
			break // the digests compared: held in flight
		}
		if h.c.Net.Len() == 0 {
			t.Fatal("the session ended before its Versions")
		}
		if _, err := h.c.Deliver(0); err != nil {
			t.Fatal(err)
		}
	}
	h.checkFirstSyncs(t)
	h.c.SetSkew(1, time.Second)
	h.c.Tick()
	h.checkFirstSyncs(t)
	h.c.SetSkew(1, 0)
	h.c.Tick()
	h.checkFirstSyncs(t)
	if err := h.c.DeliverAll(budget); err != nil {
		t.Fatal(err)
	}
	h.checkFirstSyncs(t)
	peer, start := h.syncs[1].r.FirstSyncWith()
	t.Logf("n1's first sync with %q began at %d on its clock; the cluster's time is %d", peer, start, h.c.Now())
	if peer == "" {
		t.Fatal("n1 made no first sync")
	}
}

// TestPinnedSkewStepBackFirstSyncRun replays the run of TestConvergence
// that failed so (-rapid.seed=7 at -rapid.checks=20000: n0's clock set
// 1 s ahead and back while its first session was in flight).
func TestPinnedSkewStepBackFirstSyncRun(t *testing.T) {
	setRapidFlags(t, map[string]string{"rapid.failfile": "testdata/pinned/skew-step-back-first-sync.fail", "rapid.nofailfile": "true"})
	Check(t, Config{})
}
