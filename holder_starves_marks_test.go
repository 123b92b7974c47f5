package bcache

import (
	"context"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestASilentHolderDoesNotStarveTheAskOfTheFirstSyncPeer: m synced with
// w, the founder of its cluster, and has not asked it for its marks yet
// when the cluster merges with a's (j joins both): m first sees a and b
// holding, and neither ever answers a marks ask (their answers wait here
// on their marks.mu). While a holder was still to be asked, askMarks
// asked it and never the peer of m's first sync: each silent holder
// cost three asks of marksTimeout, and a member holding the cluster's
// state that kept joining under new names (each first seen holding)
// kept m from ever asking w (found by review). After an ask of a
// holder, m's next ask is of its own peer while it has no marks (w's
// answer says they are not complete: w too has a and b to ask).
func TestASilentHolderDoesNotStarveTheAskOfTheFirstSyncPeer(t *testing.T) {
	net := memnet.NewNetwork(1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	member := func(name string, gc time.Duration, peers ...string) *Cache {
		return newCache(t, shortHorizonConfig(t, net, name, gc, peers...))
	}
	a := member("a", 50*time.Millisecond)
	b := member("b", 50*time.Millisecond, a.Addr())
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Cache{a, b} {
		await.Until(t, 10*time.Second, func() bool { return !c.repl.Status().LastExchange.IsZero() }, "%s never had an exchange", c.Name())
		c.marks.mu.Lock()            // its answer to a marks ask waits on it: it never answers
		t.Cleanup(c.marks.mu.Unlock) // before its Close (cleanups run last first)
	}

	w := member("w", 50*time.Millisecond)
	await.Until(t, 10*time.Second, w.repl.Founder, "w, alone with no peers, never founded")
	m := member("m", time.Hour, w.Addr()) // m's collections are the test's calls
	if err := m.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if m.marks.taken.Load() {
		t.Fatal("m took marks before any ask of the test's")
	}
	j := member("j", 50*time.Millisecond, w.Addr(), a.Addr()) // the merge
	await.Until(t, 10*time.Second, func() bool { return m.holderToAsk() != "" }, "m never saw a holder to ask")

	silent := func() int { // asks of a and b that went unanswered
		m.marks.mu.Lock()
		defer m.marks.mu.Unlock()
		return m.marks.holders["a"] + m.marks.holders["b"]
	}
	// w answers, complete or not (it too has the holders to ask): m took
	// its marks, or counted its answer.
	askedW := func() bool { return m.marks.taken.Load() || m.marks.incomplete.Load() > 0 }
	for !askedW() {
		if n := silent(); n >= 2 {
			t.Fatalf("m asked the silent holders %d times (MetHolders %v) and never w, the peer of its first sync", n, m.repl.Status().MetHolders)
		}
		if ctx.Err() != nil {
			t.Fatalf("m never had w's answer (silent holder asks %d)", silent())
		}
		m.askMarks() // a collection of m's
		await.Until(t, 2*marksTimeout, func() bool { return !m.marks.asking.Load() }, "m's ask never ended")
	}
	_ = j
}
