package gossip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
	"github.com/hashicorp/memberlist"
	"github.com/miekg/dns"
	"github.com/rs/zerolog"
)

// Four members, each with all four as Peers, boot while the network is
// split {m0,m1} | {m2,m3}: each side forms a cluster of two. No member of
// one side ever saw one of the other, so none is anyone's lost member;
// the seeds, looked at again every seedEvery rounds, are what makes the
// two clusters one once the network heals (found by review: they stayed
// two for good, each taking writes the other never saw).
func TestMembersBootedApartMergeAfterHeal(t *testing.T) {
	net := memnet.NewNetwork(1)
	var trs []*memnet.Transport
	var addrs, names []string
	for i := range 4 {
		name := fmt.Sprintf("m%d", i)
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		trs, addrs, names = append(trs, tr), append(addrs, tr.Addr()), append(names, name)
	}
	net.Partition(names[:2], names[2:])
	var nodes []*node
	for i, tr := range trs {
		nodes = append(nodes, startNode(t, names[i], addrs, func(c *Config) { c.Transport = tr }))
	}
	waitMembers(t, 2, nodes...)
	net.Heal()
	waitMembers(t, 4, nodes...)
}

// The same on sockets, the seeds coming from a PeerSource whose answer
// listed each pair alone at first (a registry or a DNS name not complete
// yet) and all four later.
func TestPairsFoundApartMergeOnceListed(t *testing.T) {
	var all atomic.Bool
	var ab, cd, every atomic.Pointer[[]string]
	source := func(group *atomic.Pointer[[]string]) func(context.Context) ([]string, error) {
		return func(context.Context) ([]string, error) {
			if all.Load() {
				return *every.Load(), nil
			}
			if p := group.Load(); p != nil {
				return *p, nil
			}
			return nil, errors.New("not listed yet")
		}
	}
	a := startNode(t, "a", nil, func(c *Config) { c.PeerSource = source(&ab) })
	b := startNode(t, "b", nil, func(c *Config) { c.PeerSource = source(&ab) })
	c := startNode(t, "c", nil, func(c *Config) { c.PeerSource = source(&cd) })
	d := startNode(t, "d", nil, func(c *Config) { c.PeerSource = source(&cd) })
	ab.Store(&[]string{a.r.Addr(), b.r.Addr()})
	cd.Store(&[]string{c.r.Addr(), d.r.Addr()})
	every.Store(&[]string{a.r.Addr(), b.r.Addr(), c.r.Addr(), d.r.Addr()})
	waitMembers(t, 2, a, b, c, d)
	all.Store(true)
	waitMembers(t, 4, a, b, c, d)
}

// A PeerSource listing 300 addresses that take the connection and never
// answer (a registry's stale entries): the member dials at most maxDials
// of them at a time, each held for TCPTimeout, and leaves the rest for
// later rounds (found by review: it held a socket and a goroutine for
// every address at once).
func TestSeedDialsAreBounded(t *testing.T) {
	const seeds = 300
	var mu sync.Mutex
	var conns []net.Conn
	var addrs []string
	for range seeds {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		addrs = append(addrs, l.Addr().String())
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c) // held open, never answered
				mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	accepted := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
	var lookups atomic.Int32
	startNode(t, "a", nil, func(c *Config) {
		c.Timings.TCPTimeout = time.Minute // no dial ends during the test
		c.PeerSource = func(context.Context) ([]string, error) { lookups.Add(1); return addrs, nil }
	})
	await.Until(t, 10*time.Second, func() bool { return accepted() >= maxDials }, "%d dials accepted, want %d", accepted(), maxDials)
	after := lookups.Load()
	await.Until(t, 10*time.Second, func() bool { return lookups.Load() >= after+3 }, "no three more rounds")
	if n := accepted(); n != maxDials {
		t.Fatalf("%d dials in flight at once, want at most %d", n, maxDials)
	}
}

