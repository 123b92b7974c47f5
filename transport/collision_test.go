package transport

import (
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// collidingKeys are two printable keys of one crdt.HashKey, as a caller
// may choose them (the hash is fixed, unkeyed and 64 bits wide: this pair
// takes no search, any pair takes about 2^32 hashes).
var collidingKeys = [2]string{"user:0000000402/!!!@@!!!!!!@@!!!", "user:0000000402/q{Cpd~[Cq{Cpd~[C"}

// TestCollidingKeysAreRepaired: a record of one of two keys of one hash
// that a member missed (its delta lost) is repaired by one session,
// whichever side starts it and whichever of the keys each side holds.
// Versions are matched by key hash, and the list left the second key out:
// it was never repaired (found by review). A side holding one key of the
// two cannot tell from the versions: the side that receives the other key
// sends its own back.
func TestCollidingKeysAreRepaired(t *testing.T) {
	ka, kb := collidingKeys[0], collidingKeys[1]
	if crdt.HashKey(ka) != crdt.HashKey(kb) {
		t.Fatalf("%q and %q no longer share a hash: choose two that do", ka, kb)
	}
	ra := crdt.Record{Key: ka, Value: []byte("A"), Time: crdt.Timestamp{Wall: 10, Node: 1}}
	rb := crdt.Record{Key: kb, Value: []byte("B"), Time: crdt.Timestamp{Wall: 20, Node: 1}}
	newer := crdt.Record{Key: ka, Value: []byte("A2"), Time: crdt.Timestamp{Wall: 30, Node: 2}}
	for _, c := range []struct {
		name string
		a, b []crdt.Record
	}{
		{"b missed one", []crdt.Record{ra, rb}, []crdt.Record{ra}},
		{"b missed the other", []crdt.Record{ra, rb}, []crdt.Record{rb}},
		{"each holds one", []crdt.Record{ra}, []crdt.Record{rb}},
		{"b holds both, a newer one", []crdt.Record{newer}, []crdt.Record{ra, rb}},
	} {
		for _, initiator := range []string{"a", "b"} {
			// The replicas list versions in map order: try each case
			// several times, so that either key comes first.
			for trial := range 8 {
				n := newTestNet(t, 8, Config{}, "a", "b")
				for name, recs := range map[string][]crdt.Record{"a": c.a, "b": c.b} {
					for _, r := range recs {
						n.reps[name].recs[r.Key] = r
					}
				}
				other := map[string]string{"a": "b", "b": "a"}[initiator]
				n.pump(initiator, n.nodes[initiator].StartSession(other, n.now.Now()))
				want := map[string]crdt.Record{}
				for _, r := range append(append([]crdt.Record{}, c.a...), c.b...) {
					if old, ok := want[r.Key]; !ok || old.Version().Compare(r.Version()) < 0 {
						want[r.Key] = r
					}
				}
				for _, name := range []string{"a", "b"} {
					for k, r := range want {
						if got, ok := n.reps[name].recs[k]; !ok || got.Version().Compare(r.Version()) != 0 {
							t.Fatalf("%s, %s starts, trial %d: %s holds %q at %+v (present %v), want %+v", c.name, initiator, trial, name, k, got.Time, ok, r.Time)
						}
					}
				}
			}
		}
	}
}
