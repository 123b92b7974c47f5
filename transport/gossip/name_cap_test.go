package gossip

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// TestANameRepeatingAnAddressGivesItsOthersWithinTheCap: a name's
// addresses are cut to maxPeerAddrs after the repeats and those of a
// family this member cannot reach are left out, not before: cut first, a
// name whose answer repeated an address (or, for a member bound to its
// IPv4 address, a dual-stack Service of more pods than the cap, whose
// IPv6 addresses Go's resolver sorts first) gave fewer peers than the
// cap, or none at all, a lookup failure ("another family").
func TestANameRepeatingAnAddressGivesItsOthersWithinTheCap(t *testing.T) {
	t.Cleanup(func(n int) func() { return func() { maxPeerAddrs = n } }(maxPeerAddrs))
	maxPeerAddrs = 2
	res := dnsServer(t, func(w dns.ResponseWriter, req *dns.Msg) {
		q := req.Question[0]
		m := new(dns.Msg)
		m.SetReply(req)
		if q.Qtype == dns.TypeA && q.Name == "pods.test." {
			for _, ip := range []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 3)} {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: ip})
			}
		}
		w.WriteMsg(m)
	})
	r := &Replicator{cfg: Config{Resolver: res}, bound: netip.MustParseAddrPort("127.0.0.1:7946")}
	got, err := r.resolvePeer(context.Background(), "pods.test:7946")
	slices.Sort(got)
	if want := []string{"127.0.0.2:7946", "127.0.0.3:7946"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("pods.test:7946 resolved to %q, %v; want %q: two distinct addresses, within the cap of 2", got, err, want)
	}
}
