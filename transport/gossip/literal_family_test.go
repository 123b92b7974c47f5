package gossip

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/bcache-go/bcache/internal/await"
)

// TestALiteralAddressOfTheOtherFamilyIsNoPeer: a PeerSource of a
// dual-stack registry lists each member at its IPv4 and its IPv6 address.
// A name's addresses of a family the member cannot reach are left out
// (TestANameIsResolvedToTheFamilyThisMemberReaches), but the same
// addresses given as ip:port were taken: a member bound to its IPv4
// address took its own IPv6 address for a peer elsewhere, dialled it at
// every look (cause "failed", "no suitable address found") and never
// founded its cluster.
func TestALiteralAddressOfTheOtherFamilyIsNoPeer(t *testing.T) {
	var self atomic.Value
	self.Store("")
	a := startNode(t, "a", nil, func(c *Config) {
		c.PeerSource = func(ctx context.Context) ([]string, error) {
			addr := self.Load().(string)
			if addr == "" {
				return nil, context.DeadlineExceeded // not known yet
			}
			_, port, _ := net.SplitHostPort(addr)
			return []string{addr, net.JoinHostPort("::1", port)}, nil
		}
	})
	self.Store(a.r.Addr())
	await.Until(t, 10*time.Second, a.r.Founder, "a, whose source lists it at its IPv4 and IPv6 addresses, never founded its cluster: %+v", a.r.Status().Joining)
	if j := a.r.Status().Joining; len(j) != 0 {
		t.Fatalf("join failures for its own addresses: %+v", j)
	}
}

// TestANameOfTheOtherFamilyAloneIsALookupFailure: a name whose addresses
// are all of a family this member cannot reach is "a lookup failure that
// says so" (README): its Status cause was "failed", the cause that says
// nothing, where a name's failures are "lookup".
func TestANameOfTheOtherFamilyAloneIsALookupFailure(t *testing.T) {
	res := dnsServer(t, func(w dns.ResponseWriter, req *dns.Msg) {
		q := req.Question[0]
		m := new(dns.Msg)
		m.SetReply(req)
		if q.Qtype == dns.TypeAAAA {
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}, AAAA: net.IPv6loopback})
		}
		w.WriteMsg(m)
	})
	r := &Replicator{cfg: Config{Resolver: res}, bound: netip.MustParseAddrPort("127.0.0.1:7946")}
	_, err := r.resolvePeer(context.Background(), "six.test:7946")
	if err == nil {
		t.Fatal("a name of IPv6 addresses alone resolved for a member bound to 127.0.0.1")
	}
	if c := joinCause(err); c != "lookup" {
		t.Fatalf("cause %q (%v), want \"lookup\"", c, err)
	}
}
