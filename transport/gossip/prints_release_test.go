package gossip

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestPrintsGoToTheMembersThatTakeThem: a member lists its keys' prints
// in a session's Versions to a peer that takes them, whatever the other
// members are: beside a member of the release before prints (whose codec
// refuses such a Versions as malformed; played here by its delegate
// version alone) its node lists none to that member, whose sessions
// repair what no delta carries, and lists them to a member of this
// release, whose sessions repair with them; once the older member has
// gone, it lists them to every peer. Gated on the least version in the
// view, as it was, it listed them to no one beside the older member.
func TestPrintsGoToTheMembersThatTakeThem(t *testing.T) {
	a := startNode(t, "a", nil)
	// b and c start no sessions but at their arrival: a's carry what
	// differs afterwards, so its Versions reach them.
	quiet := func(c *Config) { c.Protocol.AntiEntropyInterval = time.Hour }
	saved := delegateMax
	delegateMax = rawVersion
	b := startNode(t, "b", []string{a.r.Addr()}, quiet)
	delegateMax = saved
	c := startNode(t, "c", []string{a.r.Addr()}, quiet)
	waitMembers(t, 3, a, b, c)
	lists := func(peer string) func() any {
		return func() any {
			var on bool
			a.r.locked(func() []transport.Envelope { on = a.r.node.ListsPrints(peer); return nil })
			return on
		}
	}
	await.Until(t, 10*time.Second, func() bool {
		return lists("b")() == false && lists("c")() == true && lists("d")() == false && leastVersion(a.r) == rawVersion
	}, "beside a member of the release before (least version %d), a lists prints to it: %v, to a member of this release: %v, to a name not in its view: %v",
		func() any { return leastVersion(a.r) }, lists("b"), lists("c"), lists("d"))
	// Versions of keys both hold, which no delta carries, the peer's
	// newer: a's sessions must list them (a leaf one side alone holds keys
	// of is moved whole, listing none). Rounds of fresh keys until a has
	// listed some: the peer's arrival session may have compared the first.
	hold := func(nd *node, key, value string) {
		nd.rep.mu.Lock()
		nd.rep.m.Merge(crdt.Record{Key: key, Value: []byte(value), Time: nd.rep.clock.Now()}, false, 0, nil)
		nd.rep.mu.Unlock()
	}
	differ := func(peer *node) {
		t.Helper()
		name := peer.r.cfg.Name
		before := a.r.Stats().Protocol.FramesSentByKind[wire.KindVersions]
		for round := 0; a.r.Stats().Protocol.FramesSentByKind[wire.KindVersions] == before; round++ {
			if round == 5 {
				t.Fatalf("a listed no Versions to %s in %d rounds", name, round)
			}
			for i := range 50 {
				key := fmt.Sprint(name, round, "-", i)
				hold(a, key, "a's")
				hold(peer, key, name+"'s") // later: the peer's clock reads after a's
			}
			await.Until(t, 10*time.Second, func() bool {
				if peer.r.Stats().Protocol.RejectedMalformed > 0 {
					return true
				}
				for i := range 50 {
					if v, _ := a.rep.get(fmt.Sprint(name, round, "-", i)); !bytes.Equal(v, []byte(name+"'s")) {
						return false
					}
				}
				return true
			}, "round %d: a never read %s's values", round, name)
			if n := peer.r.Stats().Protocol.RejectedMalformed; n > 0 {
				t.Fatalf("%s refused %d frames as malformed", name, n)
			}
		}
	}
	differ(b)
	differ(c)
	b.r.Close()
	await.Until(t, 10*time.Second, func() bool { return lists("d")() == true && leastVersion(a.r) == printsVersion },
		"beside members of this release alone (least version %d), a lists prints to every peer: %v", func() any { return leastVersion(a.r) }, lists("d"))
}
