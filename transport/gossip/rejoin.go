package gossip

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/bcache-go/bcache/transport"
)

// rejoin tries, at once and then every RejoinInterval, to join the seed
// peers and every member seen before that is no longer alive. memberlist
// never re-contacts members it declared dead, so without this the two sides
// of a healed partition would stay apart, and a member that started while
// its peers were unreachable would stay alone.
func (r *Replicator) rejoin() {
	defer r.wg.Done()
	ticker := time.NewTicker(r.cfg.Timings.RejoinInterval)
	defer ticker.Stop()
	d := &dialer{trying: map[string]bool{}, max: maxDials, wg: &r.wg, attempt: func(target string) {
		if _, err := r.ml.Join([]string{target}); err != nil {
			r.counters.joinFailures.Add(1)
			r.joinFailed(target, err)
		} else {
			r.counters.joins.Add(1)
			r.joined(target)
		}
	}}
	var lostFrom, seedFrom int // where the next join of each list starts (see dialer.start)
	var lastSeeds time.Time
	var seedTried []string // the seeds tried in the last look at them

	// seedEvery intervals, saturating (a RejoinInterval "forever" wrapped
	// negative: found by review).
	base := time.Duration(math.MaxInt64)
	if r.cfg.Timings.RejoinInterval <= base/seedEvery {
		base = seedEvery * r.cfg.Timings.RejoinInterval
	}
	seedWait, met := base, r.met.Load()
	// A look at the seeds runs on its own goroutine, its result taken by
	// the round after it ends: a slow one (a PeerSource that takes its
	// whole time, names that do not resolve) held the rounds up for
	// seconds, the members lost retried that much less often (found by
	// review).
	looked := make(chan lookup, 1)
	looking := false
	var targets []string
	handle := func(l lookup) {
		looking = false
		seedTried = nil
		for p, err := range l.failed {
			r.counters.lookupFailures.Add(1)
			r.joinFailed(p, err)
			seedTried = append(seedTried, p)
		}
		r.refreshLocal()
		more, elsewhere := r.seedsToJoin(l.seeds, targets)
		if elsewhere || len(l.failed) == 0 { // a failed lookup settles nothing
			r.setOnlySelf(!elsewhere)
		}
		d.start(more, &seedFrom)
		seedTried = append(seedTried, more...)
	}
	for {
		// The members lost are tried first: a slow lookup of the seeds
		// does not hold them up.
		var wantSeeds bool
		targets, wantSeeds = r.rejoinTargets()
		d.start(targets, &lostFrom)
		tried := targets // every target, and every peer whose lookup failed
		// The seeds are looked at even by a member that has lost no one:
		// members that never met (a cluster booted while split, or seed
		// lists that differed at first) are nobody's lost members, and
		// would otherwise stay two clusters for good (found by review).
		// Every seedEvery rounds at first, then less and less often, up
		// to every maxRetryEvery, while those looks meet no one new: a
		// seed that is no member's address (a load balancer's, a NAT's)
		// is joined each time, a whole exchange of state for nothing.
		periodic := !wantSeeds && time.Since(lastSeeds) >= seedWait
		if periodic && !looking {
			now := r.met.Load()
			seedWait, met = nextSeedWait(seedWait, base, now != met), now
		}
		if (wantSeeds || periodic) && !looking {
			lastSeeds = time.Now()
			looking = true
			r.wg.Add(1) // Close waits for it: it ends at once, its contexts canceled
			go func() {
				defer r.wg.Done()
				looked <- r.lookupSeeds()
			}()
		}
		// Those waiting for their next try are kept too: the seeds of the
		// last look (forgotten between two looks, a dead seed's every
		// failure was its first, logged each time: found by review) and
		// the members lost.
		r.forgetJoinFailures(slices.Concat(tried, seedTried, r.lostAddrs()))
		for waiting := true; waiting; {
			select {
			case <-r.done:
				return
			case l := <-looked:
				if l.closed || r.closed.Load() || r.leaving.Load() { // a result that came with Close (leaving: closed comes after the notices): nothing to join
					return
				}
				handle(l)
			case <-ticker.C:
				waiting = false
			}
		}
	}
}

// dialer starts join attempts, each on its own goroutine (one that does
// not answer, its SYNs lost until the dial's timeout, holds up no other),
// at most max in flight, and none to a target with one in flight.
type dialer struct {
	mu      sync.Mutex
	trying  map[string]bool // targets with an attempt in flight
	max     int
	wg      *sync.WaitGroup
	attempt func(target string)
}

