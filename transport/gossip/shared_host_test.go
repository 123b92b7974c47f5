package gossip

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestPeersOnOneHostAreAllLookedUp: two peers at one host name and two
// ports (two members on one machine, or an SRV name's targets on one
// node at ports of their own) are looked up at once within a look; the
// second lookup of the name found the first in flight, and failed as
// "an earlier lookup has not returned": at every look one of the two
// peers had no address (not joined), was reported as a lookup failure
// and counted, and the look settled nothing.
func TestPeersOnOneHostAreAllLookedUp(t *testing.T) {
	res := dnsServer(t, func(w dns.ResponseWriter, req *dns.Msg) {
		q := req.Question[0]
		m := new(dns.Msg)
		m.SetReply(req)
		switch {
		case q.Qtype == dns.TypeSRV:
			for _, port := range []uint16{7003, 7004} {
				m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET}, Port: port, Target: "multi.test."})
			}
		case q.Qtype == dns.TypeA && q.Name == "multi.test.":
			// A server a little way off: the two lookups overlap.
			time.Sleep(200 * time.Millisecond)
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(127, 0, 0, 1)})
		}
		w.WriteMsg(m)
	})
	for _, c := range []struct {
		peers, want []string
	}{
		{[]string{"multi.test:7001", "multi.test:7002"}, []string{"127.0.0.1:7001", "127.0.0.1:7002"}},
		{[]string{"srv:_x._tcp.test."}, []string{"127.0.0.1:7003", "127.0.0.1:7004"}},
	} {
		r := &Replicator{cfg: Config{Resolver: res, Peers: c.peers}}
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		addrs, failed := r.seeds(ctx, ctx)
		cancel()
		if !slices.Equal(addrs, c.want) || len(failed) != 0 {
			t.Errorf("peers %q at one host: %q, failures %v; want %q and none", c.peers, addrs, failed, c.want)
		}
	}
}
