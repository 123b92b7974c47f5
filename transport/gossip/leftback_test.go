package gossip

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestAMemberThatLeftAndIsBackBeforeTheViewIsARestart: a member that
// leaves (Close) and comes back under its name, a new process, before
// the loop's next view is a restart, which the node is told
// (transport.Node.Restarted): the view drops its leave (it is alive, see
// TestLeftAndBackIsAlive), and memberChanged found no earlier metadata
// to compare (the leave had removed it), so the node took the new process
// for the old one: the last exchange with the old one stayed its last
// sync (Status), and the arrival got no session of its own.
//
// The same of a member that crashed (declared dead, not left) and is
// back, another process, before the next view.
func TestAMemberThatLeftAndIsBackBeforeTheViewIsARestart(t *testing.T) {
	for _, leave := range []bool{true, false} {
		t.Run(map[bool]string{true: "left", false: "crashed"}[leave], func(t *testing.T) { leftAndBack(t, leave) })
	}
}

func leftAndBack(t *testing.T, leave bool) {
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	lastSync := func() (int64, bool) {
		a.r.nodeMu.Lock()
		defer a.r.nodeMu.Unlock()
		at, ok := a.r.node.LastSyncs()["b"]
		return at, ok
	}
	await.Until(t, 10*time.Second, func() bool { _, ok := lastSync(); return ok }, "a never synced with b")
	old := slices.Clone(a.r.lookup("b").Meta)

	// The loop takes no view while the node's lock is held here.
	a.r.nodeMu.Lock()
	locked := true
	defer func() {
		if locked {
			a.r.nodeMu.Unlock()
		}
	}()
	if err := b.r.stop(leave); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 20*time.Second, func() bool { return a.r.lookup("b") == nil }, "a does not see b go")
	startNode(t, "b", []string{a.r.Addr()})
	await.Until(t, 10*time.Second, func() bool {
		n := a.r.lookup("b")
		return n != nil && len(n.Meta) >= 8 && !bytes.Equal(n.Meta[:8], old[:8])
	}, "a does not see b back")
	a.r.updateView()
	_, synced := a.r.node.LastSyncs()["b"]
	a.r.nodeMu.Unlock()
	locked = false
	if synced {
		t.Fatal("the node counts the old process's exchange as one with the new b: not told of the restart")
	}
}