// start starts attempts to targets, from the one at *from (modulo their
// number) on, and leaves *from at the first it had no room for, where
// the next start of the list begins: started from the first each time, a
// list whose first max targets never answer (32 dead seeds sorted before
// the live one, each dial held until its timeout) kept the others from
// ever being tried (found by review).
func (d *dialer) start(targets []string, from *int) {
	n := len(targets)
	for i := range n {
		target := targets[(*from+i)%n]
		d.mu.Lock()
		busy, full := d.trying[target], len(d.trying) >= d.max
		if !busy && !full {
			d.trying[target] = true
		}
		d.mu.Unlock()
		if busy {
			continue
		}
		if full {
			*from = (*from + i) % n
			return
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.attempt(target)
			d.mu.Lock()
			delete(d.trying, target)
			d.mu.Unlock()
		}()
	}
}

// lookup is what a look at the seeds found (see seeds); closed says the
// Replicator was closed first.
type lookup struct {
	seeds  []string
	failed map[string]error
	closed bool
}

// lookupSeeds returns what seeds finds, or closed if the Replicator is
// closed first: Close neither waits for a lookup nor lets one go on (its
// contexts are canceled). A PeerSource that ignores its context is seeds'
// to deal with: seeds returns at Close without its answer, the source's
// call left to return in its own time.
func (r *Replicator) lookupSeeds() lookup {
	base, stop := context.WithCancel(context.Background()) // every context of the lookup: Close ends them
	defer stop()
	ctx, cancel := context.WithTimeout(base, resolveTimeout)
	defer cancel()
	ch := make(chan lookup, 1)
	go func() {
		seeds, failed := r.seeds(base, ctx)
		ch <- lookup{seeds: seeds, failed: failed}
	}()
	select {
	case l := <-ch:
		return l
	case <-r.done:
		return lookup{closed: true}
	}
}

// seedEvery is how many RejoinIntervals apart a member with all its
// members alive looks at its seeds again, for members it has never met;
// maxDials bounds the join attempts in flight (each holds a socket for up
// to TCPTimeout): the rest wait for a later round.
const (
	seedEvery = 10
	maxDials  = 32
)

// nextSeedWait returns how long after a look at the seeds, made by a
// member that had lost no one, the next comes: base again if it met a
// member it had not seen since the last, else twice as long as before, up
// to maxRetryEvery.
func nextSeedWait(wait, base time.Duration, met bool) time.Duration {
	if met {
		return base
	}
	return min(twice(wait), max(base, maxRetryEvery))
}

// seedsToJoin returns the seeds to join: those that are neither this
// member, nor among targets (joined already), nor a live member's address;
// and whether any seed is not this member.
func (r *Replicator) seedsToJoin(seeds, targets []string) (more []string, elsewhere bool) {
	live := r.liveAddrs()
	for _, a := range seeds {
		if r.isSelf(a) {
			continue
		}
		elsewhere = true
		if !slices.Contains(targets, a) && !live[zoneless(a)] {
			more = append(more, a)
		}
	}
	return more, elsewhere
}

// zoneless returns addr without the zone of an IPv6 address
// ("[fe80::1%eth0]:7946" is "[fe80::1]:7946"): memberlist writes a
// member's address without one, and a seed given with its zone (which a
// link-local address needs to be dialled) was never taken for the live
// member it is, and joined again at every look.
func zoneless(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Zone() != "" {
		return netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port()).String()
	}
	return addr
}

// liveAddrs returns the addresses of the live members, this one included:
// seeds there need no join.
func (r *Replicator) liveAddrs() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := make(map[string]bool, len(r.alive))
	for _, n := range r.alive {
		live[n.Address()] = true
	}
	return live
}

// knownMember is a member seen alive: its address, since when it has not
// been (zero while it is), and, once it has been lost for long, when it
// is tried next and how often it was.
type knownMember struct {
	addr  string
	lost  time.Time
	next  time.Time
	tries int
}

// Members lost for longer than the protocol's FailedTimeout are tried
// less and less often, from RejoinInterval doubling up to maxRetryEvery;
// at most maxLongLost are kept, those lost the longest dropped first.
const (
	maxRetryEvery = 5 * time.Minute
	maxLongLost   = 128
)

