package gossip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestARelayedDeltaFitsTheRelayersDatagram: a batch of writes filled to
// its writer's packet budget is relayed, unchanged, behind the relaying
// member's own frame header. Members of one PacketSize whose names differ
// in length must still relay a full batch in one datagram: a relayer with
// a longer name than the writer's sent every full batch over a stream.
func TestARelayedDeltaFitsTheRelayersDatagram(t *testing.T) {
	tree := func(c *Config) { c.Protocol.Fanout = 1 } // a -> one child -> the other: relayed
	long := strings.Repeat("x", 60)
	a := startNode(t, "a", nil, tree)
	b := startNode(t, "b"+long, []string{a.r.Addr()}, tree)
	c := startNode(t, "c"+long, []string{a.r.Addr()}, tree)
	nodes := map[string]*node{a.r.cfg.Name: a, b.r.cfg.Name: b, c.r.cfg.Name: c}
	waitMembers(t, 3, a, b, c)
	await.Until(t, 10*time.Second, func() bool {
		for _, n := range nodes {
			n.r.nodeMu.Lock()
			view := n.r.node.Members()
			n.r.nodeMu.Unlock()
			if view != 3 {
				return false
			}
		}
		return true
	}, "the protocol's view is not of 3 members")

	// Small records, stamped 100 µs apart (offsets of 5 bytes, as the
	// queue estimates them): the batches are filled to within a few bytes
	// of a's budget.
	var group []crdt.Record
	now := a.rep.clock.Now()
	for i := range 400 {
		at := crdt.Timestamp{Wall: now.Wall - int64(400-i)*100_000, Node: now.Node}
		group = append(group, crdt.Record{Key: fmt.Sprintf("key-%04d", i), Value: []byte("v"), Time: at})
	}
	a.r.nodeMu.Lock()
	out := a.r.node.WriteGroup(group, a.r.now())
	a.r.nodeMu.Unlock()
	relayed := 0
	for _, e := range out {
		if m, err := wire.NewCodec(wire.Limits{}).Decode(e.Payload); err != nil {
			t.Fatal(err)
		} else if d, ok := m.(*wire.Delta); !ok || d.Origin != "a" {
			t.Fatalf("a sent %T, want a Delta of origin a (a tree)", m)
		}
		kid := nodes[e.To]
		kid.r.nodeMu.Lock()
		fwd, err := kid.r.node.Receive("a", e.Payload, kid.r.now())
		kid.r.nodeMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fwd {
			relayed++
			if size, room := len(kid.r.frame(f, false)), kid.r.datagramRoom(); size > room {
				t.Fatalf("%s relays a frame of %d bytes (a's payload %d, a's budget %d): over its datagram room of %d, sent over a stream",
					e.To[:1], size, len(f.Payload), a.r.datagramRoom()-2, room)
			}
		}
	}
	if relayed == 0 {
		t.Fatal("nothing relayed")
	}
}