// TestDialsReachTargetsPastHungOnes: when every place is taken by dials
// that hang (until their timeout), the next start of the same list begins
// where the last ran out of room, not at its head: 32 dead seeds sorted
// before the live one kept it from ever being tried (found by review).
func TestDialsReachTargetsPastHungOnes(t *testing.T) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	var mu sync.Mutex
	var tried []string
	d := &dialer{trying: map[string]bool{}, max: 3, wg: &wg, attempt: func(target string) {
		mu.Lock()
		tried = append(tried, target)
		mu.Unlock()
		<-release // hangs until the test lets it go, as a dial to a black hole until its timeout
	}}
	inFlight := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.trying)
	}
	targets := []string{"dead0", "dead1", "dead2", "dead3", "dead4", "live"}
	from := 0
	for round := range 3 {
		d.start(targets, &from)
		await.Until(t, 10*time.Second, func() bool { return inFlight() == 0 || inFlight() == d.max }, "round %d: dials never started", round)
		d.start(targets, &from) // while every place is taken: starts nothing, moves nothing
		close(release)
		wg.Wait()
		release = make(chan struct{})
	}
	if !slices.Contains(tried, "live") {
		t.Fatalf("tried %q in three rounds of %d places: never the live target", tried, d.max)
	}
	if len(tried) != 3*d.max {
		t.Fatalf("tried %q, want %d dials", tried, 3*d.max)
	}
}

// TestLookupFailuresAreNotJoinFailures: a peer that cannot be looked up
// (here, a PeerSource that fails) is counted in LookupFailures; no join
// was attempted, and JoinFailures, re-join attempts that reached no one,
// counted it (found by review).
func TestLookupFailuresAreNotJoinFailures(t *testing.T) {
	a := startNode(t, "a", nil, func(c *Config) {
		c.PeerSource = func(context.Context) ([]string, error) { return nil, errors.New("no answer here") }
	})
	await.Until(t, 10*time.Second, func() bool { return a.r.Stats().LookupFailures >= 2 }, "the failed lookups were not counted")
	if st := a.r.Stats(); st.JoinFailures != 0 || st.Joins != 0 {
		t.Fatalf("a member with no peer to join: %d joins, %d join failures; want none", st.Joins, st.JoinFailures)
	}
}

// TestNameConflictsAreForgotten: the log times of the addresses name
// conflicts came from go with the conflicts; every one was kept for good
// (found by review), and a member whose name was taken from ever new
// addresses (a pod restarted at a new IP before its old self was declared
// dead) grew the map without bound.
func TestNameConflictsAreForgotten(t *testing.T) {
	a := startNode(t, "a", nil)
	self := &memberlist.Node{Name: "a", Addr: net.IPv4(127, 0, 0, 1), Port: 1}
	for i := range 1000 {
		a.r.nameConflict(self, &memberlist.Node{Name: "a", Addr: net.IPv4(10, 0, byte(i>>8), byte(i)), Port: 7946})
	}
	a.r.mu.Lock()
	for _, f := range a.r.conflicts {
		f.At = time.Now().Add(-2 * conflictMemory) // last seen long ago
	}
	a.r.mu.Unlock()
	a.r.forgetJoinFailures(nil) // as every rejoin round does
	a.r.mu.Lock()
	logged, conflicts := len(a.r.joinLogged), len(a.r.conflicts)
	a.r.mu.Unlock()
	if logged != 0 || conflicts != 0 {
		t.Fatalf("conflicts gone by, yet %d log times and %d conflicts kept", logged, conflicts)
	}
}