// rejoinTargets returns the addresses of members seen before and not alive
// now, and whether to join the seed peers too: when this member has no
// live peer or has lost some. A member lost for longer than the
// protocol's FailedTimeout (a partition that long, or a crash for good
// under a name drawn at random that no restart takes again) is tried
// with a backoff, up to every maxRetryEvery, and not dropped: forgotten,
// the two sides of a partition that healed after that long, each with
// members of its own, would never look for the other again (found by
// review). A member is forgotten when it leaves, or when a member of
// another name has its address (see memberChanged).
func (r *Replicator) rejoinTargets() ([]string, bool) {
	long := r.cfg.Protocol.FailedTimeout
	if long <= 0 {
		long = transport.DefaultFailedTimeout
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var lost []string
	var longLost []string // names
	for name, k := range r.known {
		if _, ok := r.alive[name]; ok || r.isSelfLocked(k.addr) {
			continue
		}
		if k.lost.IsZero() || now.Sub(k.lost) <= long {
			lost = append(lost, k.addr)
			continue
		}
		longLost = append(longLost, name)
		if now.Before(k.next) {
			continue
		}
		k.next = now.Add(retryEvery(r.cfg.Timings.RejoinInterval, k.tries))
		k.tries++
		r.known[name] = k
		lost = append(lost, k.addr)
	}
	if len(longLost) > maxLongLost {
		slices.SortFunc(longLost, func(a, b string) int { return r.known[a].lost.Compare(r.known[b].lost) })
		for _, name := range longLost[:len(longLost)-maxLongLost] {
			r.forgetKnown(name)
		}
	}
	slices.Sort(lost)
	return slices.Compact(lost), len(lost) > 0 || len(r.alive) <= 1
}

// lostAddrs returns the addresses of the members known and not alive.
func (r *Replicator) lostAddrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var addrs []string
	for name, k := range r.known {
		if _, ok := r.alive[name]; !ok {
			addrs = append(addrs, k.addr)
		}
	}
	return addrs
}

// retryEvery is the wait before the next try of a member lost for long,
// tried tries times since: every doubling from every, up to maxRetryEvery.
func retryEvery(every time.Duration, tries int) time.Duration {
	d := max(every, time.Millisecond)
	for range min(tries, 30) {
		if d *= 2; d >= maxRetryEvery {
			return maxRetryEvery
		}
	}
	return d
}

// errNoAnswer is the failure of a peer lookup that does not return.
var errNoAnswer = errors.New("peer source: no answer, long after its context ended")

// isSelf reports whether addr is this member: the address it advertises,
// or, on the default transport, the port it bound at the address it bound
// or, bound to every address, at one of this host's (its IPv6 address
// where it advertises its IPv4 one, the address a NAT hides behind the
// one advertised): a peer's name that resolves so is no peer.
func (r *Replicator) isSelf(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.isSelfLocked(addr)
}

func (r *Replicator) isSelfLocked(addr string) bool {
	if addr == r.self {
		return true
	}
	ap, err := netip.ParseAddrPort(addr)
	if !r.bound.IsValid() || err != nil || ap.Port() != r.bound.Port() {
		return false
	}
	ip, bound := ap.Addr().Unmap().WithZone(""), r.bound.Addr().Unmap() // interfaces' addresses come without a zone
	if ip.IsUnspecified() {
		// Dialed, 0.0.0.0 is 127.0.0.1 and :: is ::1: a DNS filter
		// answering a blocked name with 0.0.0.0 made a member bound to
		// 127.0.0.1 or every address count itself as a peer, never found
		// its cluster, and join itself at every round (found by review);
		// one bound elsewhere is not there (another member of the host
		// may be: found by review of the fix).
		ip = netip.IPv6Loopback()
		if ap.Addr().Unmap().Is4() {
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
	}
	switch {
	case !bound.IsUnspecified():
		return ip == bound
	case bound.Is4() && !ip.Is4(): // bound to 0.0.0.0 alone (Go reports a dual-stack bind as ::)
		return false
	}
	return ip.IsLoopback() || r.localIPs[ip]
}

// refreshLocal reads this host's addresses again (see isSelf).
func (r *Replicator) refreshLocal() {
	if !r.bound.IsValid() || !r.bound.Addr().IsUnspecified() {
		return
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return // those read before stand
	}
	local := map[netip.Addr]bool{}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			local[p.Addr().Unmap()] = true
		}
	}
	r.mu.Lock()
	r.localIPs = local
	r.mu.Unlock()
}

