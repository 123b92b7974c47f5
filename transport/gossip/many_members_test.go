package gossip

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
	"github.com/hashicorp/memberlist"
)

// TestManyMembersJoinInLinearTime: a member holding the key can announce
// members at any names and addresses (a push/pull of memberlist's carries
// up to 20 MiB of them, a few hundred thousand): taking each in, and
// seeing each fail, must cost the member about the same whatever the
// number it already knows, not a pass over every member known.
func TestManyMembersJoinInLinearTime(t *testing.T) {
	run := func(n int) time.Duration {
		network := memnet.NewNetwork(1)
		tr, err := network.NewTransport("a")
		if err != nil {
			t.Fatal(err)
		}
		a := startNode(t, "a", nil, func(c *Config) { c.Transport = tr })
		nodes := make([]*memberlist.Node, n)
		for i := range nodes {
			nodes[i] = &memberlist.Node{Name: fmt.Sprint("f", i), Addr: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: 7946}
		}
		// The loop's passes over the members alive (updateView, woken by
		// each change) are kept out of the time taken: they ran as the
		// scheduler let them, into a run of 2,000 seldom and into one of
		// 16,000 always, and made the ratio 9 to 31 under -race at one
		// processor. They wait on the node's lock, which taking the
		// members in does not need.
		a.r.nodeMu.Lock()
		start := time.Now()
		for _, nd := range nodes {
			a.r.memberChanged(nd, true)
		}
		for _, nd := range nodes {
			a.r.memberChanged(nd, false)
		}
		took := time.Since(start)
		a.r.nodeMu.Unlock()
		targets, _ := a.r.rejoinTargets()
		t.Logf("%d members announced and failed: %v; %d rejoin targets", n, took, len(targets))
		// Closed now: left running, its rejoin rounds (a pass over every
		// member lost, 4 times a second) ran under the runs after it.
		a.r.Close()
		return took
	}
	// The least of two runs each: a collection's pause in one run is not
	// the members' cost (a pass over every member known made it 65 times
	// as long, linear about 13).
	small, large := min(run(2000), run(2000)), min(run(16000), run(16000))
	if large > 30*small {
		t.Fatalf("8 times the members took %.0f times as long (%v against %v)", float64(large)/float64(small), large, small)
	}
}
