package gossip

import (
	"bytes"
	"net"
	"slices"
	"testing"

	"github.com/hashicorp/memberlist"
)

// TestAMemberSeenLeavingAndBackIsARestart: a member whose leaving notice
// (its metadata says it leaves) came, but not its leave, and that is back
// under its name with other metadata is a new process, which the node is
// told of (transport.Node.Restarted), as one seen leave and come back is
// (TestAMemberThatLeftAndIsBackBeforeTheViewIsARestart): a process never
// takes back its leaving notice. restartedUnder says nothing of leaving
// metadata, and the member, never seen to leave, was in no list of
// leavers: the node took the new process for the old one, whose last
// exchange stayed its last sync.
func TestAMemberSeenLeavingAndBackIsARestart(t *testing.T) {
	a := startNode(t, "a", nil)
	own := slices.Clone(a.r.lookup("a").Meta)
	if len(own) < 8 {
		t.Fatalf("metadata %x has no start number", own)
	}
	oldMeta, newMeta := slices.Clone(own), slices.Clone(own)
	newMeta[0] ^= 0xff // another process's start number
	// The loop takes no view while the node's lock is held here.
	a.r.nodeMu.Lock()
	defer a.r.nodeMu.Unlock()
	b := func(meta []byte) *memberlist.Node {
		return &memberlist.Node{Name: "b", Addr: net.IPv4(10, 9, 8, 7), Port: 7946, Meta: meta}
	}
	a.r.memberChanged(b(oldMeta), true)
	a.r.mu.Lock()
	a.r.restarted = nil
	a.r.mu.Unlock()
	a.r.memberChanged(b(leavingMeta), true) // its leaving notice (NotifyUpdate)
	// Its leave lost; the new process refutes the old one's state.
	a.r.memberChanged(b(newMeta), true)
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	if !bytes.Equal(a.r.alive["b"].Meta, newMeta) {
		t.Fatalf("b's metadata %x", a.r.alive["b"].Meta)
	}
	if !slices.Contains(a.r.restarted, "b") {
		t.Fatal("b, seen leaving and back with another start number, is no restart")
	}
}