// setOnlySelf records what a lookup of the seeds settled: whether they
// name no member but this one.
func (r *Replicator) setOnlySelf(only bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if only && r.met.Load() == 0 && !r.cfg.Restored && !r.founder {
		r.founder = true
		if f := r.cfg.OnFounder; f != nil {
			go f()
		}
	}
	if only && r.met.Load() == 0 {
		// Alone, with no seed but itself: what it holds (restored, or
		// written since) is all its cluster has, and it serves it as
		// synced (WaitSynced): newcomers that join it must not take
		// each other, both empty, for the holders of its state (a
		// restored member, no founder, said it held nothing: found by
		// review).
		r.becomeHolder()
	}
	if r.onlySelf != only {
		r.onlySelf = only
		close(r.seedsChanged)
		r.seedsChanged = make(chan struct{})
	}
}

// SeedsElsewhere reports whether the seed peers (Config.Peers and what the
// PeerSource gives) may name a member other than this one: false once a
// lookup of them (every name resolved, the PeerSource answering) found
// none but this member, until one finds another; true before a lookup
// has settled it, and while every lookup fails before one has (a failed
// lookup settles nothing: after one that found this member alone, it
// stays false). The channel is closed
// when the answer changes. A member whose seeds are only itself (the
// first of a StatefulSet, whose name resolves to itself alone) is the
// cluster's founder as much as one given no peers at all.
func (r *Replicator) SeedsElsewhere() (bool, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.onlySelf, r.seedsChanged
}

// Founder reports whether this member founded its cluster and has not
// seen another member alive since: a lookup of its seeds found no member
// but itself before it had met any, and it restored no state (see
// Config.Restored); or Config.Founder said so of the state it restored. It holds everything the cluster has, as far as
// anything can tell, until it meets another member: its seeds may name
// others from then on (the next pod of a StatefulSet, published before
// it runs) without making it a member that must sync before it serves.
// Once it has met one, it is not a founder again in this process.
func (r *Replicator) Founder() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.founder
}

// Founded reports whether this member is, or was in this process, its
// cluster's founder (see Founder), and held all its cluster had when it
// met the others: not if it met a member that, first seen, said it held
// its cluster's state (synced, or a founder), or that it restored state
// built with others (see metaRestored): a member of this one's cluster
// joins it saying it holds nothing, so this one founded wrongly
// (restarted empty behind a stale lookup or a partition, it met the
// cluster it took itself for), or met another cluster. Such a member
// answered a newcomer's ask for its watermarks, none of the cluster's,
// as complete, and the newcomer asked no other (found by review:
// TestANewcomerAsksAgainAMemberThatFoundedWrongly,
// TestANewcomerAsksAgainAFounderThatMetARestoredMember).
func (r *Replicator) Founded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.founder || !r.metAt.IsZero() && !r.metHolder
}

// FoundedUnsynced reports whether this member was a founder in this
// process (see Founder), met another member less than foundingFor ago,
// and has not completed an exchange since: it still holds everything it
// held, all the cluster had, until its first exchange brings it what the
// others wrote. Bounded in time: a member whose exchanges never complete
// (reached by gossip alone), or that took itself for a founder wrongly
// and met the cluster, is ready as any member past it (found by review).
// Not once it has met a member that said it held its cluster's state, or
// restored state built with others (Founded is false): it knows then that
// it did not hold all its cluster had (a founder whose PeerSource
// answered nothing, then named the cluster, was ready holding none of
// the data of the member it met until their first exchange completed,
// and WaitSynced returned: found by review,
// TestAFounderThatMeetsAHolderIsNotFounding). On a stopped member it is
// as of when it stopped.
func (r *Replicator) FoundedUnsynced() bool {
	r.mu.Lock()
	met := r.metAt // set when a founder met a member: zero for any other
	holder := r.metHolder
	now := r.stoppedAt
	r.mu.Unlock()
	if now.IsZero() {
		now = time.Now()
	}
	// A meeting after the stop (a member met while leaving) came after
	// what a stopped member's founding is read as of: it had met none.
	if met.IsZero() || holder || met.After(now) || now.Sub(met) >= foundingFor {
		return false
	}
	select {
	case <-r.synced:
		return false
	default:
		return true
	}
}

// foundingFor bounds FoundedUnsynced: how long after meeting a member a
// founder stays ready without a completed exchange (a first exchange of a
// million keys takes 2-4 s on a 2-core machine).
const foundingFor = 30 * time.Second

// MetAny reports whether this member has seen another member alive since
// Start.
func (r *Replicator) MetAny() bool { return r.met.Load() > 0 }
