package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestAResponderReaskingACrowdedLeafIsBudgeted: the initiator (b) holds a
// leaf of 10,000 keys, which a, its peer, lacks. a answers each Versions
// of the leaf with a Repair of a few dozen bytes, cut short (Truncated)
// and wanting one key of the leaf: each made b gather the whole leaf's
// records (wanted) and list its versions again to ask about it again, up
// to maxReasks times a session, outside any budget of listing work: the
// mirror image of a Versions that draws a crowded leaf from a responder:
// 65 Repairs of 35 bytes drew 1,290,000 in 65 ms, each session. Now
// within the peer's budget, the replies past it left awaited (their
// steps sent again at their retries) and counted in ListingsRefused.
func TestAResponderReaskingACrowdedLeafIsBudgeted(t *testing.T) {
	const bits, leaf, size = 4, 11, 10_000
	n, g := newCountedNet(t, bits, Config{})
	keys := keysOfLeaf("filled:", leaf, bits, size)
	low := keys[0]
	for _, k := range keys {
		n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: 100, Node: 2}}
		if crdt.HashKey(k) < crdt.HashKey(low) {
			low = k
		}
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
	n.pump("b", b.StartSession("a", n.now.Now()))
	if asked == nil {
		t.Fatal("b listed no versions")
	}
	g.gathered = 0
	before := b.Stats()
	frames, bytes := 0, 0
	const every, span = time.Millisecond, time.Second
	see := func(out []Envelope) {
		for _, e := range out {
			if e.Kind == wire.KindVersions {
				asked = decodeFrame(t, e.Payload).(*wire.Versions)
			}
		}
	}
	for range int(span / every) {
		if !b.ae.active {
			break
		}
		n.now.Advance(every)
		see(b.Tick(n.now.Now())) // a step refused goes again
		m := &wire.Repair{Session: asked.Session, Truncated: true, Wants: []uint64{crdt.HashKey(low)}}
		p := encode(t, m)
		frames, bytes = frames+1, bytes+len(p)
		out, err := b.Receive("a", p, n.now.Now())
		if err != nil {
			t.Fatal(err)
		}
		see(out)
	}
	st := b.Stats()
	bound := listingRate*int(span/time.Second) + listingRate + 2*size
	t.Logf("%d Repairs (%d bytes) drew %d records and versions from b (bound %d), %d refused; b active %v", frames, bytes, g.gathered, bound, st.ListingsRefused-before.ListingsRefused, b.ae.active)
	if g.gathered > bound {
		t.Errorf("a's replies drew %d versions and records from b, over the listing budget's %d", g.gathered, bound)
	}
}
