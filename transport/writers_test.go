package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestWritersAreNamedByTheirDeltas: a member names a writer's clock id
// once a delta batch of that writer came to it (relayed, naming its
// origin, or direct, from its sender), one id a name: a new id (a
// restart) replaces the old, an id claimed by another name is the last
// claimant's; an origin out of the view names nothing, and a writer that
// leaves the view is forgotten, so that what it keeps is bounded by the
// view.
func TestWritersAreNamedByTheirDeltas(t *testing.T) {
	names := []string{"a", "b", "c"}
	n := newTestNet(t, 8, Config{Fanout: 1, AntiEntropyInterval: time.Hour}, names...)
	b := n.nodes["b"]
	key := 0
	deliver := func(from string, m *wire.Delta) {
		t.Helper()
		key++
		m.Records = []crdt.Record{{Key: fmt.Sprint("k", key), Value: []byte("v"), Time: crdt.Timestamp{Wall: n.now.Now(), Node: m.OriginID}}}
		if _, err := b.Receive(from, encode(t, m), n.now.Now()); err != nil {
			t.Fatal(err)
		}
	}
	named := func(id crdt.NodeID, want string) {
		t.Helper()
		if got, ok := b.Writer(id); got != want || ok != (want != "") {
			t.Fatalf("Writer(%d) = %q, %v; want %q", id, got, ok, want)
		}
	}
	named(11, "")
	deliver("c", &wire.Delta{Origin: "a", OriginID: 11, Seq: 1}) // relayed by c
	named(11, "a")
	deliver("c", &wire.Delta{OriginID: 12}) // direct, from c
	named(12, "c")
	deliver("c", &wire.Delta{Origin: "a", OriginID: 13, Seq: 1}) // a restarted
	named(11, "")
	named(13, "a")
	deliver("c", &wire.Delta{Origin: "c", OriginID: 13, Seq: 2}) // c claims a's id
	named(13, "c")
	named(12, "")
	if got, ok := b.Writer(11); ok {
		t.Fatalf("a's id before its restart names %q", got)
	}
	deliver("a", &wire.Delta{Origin: "z", OriginID: 14, Seq: 1}) // no member z in the view
	named(14, "")
	deliver("a", &wire.Delta{Origin: "b", OriginID: 15, Seq: 1}) // b's own name, not its id
	named(15, "")
	deliver("c", &wire.Delta{Origin: "a", OriginID: 16, Seq: 3})
	named(16, "a")
	b.SetMembers([]string{"c"}, n.now.Now()) // a left the view
	named(16, "")
	named(13, "c")
}
