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

// TestPrintsFollowTheOldestLiveMember: a member lists its keys' prints in
// its sessions' Versions only while every live member takes them: beside
// a member of the release before prints (whose codec refuses such a
// Versions as malformed; played here by its delegate version alone) its
// node lists none, and its sessions repair what no delta carries; once
// that member has gone, it lists them again, and its sessions with a
// member of this release repair with them.
func TestPrintsFollowTheOldestLiveMember(t *testing.T) {
	a := startNode(t, "a", nil)
	// b and c start no sessions but at their arrival: a's carry what
	// differs afterwards, so its Versions reach them.
	quiet := func(c *Config) { c.Protocol.AntiEntropyInterval = time.Hour }
	saved := delegateMax
	delegateMax = rawVersion
	b := startNode(t, "b", []string{a.r.Addr()}, quiet)
	delegateMax = saved
	waitMembers(t, 2, a, b)
	lists := func() any {
		var on bool
		a.r.locked(func() []transport.Envelope { on = a.r.node.ListsPrints(); return nil })
		return on
	}
	await.Until(t, 10*time.Second, func() bool { return lists() == false && leastVersion(a.r) == rawVersion },
		"a lists prints %v beside a member of the release before (least version %d)", lists, func() any { return leastVersion(a.r) })
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
	b.r.Close()
	c := startNode(t, "c", []string{a.r.Addr()}, quiet)
	await.Until(t, 10*time.Second, func() bool { return lists() == true && leastVersion(a.r) == printsVersion },
		"a lists prints %v beside members of this release alone (least version %d)", lists, func() any { return leastVersion(a.r) })
	differ(c)
}
