package transport

import (
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestCollidedHashAtAPartBoundary: the colliding pair's hash falls
// at, just before or just after a part's boundary; each session completes
// and repairs both keys both ways.
func TestCollidedHashAtAPartBoundary(t *testing.T) {
	const bits = 8
	ka, kb := collidingKeys[0], collidingKeys[1]
	h := crdt.HashKey(ka)
	leaf := crdt.LeafIndex(h, 0, bits)
	cfg := Config{Limits: wire.Limits{MaxFrame: 4096}, MaxRepairBytes: 2048}
	room := leafVersionsRoom(cfg.Limits.MaxFrame, false)
	var below, above []string
	for _, k := range keysOfLeaf("bd", leaf, bits, 8*room) {
		if crdt.HashKey(k) < h && len(below) < room+2 {
			below = append(below, k)
		} else if crdt.HashKey(k) > h && len(above) < 2*room {
			above = append(above, k)
		}
	}
	if len(below) < room+2 {
		t.Fatalf("%d keys of the leaf below the colliding hash, want %d: draw more", len(below), room+2)
	}
	rec := func(k string, wall int64, node crdt.NodeID) crdt.Record {
		return crdt.Record{Key: k, Value: []byte(k), Time: crdt.Timestamp{Wall: wall, Node: node}}
	}
	for _, nb := range []int{room - 2, room - 1, room, room + 1} {
		for _, c := range []struct {
			name string
			a, b []crdt.Record
		}{
			{"a one, b other", []crdt.Record{rec(ka, 102, 1)}, []crdt.Record{rec(kb, 100, 2)}},
			{"a one newer", []crdt.Record{rec(ka, 99, 1)}, []crdt.Record{rec(kb, 100, 2)}},
			{"a both", []crdt.Record{rec(ka, 102, 1), rec(kb, 102, 1)}, []crdt.Record{rec(kb, 100, 2)}},
			{"b both", []crdt.Record{rec(ka, 102, 1)}, []crdt.Record{rec(ka, 100, 2), rec(kb, 100, 2)}},
		} {
			for _, initiator := range []string{"a", "b"} {
				n := newTestNet(t, bits, cfg, "a", "b")
				for _, k := range below[:nb] {
					n.reps["a"].recs[k] = rec(k, 100, 1)
				}
				for _, k := range above {
					n.reps["a"].recs[k] = rec(k, 100, 1)
				}
				for _, k := range below[nb:] {
					n.reps["b"].recs[k] = rec(k, 100, 2)
				}
				for _, r := range c.a {
					n.reps["a"].recs[r.Key] = r
				}
				for _, r := range c.b {
					n.reps["b"].recs[r.Key] = r
				}
				want := map[string]crdt.Record{}
				for _, name := range []string{"a", "b"} {
					for k, r := range n.reps[name].recs {
						if w, ok := want[k]; !ok || w.Version().Compare(r.Version()) < 0 {
							want[k] = r
						}
					}
				}
				other := map[string]string{"a": "b", "b": "a"}[initiator]
				before := n.nodes[initiator].Stats().SessionsCompleted
				n.pump(initiator, n.nodes[initiator].StartSession(other, n.now.Now()))
				if got := n.nodes[initiator].Stats().SessionsCompleted - before; got != 1 {
					t.Errorf("nb %d %s, %s starts: %d completed", nb, c.name, initiator, got)
				}
				for _, name := range []string{"a", "b"} {
					for k, w := range want {
						if got, ok := n.reps[name].recs[k]; !ok || got.Version().Compare(w.Version()) != 0 {
							t.Errorf("nb %d %s, %s starts: %s lacks %q", nb, c.name, initiator, name, k)
						}
					}
				}
			}
		}
	}
}