// TestRestartedMemberIsNotItsOwnPeer: a member restarted at its old
// address under a new name, before the others declared the old name
// dead, hears from them that the old name is alive at its own address;
// it listed that name as a live peer (not alone, sending to itself), and
// chased its own address as a lost member's (found by review).
func TestRestartedMemberIsNotItsOwnPeer(t *testing.T) {
	slow := func(c *Config) { // the old name is not declared dead for seconds
		c.Timings.ProbeInterval, c.Timings.ProbeTimeout, c.Timings.SuspicionMult = time.Second, 500*time.Millisecond, 6
	}
	a := startNode(t, "a", nil, slow)
	old := startNode(t, "b-old", []string{a.r.Addr()})
	waitMembers(t, 2, a, old)
	addr := old.r.Addr()
	old.r.stop(false) // a crash
	b := startNode(t, "b-new", []string{a.r.Addr()}, slow, func(c *Config) { c.BindAddr = addr })
	lists := func(n *node, name string) bool {
		return slices.ContainsFunc(n.r.Members(), func(m Member) bool { return m.Name == name })
	}
	await.Until(t, 10*time.Second, func() bool { return lists(b, "a") }, "b-new never joined a")
	if !lists(a, "b-old") {
		t.Skip("a declared b-old dead before b-new joined: nothing to test")
	}
	if lists(b, "b-old") {
		t.Fatalf("b-new lists the old name at its own address as a live member: %v", b.r.Members())
	}
	b.r.mu.Lock()
	_, known := b.r.known["b-old"]
	b.r.mu.Unlock()
	if known {
		t.Fatal("b-new keeps the old name at its own address as a member to rejoin")
	}
}

// TestSeedLooksSlowDownWhileTheyMeetNoOne: a member with every member
// alive looks at its seeds ten rounds apart, then twice as long each time
// up to maxRetryEvery, and ten rounds apart again once it meets a member
// it had not seen. A seed that is no member's address (a load balancer's)
// was joined every ten rounds for ever, each a whole exchange of state
// (found by review).
func TestSeedLooksSlowDownWhileTheyMeetNoOne(t *testing.T) {
	base := 10 * time.Second
	wait := base
	var waits []time.Duration
	for range 7 {
		wait = nextSeedWait(wait, base, false)
		waits = append(waits, wait)
	}
	want := []time.Duration{20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	if got := nextSeedWait(wait, base, true); got != base {
		t.Fatalf("after meeting a new member: %v, want %v", got, base)
	}
}

// TestDeadSeedIsWarnedOfOnceAMinute: a seed that refuses (a host taken
// away and left in the list) is warned of at its first failure and then
// once a minute, however often the seeds are looked at. Its failure was
// forgotten in the rounds between two looks, so that each was its first,
// and warned of (found by review).
func TestDeadSeedIsWarnedOfOnceAMinute(t *testing.T) {
	dead := freeAddr(t) // nobody listens there: refused at once
	var logs syncBuffer
	// The looks b makes once it has a peer (periodic ones, rounds apart),
	// counted by b itself: a count the test took after waitMembers,
	// late on a loaded machine, waited for looks 1.6, 3.2, 6.4 and
	// 12.8 s on (they come twice as far apart each time), past the
	// await's 10 s.
	var lookups atomic.Int32
	var self atomic.Pointer[Replicator]
	a := startNode(t, "a", nil)
	b := startNode(t, "b", nil, func(c *Config) {
		c.Timings.RejoinInterval = 10 * time.Millisecond // looks at 100, 200, 400 ms...
		c.Logger = zerolog.New(&logs).Level(zerolog.WarnLevel)
		c.PeerSource = func(context.Context) ([]string, error) {
			if r := self.Load(); r != nil && r.peered.Load() {
				lookups.Add(1)
			}
			return []string{a.r.Addr(), dead}, nil
		}
	})
	self.Store(b.r)
	waitMembers(t, 2, a, b)
	await.Until(t, 10*time.Second, func() bool { return lookups.Load() >= 4 }, "no four looks at the seeds once b had a peer")
	if n := strings.Count(string(logs.Bytes()), "cannot join peer"); n != 1 {
		t.Fatalf("the dead seed was warned of %d times, want once", n)
	}
}

// TestPeerAddressesAreCanonical: a peer's IP address is written as
// memberlist writes a member's, so that a live member listed in another
// spelling is taken for the one it is. Kept as written, it was joined
// again at every look at the seeds (found by review).
func TestPeerAddressesAreCanonical(t *testing.T) {
	r := &Replicator{}
	for in, want := range map[string]string{
		"127.0.0.1:07946":        "127.0.0.1:7946",
		"[::ffff:10.0.0.1]:7946": "10.0.0.1:7946",
		"[0:0::1]:7946":          "[::1]:7946",
		"[2001:db8:0::1]:7946":   "[2001:db8::1]:7946",
		"10.0.0.1:7946":          "10.0.0.1:7946",
	} {
		got, err := r.resolvePeer(context.Background(), in)
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("%s: %v, %v; want %s", in, got, err, want)
		}
	}
}

