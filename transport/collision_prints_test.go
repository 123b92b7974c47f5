package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestCollidedKeyReachesTheInitiatorBeforeItCompletes: each side holds a
// different key of one hash, the initiator's newer. The responder wants
// the hash, as for an update of its key; without prints it learnt of the
// collision only when the initiator's record came, and sent its own key
// back in a Reject that nothing awaits: that Reject lost (or the Repair
// that carried the initiator's record), the initiator completed, synced
// at its cut, lacking the responder's key (found by review). With
// prints, the responder sees the keys differ in the Versions and sends
// its record in the reply the initiator awaits, which is asked again when
// lost. Without them (a release before, or a cluster with a member of
// another transport), the test shows the gap, as the broken variant.
func TestCollidedKeyReachesTheInitiatorBeforeItCompletes(t *testing.T) {
	ka, kb := collidingKeys[0], collidingKeys[1]
	losses := map[string]func(h hop, m wire.Message) bool{
		"the responder's Reject":  func(h hop, m wire.Message) bool { return h.from == "b" && h.e.Kind == wire.KindReject },
		"the initiator's Repairs": func(h hop, m wire.Message) bool { return h.from == "a" && h.e.Kind == wire.KindRepair },
		"the first answer to its Versions, and every Reject": func() func(hop, wire.Message) bool {
			lost := false
			return func(h hop, m wire.Message) bool {
				if h.e.Kind == wire.KindReject || h.from == "b" && h.e.Kind == wire.KindRepair && !lost {
					lost = true
					return true
				}
				return false
			}
		}(),
	}
	for name, lose := range losses {
		for _, prints := range []bool{true, false} {
			completed, holds := collidedSession(t, ka, kb, prints, lose)
			switch {
			case prints && !completed:
				t.Fatalf("%s lost, with prints: the session did not complete", name)
			case prints && !holds:
				t.Fatalf("%s lost, with prints: a completed lacking %q", name, kb)
			case !prints && (!completed || holds):
				// The gap the prints close, shown: if this fails, the
				// test no longer tells the fix from its absence.
				t.Fatalf("%s lost, without prints: completed %v, holds %q %v; want the old gap (completed, lacking it)", name, completed, kb, holds)
			}
		}
	}
}

// collidedSession runs one session from a, which holds ka, to b, which
// holds kb (of ka's hash, older), with the prints on or off, losing the
// frames lose says, and ticks until it ends: whether a completed it,
// and whether a then holds kb.
func collidedSession(t *testing.T, ka, kb string, prints bool, lose func(hop, wire.Message) bool) (completed, holds bool) {
	t.Helper()
	c := newStoreCluster(t, Config{SessionTimeout: time.Second, AntiEntropyInterval: time.Hour}, store.Config{Shards: 16, DigestBits: 8}, "a", "b")
	for _, nd := range c.nodes {
		nd.ListPrints(prints)
	}
	c.write("b", crdt.Record{Key: kb, Value: []byte("b's")})
	c.now.Advance(time.Millisecond)
	c.write("a", crdt.Record{Key: ka, Value: []byte("a's, newer")})
	a := c.nodes["a"]
	c.run("a", a.StartSession("b", c.now.Now()), lose, nil)
	for tick := 0; tick < 100 && a.ae.active; tick++ {
		c.now.Advance(50 * time.Millisecond)
		c.run("a", a.Tick(c.now.Now()), lose, nil)
		c.run("b", c.nodes["b"].Tick(c.now.Now()), lose, nil)
	}
	_, holds = c.stores["a"].Lookup(kb)
	return a.Stats().SessionsCompleted == 1, holds
}
