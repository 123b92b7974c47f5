package bcache

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAMergedMemberSaysItsMarksIncompleteUntilItAskedTheHolders: w founds
// a cluster and w1 joins it, taking w's marks for complete; a founds
// another with b; j joins both. Until w1 has asked the members it first
// saw holding the other cluster's state (Status.MetHolders) for their
// marks, its own lack what that cluster collected: its answer to a
// newcomer's ask must not say they are complete. It did (its ask held
// back here, as by a holder that does not answer, for up to three asks
// of marksTimeout each, or just its next collection): a newcomer whose
// first sync was with w1 in that window took marks lacking the other
// cluster's for complete and never asked another (found by review).
func TestAMergedMemberSaysItsMarksIncompleteUntilItAskedTheHolders(t *testing.T) {
	net := memnet.NewNetwork(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	member := func(name string, peers ...string) *Cache {
		return newCache(t, shortHorizonConfig(t, net, name, 50*time.Millisecond, peers...))
	}
	a := member("a")
	b := member("b", a.Addr())
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	w := member("w")
	await.Until(t, 10*time.Second, w.repl.Founder, "w, alone with no peers, never founded")
	w1 := member("w1", w.Addr())
	if err := w1.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { return w1.marks.taken.Load() && w1.marksComplete() }, "w1 never took w's marks")
	// Hold w1's ask, as one under way would.
	await.Until(t, 10*time.Second, func() bool { return w1.marks.asking.CompareAndSwap(false, true) }, "w1's ask never ended")
	released := false
	defer func() {
		if !released {
			w1.marks.asking.Store(false)
		}
	}()

	j := member("j", w.Addr(), a.Addr()) // the merge
	await.Until(t, 10*time.Second, func() bool {
		hs := w1.repl.Status().MetHolders
		return slices.Contains(hs, "a") || slices.Contains(hs, "b")
	}, "w1 never saw a or b first holding: %v", func() any { return w1.repl.Status().MetHolders })
	if w1.marksComplete() {
		t.Errorf("w1 says its marks are complete before it asked %v, of the cluster it merged with, for theirs", w1.repl.Status().MetHolders)
	}
	w1.marks.asking.Store(false)
	released = true
	await.Until(t, 20*time.Second, w1.marksComplete, "w1 never said its marks complete again once it asked %v", func() any { return w1.repl.Status().MetHolders })
	_ = j
}