// TestZonedSeedIsTheLiveMember: a seed given as a link-local IPv6
// address with its zone is the live member memberlist lists without one:
// not joined again at every look (it was, found by review); a seed that
// is no live member is joined, zone and all.
func TestZonedSeedIsTheLiveMember(t *testing.T) {
	r := &Replicator{alive: map[string]*memberlist.Node{
		"b": {Name: "b", Addr: net.ParseIP("fe80::1"), Port: 7946},
	}}
	more, elsewhere := r.seedsToJoin([]string{"[fe80::1%eth0]:7946", "[fe80::2%eth0]:7946"}, nil)
	if !elsewhere || !slices.Equal(more, []string{"[fe80::2%eth0]:7946"}) {
		t.Fatalf("seeds to join: %v (elsewhere %v), want only the one that is no member, with its zone", more, elsewhere)
	}
	r.bound = netip.MustParseAddrPort("[fe80::9]:7946")
	if !r.isSelf("[fe80::9%eth0]:7946") {
		t.Fatal("this member's own address, with a zone, is not taken for itself")
	}
}

// TestUnspecifiedSeedAtThisPortIsThisMember: a seed of 0.0.0.0 or [::]
// at the port this member bound (a DNS filter's answer for a blocked
// name) is, dialed, the loopback address of its family: this member if it
// is bound there (or to every address of the family), another member of
// the host if it is bound elsewhere. Taken for a peer elsewhere, the
// member bound to 127.0.0.1 never founded its cluster, and joined itself
// at every round (found by review); taken for itself always, a member
// bound elsewhere missed a member of its host (found by review of the
// fix).
func TestUnspecifiedSeedAtThisPortIsThisMember(t *testing.T) {
	for bound, self := range map[string][2]bool{ // seeds 0.0.0.0, [::]
		"127.0.0.1:7946": {true, false},
		"0.0.0.0:7946":   {true, false},
		"[::]:7946":      {true, true},
		"[::1]:7946":     {false, true},
		"10.0.0.5:7946":  {false, false},
		"127.0.0.2:7946": {false, false},
	} {
		r := &Replicator{bound: netip.MustParseAddrPort(bound)}
		for i, seed := range []string{"0.0.0.0:7946", "[::]:7946"} {
			if r.isSelf(seed) != self[i] {
				t.Errorf("bound to %s: seed %s taken for this member: %v, want %v", bound, seed, !self[i], self[i])
			}
			if _, elsewhere := r.seedsToJoin([]string{seed}, nil); elsewhere == self[i] {
				t.Errorf("bound to %s: seed %s counted as a peer elsewhere: %v, want %v", bound, seed, elsewhere, !self[i])
			}
		}
		if r.isSelf("0.0.0.0:7947") {
			t.Errorf("bound to %s: 0.0.0.0 at another port taken for this member", bound)
		}
	}
}

