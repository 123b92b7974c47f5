package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestAPullsLostStepGoesAgainSoon: a member that leaves waits a second or
// two for a peer's pull (package transport/gossip); a datagram of the
// pull's session lost on the way was sent again only at the session's
// first retry, 500 ms with the LAN timings, half the wait. A pull's
// steps now go again after pullRetry, a lost opening as the same pull
// (its host, seeing its session no longer in flight, started another),
// and the pull completes; a session started otherwise keeps its retry.
func TestAPullsLostStepGoesAgainSoon(t *testing.T) {
	for _, tc := range []struct {
		name string
		pull bool
		lose func(h hop, m wire.Message) bool
	}{
		{"opening", true, func(h hop, m wire.Message) bool { _, ok := m.(*wire.Digest); return ok && h.from == "a" }},
		{"repair", true, func(h hop, m wire.Message) bool { _, ok := m.(*wire.Repair); return ok && h.from == "b" }},
		{"not a pull", false, func(h hop, m wire.Message) bool { _, ok := m.(*wire.Digest); return ok && h.from == "a" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newStoreCluster(t, Config{SessionTimeout: 4 * time.Second}, store.Config{Shards: 16, DigestBits: 8, Horizon: time.Hour}, "a", "b")
			c.now.Advance(time.Second)
			w := c.write("b", crdt.Record{Key: "k", Value: []byte("v")}) // its delta lost
			c.now.Advance(10 * time.Millisecond)
			a := c.nodes["a"]
			var out []Envelope
			var seq uint64
			if tc.pull {
				out, seq = a.Pull("b", c.now.Now())
			} else {
				out = a.StartSession("b", c.now.Now())
			}
			lost := false
			c.run("a", out, func(h hop, m wire.Message) bool {
				if !lost && tc.lose(h, m) {
					lost = true
					return true
				}
				return false
			}, nil)
			if !lost {
				t.Fatal("the session sent nothing to lose")
			}
			if tc.pull && a.Pulled("b", seq) {
				t.Fatal("pulled with a step lost")
			}
			c.now.Advance(pullRetry)
			again := a.Tick(c.now.Now())
			if !tc.pull {
				if len(again) != 0 {
					t.Fatalf("a session not pulled went again %v after a loss: %d frames", pullRetry, len(again))
				}
				return
			}
			if len(again) == 0 {
				t.Fatalf("nothing went again %v after the pull's step was lost", pullRetry)
			}
			if !a.Pulling("b", seq) {
				t.Fatal("the pull's opening sent again is no longer the pull")
			}
			c.run("a", again, nil, nil)
			if !a.Pulled("b", seq) {
				t.Fatal("the pull did not complete once its step went again")
			}
			if r, ok := c.stores["a"].Lookup("k"); !ok || r.Time != w.Time {
				t.Fatalf("a holds %+v (%v), want b's write %v", r, ok, w.Time)
			}
		})
	}
}
