package gossip

import (
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
)

// TestALeaverWithOnlyNewcomersLeftHasOneOfThemPull: a, the only member
// holding its cluster's state, closes while n, the only other member, is
// still a newcomer as far as a's view of its metadata says (n synced a
// moment ago, its metadata's update not at a yet). a's last write, its
// delta lost, is held by a alone: a asked no one to pull (a newcomer
// "has its first sessions with others", but there are none), and the
// write, acknowledged, left with it. A newcomer that stays is a better
// puller than none.
func TestALeaverWithOnlyNewcomersLeftHasOneOfThemPull(t *testing.T) {
	a := startNode(t, "a", nil, noPeriodic)
	n := startNode(t, "n", []string{a.r.Addr()}, noPeriodic)
	waitMembers(t, 2, a, n)
	waitSynced(t, n)
	awaitNoSession(t, a)
	awaitNoSession(t, n)
	// n's holding metadata not at a yet: a sees n as the newcomer it was.
	a.r.mu.Lock()
	nn := *a.r.alive["n"]
	rest, _, _ := withoutHolding(nn.Meta)
	nn.Meta = slices.Concat(rest, metaNewcome)
	a.r.alive["n"] = &nn
	a.r.mu.Unlock()

	// a's write, its delta lost: only a pull brings it to n.
	a.rep.mu.Lock()
	a.rep.m.Merge(crdt.Record{Key: "last", Value: []byte("v"), Time: a.rep.clock.Now()}, false, 0, nil)
	a.rep.mu.Unlock()
	if err := a.r.Close(); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 5*time.Second, func() bool { return len(n.r.Members()) == 1 }, "a's leave never reached n")
	if _, ok := n.rep.get("last"); !ok {
		t.Fatalf("a left, its last write held by no other member: a asked no one to pull (n, the only member left, a newcomer in a's view); n pulls %d", n.r.Stats().LeavePulls)
	}
}
