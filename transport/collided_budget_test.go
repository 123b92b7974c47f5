package transport

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// hashPartner returns another key of k's crdt.HashKey, as a caller that
// chooses keys makes one at no cost: k's first 16-byte step with its two
// factors swapped (the fold is symmetric; see crdt/hash.go).
func hashPartner(k string) string {
	const k0, k1 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db
	h := uint64(k0) ^ uint64(len(k))*k1
	x, y := binary.LittleEndian.Uint64([]byte(k)), binary.LittleEndian.Uint64([]byte(k[8:]))
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], y^h^k1)
	binary.LittleEndian.PutUint64(b[8:], x^k1^h)
	return string(b[:]) + k[16:]
}

// TestCollidedRecordsOfACrowdedLeafAreBudgeted: a peer with a session
// lists, in one Versions, a hundred keys of a leaf it filled (10,000
// keys) at newer versions than the responder's, so that the responder
// wants them while it holds them; then it sends a hundred small Repairs,
// each with one record of another key of one of those hashes. Each such
// record made the responder gather the whole crowded leaf's records to
// send its own of the hash back (receiveRepair's collided), outside the
// peer's budget of listing work: a hundred frames of a few dozen bytes
// drew a million records in a second, as many as the peer cared to send.
func TestCollidedRecordsOfACrowdedLeafAreBudgeted(t *testing.T) {
	const bits, leaf, size, held = 4, 11, 10_000, 100
	n, g := newCountedNet(t, bits, Config{})
	for _, k := range keysOfLeaf("filled:", leaf, bits, size) {
		n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: 100, Node: 1}}
	}
	var keys []string
	for i := 0; len(keys) < held; i++ {
		k := fmt.Sprintf("held:%011d/tail", i)
		if hashPartner(k) == k || crdt.HashKey(hashPartner(k)) != crdt.HashKey(k) {
			t.Fatalf("no partner of %q", k)
		}
		if crdt.LeafIndex(crdt.HashKey(k), 0, bits) == leaf {
			keys = append(keys, k)
			n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("b"), Time: crdt.Timestamp{Wall: 100, Node: 1}}
		}
	}
	slices.SortFunc(keys, func(x, y string) int { return cmpHash(crdt.HashKey(x), crdt.HashKey(y)) })
	a, b := n.nodes["a"], n.nodes["b"]
	var sess wire.Session
	n.drop = func(from string, e Envelope) bool {
		if from == "a" && e.Kind == wire.KindVersions && sess.ID == 0 {
			sess = decodeFrame(t, e.Payload).(*wire.Versions).Session
		}
		return sess.ID != 0
	}
	n.pump("a", a.StartSession("b", n.now.Now()))
	if sess.ID == 0 {
		t.Fatal("a listed no versions")
	}
	// The Versions: the held keys newer on a's side (b wants them, holding them).
	sess.Step++
	v := &wire.Versions{Session: sess, Leaves: []uint32{leaf}, Counts: []uint32{held}}
	for _, k := range keys {
		v.Versions = append(v.Versions, wire.KeyVersion{KeyHash: crdt.HashKey(k), Time: crdt.Timestamp{Wall: 200, Node: 1}})
	}
	if _, err := b.Receive("a", encode(t, v), n.now.Now()); err != nil {
		t.Fatal(err)
	}
	g.gathered = 0
	const span = time.Second
	for _, k := range keys {
		n.now.Advance(span / held)
		sess.Step++
		m := &wire.Repair{Session: sess, Records: []crdt.Record{{Key: hashPartner(k), Value: []byte("x"), Time: crdt.Timestamp{Wall: 50, Node: 1}}}}
		if _, err := b.Receive("a", encode(t, m), n.now.Now()); err != nil {
			t.Fatal(err)
		}
	}
	bound := listingRate*int(span/time.Second) + listingRate + 2*(size+held)
	t.Logf("%d records gathered for %d Repairs (bound %d)", g.gathered, held, bound)
	if g.gathered > bound {
		t.Errorf("the peer's Repairs gathered %d records in %v, over the listing budget's %d", g.gathered, span, bound)
	}
}

func cmpHash(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
