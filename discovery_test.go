package bcache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
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

// TestHungPeerSourceHidesNoPeer: a PeerSource that never answers, or one
// that takes its whole lookup time, does not keep a member from the peers
// Config.Peers names: a live address, or a name that resolves. The source
// was asked first: hung, no lookup ever completed again; slow, the names
// had no time left to resolve, and the error blamed DNS (found by
// review).
func TestHungPeerSourceHidesNoPeer(t *testing.T) {
	d := startDNS(t)
	a, _ := pair(t)
	d.set("_bcache._udp.test.", a) // m0.test. resolves
	_, port, _ := net.SplitHostPort(a.Addr())
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	sources := map[string]func(context.Context) ([]string, error){
		"hung": func(context.Context) ([]string, error) { <-hang; return nil, nil },
		"slow": func(ctx context.Context) ([]string, error) { <-ctx.Done(); return nil, ctx.Err() },
	}
	peers := map[string]string{"hung": a.Addr(), "slow": "m0.test:" + port}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			c := newCache(t, Config{NodeName: name, BindAddr: "127.0.0.1:0", Timings: FastTimings(),
				Peers: []string{peers[name]}, Resolver: d.resolver(), PeerSource: src})
			await.Until(t, 15*time.Second, func() bool { return len(c.Members()) == 3 },
				"%s source: never joined %s: %+v", name, peers[name], c.Status().Joining)
		})
	}
}

// TestSRVTargetThatDoesNotResolve: an SRV name whose first target does
// not resolve (a stale record) still gives the targets after it. The
// first failure ended the lookup (found by review).
func TestSRVTargetThatDoesNotResolve(t *testing.T) {
	d := startDNS(t)
	a, _ := pair(t)
	d.set("_bcache._udp.test.", a)
	d.mu.Lock()
	d.srv["_bcache._udp.test."] = append([]*net.SRV{{Target: "gone.test.", Port: 7946}}, d.srv["_bcache._udp.test."]...)
	d.mu.Unlock()
	c := newCache(t, Config{NodeName: "c", BindAddr: "127.0.0.1:0", Timings: FastTimings(),
		Peers: []string{"srv:_bcache._udp.test."}, Resolver: d.resolver()})
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 3 },
		"never joined the target after a stale one: %+v", c.Status().Joining)
}

// TestPeerSourceOfManyPeers: a PeerSource's answer of thousands of
// malformed or dead peers costs one line of Status for the malformed and
// at most maxSourcePeers attempts, and the member still meets the live
// one it lists first. Each was a join failure of its own, and forgetting
// them scanned the list once a failure, under the member's lock: an
// answer of 20,000 held it for seconds each round (found by review).
func TestPeerSourceOfManyPeers(t *testing.T) {
	a, _ := pair(t)
	peers := []string{a.Addr()}
	for i := range 20_000 {
		peers = append(peers, fmt.Sprintf("registry-entry-%d", i))
	}
	c := newCache(t, Config{NodeName: "c", BindAddr: "127.0.0.1:0", Timings: FastTimings(),
		PeerSource: func(context.Context) ([]string, error) { return peers, nil }})
	await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 3 }, "never met the live peer listed")
	var fromSource []JoinFailure
	await.Until(t, 10*time.Second, func() bool {
		fromSource = nil
		for _, f := range c.Status().Joining {
			if f.Addr == "PeerSource" {
				fromSource = append(fromSource, f)
			}
		}
		return len(fromSource) == 1
	}, "the malformed peers were not reported as one failure: %d", len(c.Status().Joining))
	if n := len(c.Status().Joining); n > 1 {
		t.Fatalf("%d lines of Status for one source's malformed answer", n)
	}
	if !strings.Contains(fromSource[0].Err, "20000 peers") {
		t.Fatalf("the failure does not count them: %s", fromSource[0].Err)
	}
}

// TestPeersWithSpacesOrAPortedSRVNameAreRefused: a peer with a space
// (" 10.0.0.1:7946", a list split at ", ") or an SRV name given a port
// ("srv:NAME:7946") can never resolve: New took them, and the member
// failed its lookup at every look, for good, the first as "lookup
// 127.0.0.1: no such host", naming a peer that is fine.
func TestPeersWithSpacesOrAPortedSRVNameAreRefused(t *testing.T) {
	for _, p := range []string{" 127.0.0.1:7946", "\t127.0.0.1:7946", "exa mple.test:7946", "srv: _x._tcp.test.", "srv:_x._tcp.test.:7946"} {
		c, err := New(Config{BindAddr: "127.0.0.1:0", Peers: []string{p}, Timings: FastTimings()})
		if err == nil {
			c.Close()
			t.Errorf("peer %q accepted", p)
		} else if !errors.Is(err, ErrConfig) {
			t.Errorf("peer %q: %v, want ErrConfig", p, err)
		}
	}
}
