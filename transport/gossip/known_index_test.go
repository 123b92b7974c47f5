package gossip

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
	"github.com/hashicorp/memberlist"
)

// TestKnownIndexAndMemberAddressesFollowKnown: whatever the members come
// and go (alive, failed, leaving, at another address under one name, a
// name taking another's address, another at this member's own address,
// forgotten long lost), the index by address and the transport's count
// of members at each address are what r.known says, after each event.
func TestKnownIndexAndMemberAddressesFollowKnown(t *testing.T) {
	network := memnet.NewNetwork(1)
	tr, err := network.NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	a := startNode(t, "a", nil, func(c *Config) { c.Transport = tr })
	r := a.r
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(step int, what string) {
		t.Helper()
		r.mu.Lock()
		defer r.mu.Unlock()
		want := map[string][]string{}
		counts := map[netip.Addr]int{}
		for name, k := range r.known {
			want[k.addr] = append(want[k.addr], name)
			if ap, err := netip.ParseAddrPort(k.addr); err == nil {
				counts[bare(ap.Addr())]++
			}
		}
		got := map[string][]string{}
		for addr, names := range r.byAddr {
			got[addr] = slices.Sorted(slices.Values(names))
		}
		for addr := range want {
			slices.Sort(want[addr])
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("step %d (%s): byAddr %v, known by address %v", step, what, got, want)
		}
		r.ct.mu.Lock()
		defer r.ct.mu.Unlock()
		if !maps.Equal(r.ct.members, counts) && !(len(r.ct.members) == 0 && len(counts) == 0) {
			t.Fatalf("step %d (%s): the transport's members %v, known's %v", step, what, r.ct.members, counts)
		}
	}
	check(0, "start")
	addrs := []net.IP{net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2), net.ParseIP("::ffff:10.0.0.3"), net.ParseIP("fd00::1")}
	for step := 1; step <= 20000; step++ {
		n := &memberlist.Node{Name: fmt.Sprint("m", rng.IntN(6)), Addr: addrs[rng.IntN(len(addrs))], Port: uint16(7946 + rng.IntN(2))}
		var what string
		switch rng.IntN(6) {
		case 0, 1:
			what = "alive " + n.Name + " at " + n.Address()
			r.memberChanged(n, true)
		case 2:
			what = "failed " + n.Name
			r.memberChanged(n, false)
		case 3:
			n.Meta = leavingMeta
			if rng.IntN(2) == 0 {
				n.Meta = leavingKeepsMeta
			}
			what = "left " + n.Name
			r.memberChanged(n, false)
		case 4:
			r.mu.Lock()
			self := r.selfAddr
			r.mu.Unlock()
			host, port, _ := net.SplitHostPort(self)
			p := 0
			fmt.Sscan(port, &p)
			n.Addr, n.Port = net.ParseIP(host), uint16(p)
			what = "at this member's address " + n.Name
			r.memberChanged(n, true)
		case 5:
			what = "forgotten " + n.Name
			r.mu.Lock()
			r.forgetKnown(n.Name)
			r.mu.Unlock()
		}
		check(step, what)
	}
}
