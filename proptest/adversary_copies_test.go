package proptest

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/wire"
	"pgregory.net/rapid"
)

// TestACollectedForgeryIsAdoptedAsTheCopyCollected: the adversary makes
// one version of "a" twice (records draws a wall from a few, a logical
// that is often 0, an expiry from a few): first live, with no expiry,
// then already expired. n0 takes the expired copy and collects it (it
// keeps one dead record at most) before any check sees it held, as
// within an absence or a stall. The model adopted the first copy the
// adversary made, the live one, as the key's newest write, which no
// member ever held: the run failed "lost its newest write ...@bad (no
// expiry)" at the end, the replicas right (suspect b of the hunt of
// MaxDead 1, MayDrop, seed 27).
func TestACollectedForgeryIsAdoptedAsTheCopyCollected(t *testing.T) {
	setRapidFlags(t, map[string]string{"rapid.checks": "1", "rapid.nofailfile": "true"}) // no draws: one run is the scene
	rapid.Check(t, func(t *rapid.T) {
		store := DefaultStoreConfig()
		store.MaxDead = 1
		cfg := Config{Factory: StoreFactory(store), MayDrop: true}
		cfg.fill()
		c, err := NewCluster(2, cfg.Factory, start)
		if err != nil {
			t.Fatal(err)
		}
		h := harnessOver(cfg, c)
		h.adv = newAdversary(h)
		h.check(t)
		k := h.cfg.Keys[0]
		at := crdt.Timestamp{Wall: c.Phys(0) - int64(time.Second), Node: adversaryID}
		live := crdt.Record{Key: k, Value: []byte("x"), Time: at}
		dead := crdt.Record{Key: k, Value: []byte("x"), Time: at, Expires: 1}
		h.adv.made([]crdt.Record{live, dead}) // one version, two copies
		frame, err := wire.NewCodec(wire.Limits{}).Encode(nil, &wire.Delta{Origin: adversaryName, OriginID: adversaryID, Seq: 1, Records: []crdt.Record{dead}})
		if err != nil {
			t.Fatal(err)
		}
		h.adv.send(adversaryName, transport.Envelope{To: c.Name(0), Kind: wire.KindDelta, Payload: frame})
		h.deliverAll(t, "deliver the expired copy")
		c.Advance(2 * h.cfg.MaxSkew)  // dead on every clock: the bound takes it first
		h.delete(t, 0, h.cfg.Keys[1]) // a second dead record: the bound takes the older at once
		h.collect(t, 0)               // no check between: as within an absence's quarters
		if !h.collected(0, dead.Version()) {
			t.Fatalf("n0 collected %v, want the expired copy of %q (the scene changed)", h.collections[0], k)
		}
		h.check(t)
		h.converge(t)
	})
}