// TestSlowLookupHoldsUpNoRound: while a look at the seeds is slow (a
// PeerSource that takes its whole time), the lost members are still
// tried every round. The look ran in the round, which waited for it, the
// members lost tried that much less often (found by review).
func TestSlowLookupHoldsUpNoRound(t *testing.T) {
	var inSource atomic.Int32
	calls := make(chan struct{}, 1)
	src := func(ctx context.Context) ([]string, error) {
		inSource.Add(1)
		defer inSource.Add(-1)
		select {
		case calls <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	a := startNode(t, "a", nil, func(c *Config) { c.PeerSource = src })
	b := startNode(t, "b", []string{a.r.Addr()})
	waitMembers(t, 2, a, b)
	addr := b.r.Addr()
	b.r.stop(false) // a crash: a tries it every round
	await.Until(t, 10*time.Second, func() bool {
		targets, _ := a.r.rejoinTargets()
		return slices.Contains(targets, addr)
	}, "a does not try to re-join b")
	<-calls // a look starts now (or has): its source takes 2 s
	for len(calls) > 0 {
		<-calls
	}
	before := a.r.counters.joinFailures.Load()
	await.Until(t, 10*time.Second, func() bool {
		if a.r.counters.joinFailures.Load() >= before+3 {
			if inSource.Load() == 0 {
				t.Fatal("b was tried again only once the look had ended")
			}
			return true
		}
		return false
	}, "b was not tried again")
}

// TestSRVAnswersAreBounded: the addresses an SRV name stands for are
// bounded as a PeerSource's answer is (maxPeerAddrs), and so are the
// errors of its targets that a failure reports: a hostile or broken
// resolver's answer of thousands of targets was taken whole, and their
// errors made one line of Status and of the log (found by review).
func TestSRVAnswersAreBounded(t *testing.T) {
	defer func(n int) { maxPeerAddrs = n }(maxPeerAddrs)
	maxPeerAddrs = 4
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		switch {
		case q.Qtype == dns.TypeSRV && q.Name == "_many._udp.test.": // three targets of three addresses each
			for i := range 3 {
				m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET},
					Port: 7946, Target: fmt.Sprintf("h%d.test.", i)})
			}
		case q.Qtype == dns.TypeSRV && q.Name == "_stale._udp.test.": // ten targets that do not resolve
			for i := range 10 {
				m.Answer = append(m.Answer, &dns.SRV{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET},
					Port: 7946, Target: fmt.Sprintf("gone%d.test.", i)})
			}
		case q.Qtype == dns.TypeA && strings.HasPrefix(q.Name, "h"):
			for i := range 3 {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A: net.IPv4(127, 0, q.Name[1], byte(i+1))})
			}
		case q.Qtype == dns.TypeA || q.Qtype == dns.TypeSRV:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go server.ActivateAndServe()
	t.Cleanup(func() { server.Shutdown() })
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	var logged bytes.Buffer
	r := &Replicator{cfg: Config{Resolver: res}, log: zerolog.New(&logged)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A cap is logged, not a failure: reported as one, a healthy name
	// that large counted a lookup failure at every look (found by review).
	addrs, err := r.resolvePeer(ctx, "srv:_many._udp.test.")
	if len(addrs) != maxPeerAddrs || err != nil || !strings.Contains(logged.String(), "took the addresses of the first ones") {
		t.Fatalf("an SRV name of 9 addresses: %q, %v, log %q; want the first %d, no error, and a log line saying so", addrs, err, logged.String(), maxPeerAddrs)
	}
	r.capLogged.Store(0)
	for _, host := range []string{"h0.test:7946"} {
		if got, _ := r.resolvePeer(ctx, host); len(got) != 3 {
			t.Fatalf("%s: %q, want its 3 addresses", host, got)
		}
	}
	maxPeerAddrs = 2
	if got, err := r.resolvePeer(ctx, "h0.test:7946"); len(got) != 2 || err != nil || !strings.Contains(logged.String(), "h0.test: 3 addresses: took the first 2") {
		t.Fatalf("a host name of 3 addresses: %q, %v, log %q; want the first 2, no error, and a log line saying so", got, err, logged.String())
	}
	_, err = r.resolvePeer(ctx, "srv:_stale._udp.test.")
	if err == nil || strings.Count(err.Error(), "gone") != maxPeerErrors || !strings.Contains(err.Error(), "and 7 more targets that failed") {
		t.Fatalf("ten targets that do not resolve: %v; want %d of their errors and the count of the rest", err, maxPeerErrors)
	}
}

