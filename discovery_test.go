package bcache

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/bcache-go/bcache/internal/await"
)

// localDNS is a DNS server on 127.0.0.1 answering from records a test
// changes as it goes: SRV records by name, and A records (127.0.0.1) for
// the names in hosts.
type localDNS struct {
	mu    sync.Mutex
	srv   map[string][]*net.SRV
	hosts map[string]bool
	addr  string
}

func startDNS(t *testing.T) *localDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &localDNS{srv: map[string][]*net.SRV{}, hosts: map[string]bool{}, addr: pc.LocalAddr().String()}
	server := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	go server.ActivateAndServe()
	t.Cleanup(func() { server.Shutdown() })
	return d
}

func (d *localDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	d.mu.Lock()
	for _, q := range req.Question {
		switch q.Qtype {
		case dns.TypeSRV:
			for _, s := range d.srv[q.Name] {
				m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET},
					Port: s.Port, Target: s.Target})
			}
		case dns.TypeA:
			if d.hosts[q.Name] {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A: net.IPv4(127, 0, 0, 1)})
			}
		}
		if len(m.Answer) == 0 && len(d.srv[q.Name]) == 0 && !d.hosts[q.Name] {
			m.Rcode = dns.RcodeNameError
		}
	}
	d.mu.Unlock()
	w.WriteMsg(m)
}

// resolver returns a resolver that asks d alone.
func (d *localDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, "udp", d.addr)
	}}
}

// set makes name's SRV records point at the members, each as target
// m<i>.test. at its port, with an A record each.
func (d *localDNS) set(name string, members ...*Cache) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.srv[name] = nil
	for i, c := range members {
		_, port, _ := net.SplitHostPort(c.Addr())
		p, _ := strconv.Atoi(port)
		target := "m" + strconv.Itoa(i) + ".test."
		d.hosts[target] = true
		d.srv[name] = append(d.srv[name], &net.SRV{Target: target, Port: uint16(p)})
	}
}

func pair(t *testing.T) (*Cache, *Cache) {
	t.Helper()
	a := newCache(t, Config{NodeName: "a", BindAddr: "127.0.0.1:0", Timings: FastTimings()})
	b := newCache(t, Config{NodeName: "b", BindAddr: "127.0.0.1:0", Timings: FastTimings(), Peers: []string{a.Addr()}})
	await.Until(t, 10*time.Second, func() bool { return len(a.Members()) == 2 }, "a and b never met")
	return a, b
}

// TestSRVPeersAreResolvedAgain: a member whose peer is an SRV name that
// lists nobody yet starts alone, reports the lookup failing, keeps trying,
// and joins the members the name lists once it does; a name that
// resolves to an address works as a host of host:port.
func TestSRVPeersAreResolvedAgain(t *testing.T) {
	d := startDNS(t)
	a, b := pair(t)
	c := newCache(t, Config{NodeName: "c", BindAddr: "127.0.0.1:0", Timings: FastTimings(),
		Peers: []string{"srv:_bcache._udp.test."}, Resolver: d.resolver()})
	await.Until(t, 10*time.Second, func() bool {
		j := c.Status().Joining
		return len(j) == 1 && j[0].Cause == "lookup" && j[0].Addr == "srv:_bcache._udp.test."
	}, "c never reported the failed lookup: %+v", c.Status().Joining)
	if len(c.Members()) != 1 {
		t.Fatal("c met someone with no one listed")
	}
	d.set("_bcache._udp.test.", a, b)
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 3 && len(c.Status().Joining) == 0 },
		"c never joined the members the name lists: %d members, %+v", len(c.Members()), c.Status().Joining)

	_, port, _ := net.SplitHostPort(a.Addr())
	e := newCache(t, Config{NodeName: "e", BindAddr: "127.0.0.1:0", Timings: FastTimings(),
		Peers: []string{"m0.test:" + port}, Resolver: d.resolver()})
	await.Until(t, 10*time.Second, func() bool { return len(e.Members()) == 4 }, "a host name never resolved to its member")
}

// TestPeerSource: peers from the application's hook, asked again until
// it gives one that answers.
func TestPeerSource(t *testing.T) {
	a, _ := pair(t)
	var mu sync.Mutex
	var listed []string
	c := newCache(t, Config{NodeName: "c", BindAddr: "127.0.0.1:0", Timings: FastTimings(),
		PeerSource: func(context.Context) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			return listed, nil
		}})
	if len(c.Members()) != 1 {
		t.Fatal("c met someone with no peer listed")
	}
	mu.Lock()
	listed = []string{a.Addr()}
	mu.Unlock()
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 3 }, "c never joined the peer its source gave")
}

func TestPeersAreChecked(t *testing.T) {
	for _, p := range []string{"no-port", "srv:", "host:port"} {
		if _, err := New(Config{BindAddr: "127.0.0.1:0", Peers: []string{p}}); err == nil {
			t.Errorf("peer %q accepted", p)
		}
	}
}
