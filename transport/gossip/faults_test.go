package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// memCluster starts n members on an in-memory network with fault
// injection, with opts.
func memCluster(t *testing.T, n int, opts ...nodeOption) (*memnet.Network, []*node) {
	t.Helper()
	net := memnet.NewNetwork(1)
	var nodes []*node
	var seed string
	for i := range n {
		name := fmt.Sprintf("m%d", i)
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		var peers []string
		if i > 0 {
			peers = []string{seed}
		}
		nd := startNode(t, name, peers, append([]nodeOption{func(c *Config) { c.Transport = tr }}, opts...)...)
		if i == 0 {
			seed = nd.r.Addr()
		}
		nodes = append(nodes, nd)
	}
	waitMembers(t, n, nodes...)
	return net, nodes
}

func names(nodes []*node) []string {
	var out []string
	for _, nd := range nodes {
		out = append(out, nd.r.cfg.Name)
	}
	return out
}

// TestPartitionHealConverges: a 2|3 partition, writes on both sides (to
// different keys and to the same ones), then a heal: the sides find each
// other again by themselves and converge.
func TestPartitionHealConverges(t *testing.T) {
	net, nodes := memCluster(t, 5)
	left, right := nodes[:2], nodes[2:]
	net.Partition(names(left), names(right))
	waitMembers(t, 2, left...)
	waitMembers(t, 3, right...)
	for i := range 50 {
		left[i%2].rep.write(left[i%2].r, fmt.Sprintf("left-%d", i), []byte("l"), false)
		right[i%3].rep.write(right[i%3].r, fmt.Sprintf("right-%d", i), []byte("r"), false)
		right[i%3].rep.write(right[i%3].r, fmt.Sprintf("both-%d", i%10), []byte("r"), i%4 == 0)
		left[i%2].rep.write(left[i%2].r, fmt.Sprintf("both-%d", i%10), []byte("l"), false)
	}
	waitConverged(t, 5*time.Second, left...)
	waitConverged(t, 5*time.Second, right...)
	net.Heal()
	waitMembers(t, 5, nodes...)
	waitConverged(t, 10*time.Second, nodes...)
	if got := len(nodes[0].rep.versions()); got != 110 {
		t.Fatalf("converged on %d keys, want 110", got)
	}
}

// TestAsymmetricLossConverges: every packet from m0 to m1 is lost, in one
// direction only; m1 still gets m0's writes (through m2's anti-entropy,
// and through streams).
func TestAsymmetricLossConverges(t *testing.T) {
	net, nodes := memCluster(t, 3)
	net.SetLoss("m0", "m1", 1)
	for i := range 30 {
		nodes[0].rep.write(nodes[0].r, fmt.Sprintf("k%d", i), []byte("v"), false)
	}
	waitConverged(t, 10*time.Second, nodes...)
}

// TestIsolatedNodeComesBack: a member cut off longer than the suspicion
// timeout is declared dead; after the heal it comes back by itself and
// catches up with what was written meanwhile.
func TestIsolatedNodeComesBack(t *testing.T) {
	net, nodes := memCluster(t, 3)
	net.Partition([]string{"m2"})
	waitMembers(t, 2, nodes[:2]...)
	waitMembers(t, 1, nodes[2])
	nodes[0].rep.write(nodes[0].r, "while-away", []byte("v"), false)
	nodes[2].rep.write(nodes[2].r, "from-the-island", []byte("w"), false)
	net.Heal()
	waitMembers(t, 3, nodes...)
	waitValue(t, 5*time.Second, "while-away", []byte("v"), nodes...)
	waitValue(t, 5*time.Second, "from-the-island", []byte("w"), nodes...)
}