// TestCloseEndsTheSourcePeersLookup: the lookup of the names a PeerSource
// gave, given a time of its own once the source has used up the look's,
// ends at Close. Its context was cut from Close's once the look's had
// timed out: it went on, its resolver's queries with it, for seconds
// after Close returned (found by review).
func TestCloseEndsTheSourcePeersLookup(t *testing.T) {
	dials := make(chan context.Context, 16)
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		dials <- ctx
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	src := func(ctx context.Context) ([]string, error) {
		<-ctx.Done() // answers as its time ends: within the second the look waits
		return []string{"slow-peer.invalid:7946"}, nil
	}
	a := startNode(t, "a", nil, func(c *Config) { c.PeerSource, c.Resolver = src, res })
	var lookup context.Context
	select {
	case lookup = <-dials:
	case <-time.After(10 * time.Second): // a guard
		t.Fatal("the source's peer was never looked up")
	}
	if err := a.r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lookup.Done():
	case <-time.After(time.Second): // a guard: its own time is 2 s
		t.Fatal("the lookup of the source's peer went on after Close returned")
	}
}

// TestKeyIDsOfManyKeys: a member's key ids name each key it reads once,
// and none at all past what metadata holds: cut short, they left out a
// key the member reads, and a member using it was refused though each
// read the other (found by review).
func TestKeyIDsOfManyKeys(t *testing.T) {
	key := func(b byte) []byte { k := make([]byte, 16); k[0] = b; return k }
	var accept [][]byte
	for i := range maxKeyIDs - 1 {
		accept = append(accept, key(byte(i+10)), key(byte(i+10))) // each twice
	}
	a := Config{SecretKey: key(1), AcceptKeys: append(accept, key(1))}
	if n := len(keyIDs(&a)) / keyIDLen; n != maxKeyIDs {
		t.Fatalf("%d ids for %d distinct keys", n, maxKeyIDs)
	}
	b := Config{SecretKey: accept[len(accept)-1], AcceptKeys: [][]byte{key(1)}}
	ida, idb := keyIDs(&a), keyIDs(&b)
	if !readsID(ida, idb[:keyIDLen]) || !readsID(idb, ida[:keyIDLen]) {
		t.Fatal("two members that read each other's keys are refused")
	}
	a.AcceptKeys = append(a.AcceptKeys, key(250))
	if ids := keyIDs(&a); ids != nil {
		t.Fatalf("%d ids for more keys than metadata holds, want none", len(ids)/keyIDLen)
	}
}

// TestLongNamesFromAPeerSourceAreRefused: a PeerSource's names longer
// than a DNS name can be are refused as not host:port, not looked up and
// kept as failed joins: 1,024 names of 64 KiB made a status of 134 MB,
// logged again every minute (found by review).
func TestLongNamesFromAPeerSourceAreRefused(t *testing.T) {
	long := make([]string, 1024)
	for i := range long {
		long[i] = fmt.Sprintf("%s%d:7946", strings.Repeat("x", 64<<10), i)
	}
	a := startNode(t, "a", nil, func(c *Config) {
		c.PeerSource = func(context.Context) ([]string, error) { return long, nil }
	})
	await.Until(t, 10*time.Second, func() bool {
		for _, j := range a.r.Status().Joining {
			if j.Addr == "PeerSource" && strings.Contains(j.Err, "1024 peers that are not host:port") {
				return true
			}
		}
		return false
	}, "the source's names are not refused: %d failures", len(a.r.Status().Joining))
	if b, err := json.Marshal(a.r.Status()); err != nil || len(b) > 16<<10 {
		t.Fatalf("status of %d bytes, %v", len(b), err)
	}
}

