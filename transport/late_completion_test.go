package transport

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestSessionEndingAfterItsPeerLeftDoesNotBringItBack: the last replies
// of sessions with b, both ways, arrive after b left on purpose. Told as
// gossip tells it (the view without b, then Left), neither session
// completes. Told Left first, the view after (a host may call them in
// that order), the session completes, and completed, it put b back among
// the members alive until the next view, then among the failed, holding
// the stable bound for FailedTimeout where b's end would retire.
func TestSessionEndingAfterItsPeerLeftDoesNotBringItBack(t *testing.T) {
	for _, tc := range []struct {
		initiator string
		leftFirst bool
	}{{"a", false}, {"b", false}, {"b", true}, {"a", true}} {
		initiator := tc.initiator
		c := newStoreCluster(t, Config{}, store.Config{Shards: 16, DigestBits: 8}, "a", "b", "c")
		c.write("b", crdt.Record{Key: "k", Value: []byte("v")})
		c.write("a", crdt.Record{Key: "j", Value: []byte("v")})
		peer := map[string]string{"a": "b", "b": "a"}[initiator]
		var late []hop
		c.run(initiator, c.nodes[initiator].StartSession(peer, c.now.Now()), func(h hop, m wire.Message) bool {
			if h.from != "b" || len(late) > 0 {
				return false
			}
			last := initiator == "a" // a's session: b's first reply
			switch m := m.(type) {
			case *wire.Repair:
				last = last || m.Final
			case *wire.Digest:
				last = last || len(m.Hashes) == 0 && m.Token != 0
			}
			if last {
				late = append(late, h)
			}
			return last
		}, nil)
		if len(late) == 0 || c.nodes["a"].LastSyncs()["b"] != 0 {
			t.Fatalf("%s initiated: held %d frames, a synced with b at %d: the session completed", initiator, len(late), c.nodes["a"].LastSyncs()["b"])
		}
		c.now.Advance(time.Millisecond)
		a := c.nodes["a"]
		if tc.leftFirst { // a host told of the leave before the view without b
			a.Left("b", false, c.now.Now())
			for _, h := range late {
				c.run(h.from, []Envelope{h.e}, nil, nil)
			}
			a.SetMembers([]string{"a", "c"}, c.now.Now())
		} else { // as gossip tells it
			a.SetMembers([]string{"a", "c"}, c.now.Now())
			a.Left("b", false, c.now.Now())
			for _, h := range late {
				c.run(h.from, []Envelope{h.e}, nil, nil)
			}
			if s := a.Stats(); s.SessionsCompleted+s.SessionsResponded != 0 {
				t.Fatalf("%s initiated: a completed %d and responded %d sessions after b left", initiator, s.SessionsCompleted, s.SessionsResponded)
			}
		}
		for range 4 { // a and c sync: b's end retires, the bound moves
			c.now.Advance(time.Second)
			c.nodes["c"].SetMembers([]string{"a", "c"}, c.now.Now())
			c.nodes["c"].Left("b", false, c.now.Now())
			c.session("a", "c")
			c.session("c", "a")
		}
		if st := a.Stable(c.now.Now()); st == NoStable {
			t.Errorf("%s initiated, left first %v: a has no stable bound 4 s after b left and c synced (b counted: %+v)", initiator, tc.leftFirst, a.roster.current["b"])
		}
		if in := a.roster.current["b"]; in != nil {
			t.Fatalf("%s initiated: b is counted as a current member again after it left (left first %v): %+v (held %d frames)", initiator, tc.leftFirst, *in, len(late))
		}
	}
}
