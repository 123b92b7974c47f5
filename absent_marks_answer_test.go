package bcache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestAMemberBackFromALongAbsenceAnswersIncompleteBeforeItsNextCollection:
// p, back from an absence longer than the horizon, has completed an
// exchange with a; a newcomer that asks it for its marks before p's next
// collection (GCInterval: up to a second by default, an hour here) must
// not be told they are complete. askAgainAfterAbsence ran only from
// collect, and p answered its stale marks as complete in between (found
// by review). Asked before p has recorded the exchange, as after, p
// says they are not complete.
func TestAMemberBackFromALongAbsenceAnswersIncompleteBeforeItsNextCollection(t *testing.T) {
	net := memnet.NewNetwork(1)
	start := func(name string, gc time.Duration, peers ...string) *Cache {
		return newCache(t, shortHorizonConfig(t, net, name, gc, peers...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := start("a", 50*time.Millisecond)
	p := start("p", time.Hour, a.Addr()) // p's collections are the test's calls
	if err := p.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool {
		p.askMarks() // a collection of p's
		return p.marks.taken.Load() && p.marksComplete()
	}, "p never took complete marks")

	net.Partition([]string{"p"}) // p alone, and no collection of p's sees it
	time.Sleep(3 * time.Second)  // longer than the horizon: time itself is what the test waits for
	net.Heal()
	back := time.Now()
	awaitExchangeAfter(t, p, "a", back)
	if _, complete := (member{p}).Marks(); complete {
		t.Fatal("p, back from an absence past the horizon and synced again, answers its marks complete until its next collection")
	}
}

// TestAFounderCutOffPastTheHorizonAnswersIncomplete: a founder's marks
// are complete because it founded its cluster; cut off from every peer
// for longer than the horizon, it misses the collections made meanwhile
// as any member does, and says its marks are not complete (it answered
// complete as founder).
func TestAFounderCutOffPastTheHorizonAnswersIncomplete(t *testing.T) {
	net := memnet.NewNetwork(1)
	var more atomic.Pointer[[]string]
	a := founding(t, shortHorizonConfig(t, net, "a", 50*time.Millisecond), &more)
	await.Until(t, 10*time.Second, func() bool { return a.Status().Founder }, "a never founded its cluster")
	b := newCache(t, shortHorizonConfig(t, net, "b", 50*time.Millisecond, a.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool {
		_, complete := (member{a}).Marks()
		return complete && a.repl.Founded() && !a.repl.Status().LastExchange.IsZero()
	}, "a, the founder, never answered complete after an exchange")
	net.Partition([]string{"a"})
	time.Sleep(3 * time.Second) // longer than the horizon: time itself is what the test waits for
	if _, complete := (member{a}).Marks(); complete {
		t.Fatal("a, the founder, cut off past the horizon, answers its marks complete")
	}
}