// TestRefusalsAreBounded: members refused from ever new addresses (a
// member holding the key can announce any) are kept for Status up to
// maxConflicts addresses, and logged at most maxRefusalLogs lines a
// minute, the next line saying how many went unlogged: each address had
// an entry and a log line a minute of its own (found by review).
func TestRefusalsAreBounded(t *testing.T) {
	var logged bytes.Buffer
	a := startNode(t, "a", nil, func(c *Config) { c.Logger = zerolog.New(&logged) })
	self := &memberlist.Node{Name: "a", Addr: net.IPv4(127, 0, 0, 1), Port: 1}
	const forged = 1000
	for i := range forged {
		a.r.nameConflict(self, &memberlist.Node{Name: "a", Addr: net.IPv4(10, 0, byte(i>>8), byte(i)), Port: 7946})
	}
	a.r.mu.Lock()
	kept := len(a.r.conflicts)
	a.r.mu.Unlock()
	if kept != maxConflicts {
		t.Errorf("%d forged addresses kept %d entries, want %d", forged, kept, maxConflicts)
	}
	if joining := len(a.r.Status().Joining); joining != maxConflicts {
		t.Errorf("Status lists %d refused addresses, want %d", joining, maxConflicts)
	}
	lines := strings.Count(logged.String(), "two members have one name")
	if lines != maxRefusalLogs {
		t.Fatalf("%d forged addresses made %d log lines, want %d", forged, lines, maxRefusalLogs)
	}
	// A minute later, the next line counts the refusals left unlogged.
	a.r.mu.Lock()
	a.r.refusalLogs.start = a.r.refusalLogs.start.Add(-time.Minute)
	a.r.mu.Unlock()
	logged.Reset()
	a.r.nameConflict(self, &memberlist.Node{Name: "a", Addr: net.IPv4(10, 0, 0, 0), Port: 7946})   // logged a moment ago: not again
	a.r.nameConflict(self, &memberlist.Node{Name: "a", Addr: net.IPv4(10, 0, 0, 200), Port: 7946}) // kept, never logged: now
	want := fmt.Sprintf(`"refusals_unlogged":%d`, forged-maxRefusalLogs)
	if lines := strings.Count(logged.String(), "two members have one name"); lines != 1 || !strings.Contains(logged.String(), want) {
		t.Fatalf("a minute later: %q; want one line with %s", logged.String(), want)
	}
}

// TestFoundingEndsWithinItsBound: a founder that met a member reads as
// founding (ready while its first exchange runs) until that exchange
// completes, and for foundingFor at most: unbounded, a founder whose
// exchanges never completed (reached by gossip alone), or a member that
// took itself for a founder wrongly and then met the cluster, stayed
// ready for good (found by review).
func TestFoundingEndsWithinItsBound(t *testing.T) {
	r := &Replicator{synced: make(chan struct{})}
	if r.FoundedUnsynced() {
		t.Fatal("founding, never a founder")
	}
	r.metAt = time.Now()
	if !r.FoundedUnsynced() {
		t.Fatal("not founding just after it met a member, with no exchange completed")
	}
	r.metAt = time.Now().Add(-foundingFor)
	if r.FoundedUnsynced() {
		t.Fatalf("still founding %v after it met a member", foundingFor)
	}
	r.metAt = time.Now()
	close(r.synced)
	if r.FoundedUnsynced() {
		t.Fatal("founding after its first exchange completed")
	}
}

// TestFoundingOfAStoppedMemberKeepsWhatItWas: a member stopped while
// founding reads as founding after foundingFor has passed since it met
// a member, as Status's doc says of a closed Cache (it turned false 30 s
// after the meeting: found by review).
func TestFoundingOfAStoppedMemberKeepsWhatItWas(t *testing.T) {
	r := &Replicator{synced: make(chan struct{})}
	r.metAt = time.Now().Add(-foundingFor - time.Minute)
	r.stoppedAt = r.metAt.Add(time.Second) // stopped a second after the meeting
	if !r.FoundedUnsynced() {
		t.Fatal("not founding, stopped a second after it met a member, read later than foundingFor after")
	}
	r.stoppedAt = r.metAt.Add(foundingFor)
	if r.FoundedUnsynced() {
		t.Fatal("founding, stopped foundingFor after it met a member")
	}
	r.metAt = r.stoppedAt.Add(time.Second) // met while leaving, after the stop
	if r.FoundedUnsynced() {
		t.Fatal("founding, stopped before it met a member")
	}
}
