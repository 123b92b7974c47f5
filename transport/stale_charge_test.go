package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestAnInitiatorsFirstListingOfASessionIsCharged: the initiator (b)
// charges its peer's budget with the crowded leaves it lists at the
// digest's end (initiatorDigest's sendVersions), before anything brought
// the budget up to date. The budget's clock stood at its last use, a
// session ago, and the check of the peer's reply then credited the whole
// time since (capped at listingRate) after the charge: the listing was
// forgiven, and the reply answered, at every session after the first, as
// if the peer had its whole budget left past a listing of 120,000.
func TestAnInitiatorsFirstListingOfASessionIsCharged(t *testing.T) {
	const bits, leaf, size = 4, 11, 120_000
	n, _ := newCountedNet(t, bits, Config{})
	keys := keysOfLeaf("filled:", leaf, bits, size)
	for _, k := range keys {
		n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: 100, Node: 2}}
	}
	b := n.nodes["b"]
	var asked *wire.Versions
	n.drop = func(from string, e Envelope) bool {
		if from == "b" && e.Kind == wire.KindVersions {
			asked = decodeFrame(t, e.Payload).(*wire.Versions)
			return true
		}
		return false
	}
	refusedAfterListing := func() bool {
		asked = nil
		n.pump("b", b.StartSession("a", n.now.Now()))
		if asked == nil {
			t.Fatal("b listed no versions")
		}
		before := b.Stats().ListingsRefused
		m := &wire.Repair{Session: asked.Session, Truncated: true, Wants: []uint64{crdt.HashKey(keys[0])}}
		if _, err := b.Receive("a", encode(t, m), n.now.Now()); err != nil {
			t.Fatal(err)
		}
		return b.Stats().ListingsRefused > before
	}
	if !refusedAfterListing() {
		t.Fatalf("the reply to a listing of %d was answered in the first session", size)
	}
	n.now.Advance(10 * time.Second) // the budget back in full, and no more
	if !refusedAfterListing() {
		t.Errorf("the reply to a listing of %d, over the budget of %d, was answered: the listing went uncharged", size, listingRate)
	}
}
