package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// srvPrefix marks a peer given as a DNS SRV name: every target it lists,
// at the port it gives, is a peer.
const srvPrefix = "srv:"

// resolveTimeout bounds the name lookups of one rejoin round, and the
// PeerSource's answer (its peers' names then have as long again). A
// variable: a test of a look of a thousand names raises it.
var resolveTimeout = 2 * time.Second

// maxSourcePeers is how many peers of a PeerSource's answer a member
// takes: each becomes a join attempt and, failing, a line of Status (an
// answer of 20,000 stale addresses held the member's lock for seconds
// each round: found by review).
const maxSourcePeers = 1024

// maxPeerAddrs bounds the addresses one peer stands for (the targets of an
// SRV name, the addresses of a host name), and maxPeerErrors the errors of
// its targets a failure reports: a resolver's answer is taken as a
// PeerSource's is (an SRV name of thousands of targets, each of thousands
// of addresses, was taken whole, and its targets' errors joined into one
// line of Status and of the log: found by review).
var maxPeerAddrs = maxSourcePeers // a variable: tests lower it

const maxPeerErrors = 3

// maxPeerLen bounds a peer's length: "srv:" and a DNS name (253 bytes at
// most), or a host (a name, or an IPv6 address with its zone) and a port.
const maxPeerLen = 300

// checkPeer reports whether p is a peer Config.Peers may name.
func checkPeer(p string) error {
	if len(p) > maxPeerLen {
		// A DNS name is at most 253 bytes: one longer is nobody's, and
		// kept as a failed join, named in Status and logged, a source's
		// 1,024 names of 64 KiB made a status of 134 MB (found by review).
		return fmt.Errorf("%q...: %d bytes, over %d", p[:32], len(p), maxPeerLen)
	}
	// A space or a control character is in no host name, address or SRV
	// name: " 10.0.0.1:7946" (a list split at ", ") was taken, looked up
	// as a name at every look, and failed as "lookup 10.0.0.1: no such
	// host", which names a peer that is fine (found by review).
	if i := strings.IndexFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		return fmt.Errorf("%q: a space or control character at byte %d", p, i)
	}
	if name, ok := strings.CutPrefix(p, srvPrefix); ok {
		switch {
		case name == "":
			return errors.New("srv: without a name")
		case strings.Contains(name, ":"):
			// No DNS name has one: "srv:NAME:7946" failed every look.
			return fmt.Errorf("%q: srv:NAME takes no port (its records give the ports)", p)
		}
		return nil
	}
	host, port, err := splitHostPort(p)
	switch {
	case err != nil:
		return err
	case host == "" || port == 0: // this host, or a port chosen at bind: no one to dial
		return fmt.Errorf("%q: no host or no port to dial", p)
	}
	return nil
}

// seeds returns the addresses to join for the configured peers and what
// the PeerSource gives, resolved now (names are resolved again every
// round, so members that come and go behind one are found), and the peers
// whose lookup failed, with the error. With a Transport of its own (an
// in-memory network), peers are its addresses and are not resolved.
//
// The PeerSource is asked while Peers are resolved, not before: a slow
// source used up the lookup's time, and the names among Peers then never
// resolved; and one that never answers is not asked again until it has,
// while Peers are resolved every round (a hung source kept a member with
// a live peer in Peers alone for good: found by review).
//
// ctx bounds the PeerSource's answer and the lookups of Peers; base, of
// which ctx is one, those of the source's peers (ended at Close). Once the
// Replicator is closed, the look does not wait for the source's answer: it
// returns nothing (see lookupSeeds), and a source that ignores its
// context is left to return in its own time, at most maxSourcing of its
// calls at once, with nothing of the Replicator's waiting for it.
func (r *Replicator) seeds(base, ctx context.Context) ([]string, map[string]error) {
	// One look makes at most lookWorkers lookups at once, its names' and
	// their SRV targets' together (each name's targets on workers of
	// their own, 16 names made 256 at once: found by review). Set before
	// the source's goroutine reads ctx.
	sem := make(lookSlots, lookWorkers)
	base, ctx = context.WithValue(base, lookSlotsKey{}, sem), context.WithValue(ctx, lookSlotsKey{}, sem)
	failed := map[string]error{}
	type answer struct {
		peers []string
		err   error
	}
	var asked chan answer
	if src := r.cfg.PeerSource; src != nil {
		// Up to maxSourcing calls that have not returned: one that hung
		// once (a connection half open, its context ignored) kept the
		// source from being asked for good (found by review).
		if r.sourcing.Add(1) <= maxSourcing {
			asked = make(chan answer, 1)
			go func() {
				defer r.sourcing.Add(-1)
				defer func() {
					if p := recover(); p != nil { // a source's panic is its failure, not the process's end
						asked <- answer{err: fmt.Errorf("panic: %v", p)}
					}
				}()
				more, err := src(ctx)
				asked <- answer{more, err}
			}()
		} else {
			r.sourcing.Add(-1)
			failed["PeerSource"] = errNoAnswer
		}
	}
	budget, seen := maxLookAddrs, map[string]bool{}
	other, otherExample := 0, "" // the source's ip:port literals of a family this member cannot reach
	addrs := r.resolvePeers(ctx, r.cfg.Peers, failed, &budget, seen, "Peers")
	if asked != nil {
		late := time.NewTimer(time.Second) // a second after its context ended
		defer late.Stop()
		if d, ok := ctx.Deadline(); ok {
			late.Reset(time.Until(d) + time.Second)
		}
		var a answer
		select {
		case a = <-asked:
		case <-late.C:
			a.err = errNoAnswer
		case <-r.done:
			// Closed: the look is no one's (lookupSeeds returned at
			// Close), and ends now, the source's answer dropped. It
			// waited for a source that ignores its context until a
			// second past ctx's deadline, up to 3 s past Close (found by
			// review). The source's call goes on in its own code until
			// it returns; its answer goes to asked, which holds it, and
			// nothing waits for it.
			return nil, nil
		}
		var peers []string
		bad, example := 0, ""
		// Each peer once, and none that Peers name (looked up with them):
		// a registry whose instances all give one Service name repeated it
		// in every answer, each copy looked up at every look and counted
		// against maxSourcePeers, the peers after them cut (found by
		// review).
		named, distinct := make(map[string]bool, len(r.cfg.Peers)), 0
		for _, p := range r.cfg.Peers {
			named[p] = true
		}
		for _, p := range a.peers {
			switch {
			case checkPeer(p) != nil:
				bad, example = bad+1, p[:min(len(p), 64)]
			case named[p]:
			case r.literalUnreachable(p):
				// Left out here, before it counts: left out after the
				// look, 1,024 IPv6 literals given first to a member bound
				// to its IPv4 address used up the source's 1,024 peers
				// and the look's 1,024 addresses, and the IPv4 peers
				// after them were cut (found by review:
				// TestLiteralsOfTheOtherFamilyUseNoBudget).
				named[p] = true
				if other++; otherExample == "" {
					otherExample = p
				}
			default:
				named[p] = true
				if distinct++; distinct <= maxSourcePeers {
					peers = append(peers, p)
				}
			}
		}
		var errs []error
		if a.err != nil && a.err != errNoAnswer {
			errs = append(errs, fmt.Errorf("peer source: %w", a.err))
		} else if a.err != nil {
			errs = append(errs, a.err)
		}
		if bad > 0 {
			errs = append(errs, fmt.Errorf("peer source gave %d peers that are not host:port or srv:NAME, such as %q", bad, example))
		}
		if distinct > maxSourcePeers { // a cap, not a failure (see capped)
			r.capped(fmt.Sprintf("PeerSource: %d peers: took the first %d", distinct, maxSourcePeers))
		}
		if len(errs) > 0 {
			failed["PeerSource"] = errors.Join(errs...)
		}
		// Their names have a lookup's time of their own (the source's
		// answer may have used up ctx's), which Close ends.
		rctx, cancel := context.WithTimeout(base, resolveTimeout)
		defer cancel()
		addrs = append(addrs, r.resolvePeers(rctx, peers, failed, &budget, seen, "PeerSource")...)
	}
	// Addresses given as ip:port of a family this member cannot reach
	// are left out as a name's are (see unreachable), when the look gives
	// one it can: a dual-stack registry's source lists each member at
	// both, and a member bound to its IPv4 address took its own IPv6 one
	// for a peer elsewhere, dialled it at every look and never founded its
	// cluster (found by review). A look of such addresses alone keeps
	// them: they fail as joins, and settle nothing.
	reachable := slices.ContainsFunc(addrs, func(a string) bool { return !r.unreachable(a) })
	if reachable {
		addrs = slices.DeleteFunc(addrs, r.unreachable)
	}
	// The source's literals of such a family were left out before they
	// counted (see above): said in the log when the look has peers this
	// member can reach (a dual-stack registry's every answer: no
	// failure), and as the source's failure when it has none (a failure
	// settles nothing: left out without a word, the look was one of no
	// peer, and the member founded a cluster of its own).
	if other > 0 {
		what := fmt.Sprintf("%d addresses of a family this member cannot reach from %s, such as %q", other, r.bound.Addr(), otherExample)
		if reachable {
			r.log.Debug().Str("left_out", what).Msg("the peer source gave addresses this member cannot reach")
		} else {
			failed["PeerSource"] = errors.Join(failed["PeerSource"], fmt.Errorf("peer source gave %s, and no peer this member can reach", what))
		}
	}
	slices.Sort(addrs)
	return addrs, failed
}

// maxSourcing bounds the PeerSource's calls that have not returned;
// maxLookAddrs the addresses one look takes, from Peers and the source
// together (a source's 1,024 names of 1,024 addresses each made a million
// join targets: found by review); lookWorkers the lookups at once.
const (
	maxSourcing  = 4
	maxLookAddrs = maxSourcePeers
	lookWorkers  = 16
)

// resolvePeers resolves peers, lookWorkers at once, recording in failed
// those that failed, and takes at most *budget addresses not in seen,
// less what it takes, adding them to seen; addresses past the budget are
// reported under list. One after another, a name whose servers did not
// answer used up the look's time, and every name after it failed, at
// every look (found by review); an address named twice (by Peers and the
// source) counted twice against the budget (found by review).
//
// It starts no lookup once those done have given the budget's worth of
// addresses: every peer was looked up in full before the budget was
// applied (found by review).
func (r *Replicator) resolvePeers(ctx context.Context, peers []string, failed map[string]error, budget *int, seen map[string]bool, list string) []string {
	got := make([][]string, len(peers))
	errs := make([]error, len(peers))
	looked := make([]bool, len(peers))
	// found counts the distinct addresses new to the look (seen is not
	// written until the lookups end): counted as given, addresses taken
	// already, or repeated in an answer, used up the budget, and peers
	// after them were never looked up (found by review).
	var mu sync.Mutex
	fresh, found := map[string]bool{}, 0
	forEachUntil(len(peers), lookWorkers, func(i int) {
		got[i], errs[i] = r.resolvePeer(ctx, peers[i])
		looked[i] = true
		mu.Lock()
		for _, a := range got[i] {
			if !seen[a] && !fresh[a] {
				fresh[a] = true
				found++
			}
		}
		mu.Unlock()
	}, func() bool { mu.Lock(); defer mu.Unlock(); return found >= *budget })
	var addrs []string
	cut, left := 0, 0
	for i, p := range peers {
		if !looked[i] {
			left++
			continue
		}
		if errs[i] != nil {
			failed[p] = errs[i]
		}
		for _, a := range got[i] {
			switch {
			case seen[a]:
			case *budget <= 0:
				cut++
			default:
				seen[a] = true
				addrs = append(addrs, a)
				*budget--
			}
		}
	}
	if cut > 0 || left > 0 {
		r.capped(fmt.Sprintf("%s: more addresses than a look takes (%d): %d left out, %d peers not looked up", list, maxLookAddrs, cut, left))
	}
	return addrs
}

// capped logs that a look left addresses out, at most once a minute: a
// cap is no failure (reported as one, it counted a lookup failure at
// every look of a healthy service that large, and listed it as failing:
// found by review). The caps: the addresses of one look, a PeerSource's
// peers, an SRV name's targets, and the addresses of one name or SRV
// name (reported as failures, the last two did the same, found by
// review; a host's were cut without a word).
func (r *Replicator) capped(what string) {
	now := time.Now().UnixNano()
	if last := r.capLogged.Load(); now-last < int64(time.Minute) || !r.capLogged.CompareAndSwap(last, now) {
		return
	}
	r.log.Warn().Str("cut", what).Msg("the peers name more addresses than a look takes")
}

// forEach calls f(i) for every i below n, on up to workers goroutines,
// and returns when every call has.
func forEach(n, workers int, f func(int)) { forEachUntil(n, workers, f, func() bool { return false }) }

// forEachUntil is forEach that starts no call, i in order, once done
// says so: a slow call holds up none after it (each worker takes the
// next i as it finishes, as in forEach; in batches, each waited for its
// slowest), and calls past a cap are not made at all. The calls made are
// those of a prefix of the i (done is asked before an i is taken: asked
// after, a worker that took i and then found done left i out while
// another made i+1, found by review).
func forEachUntil(n, workers int, f func(int), done func() bool) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Go(func() {
			for !done() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// lookSlots bounds the DNS lookups of one look in flight (see seeds): a
// lookup holds a slot while it runs.
type lookSlots chan struct{}

type lookSlotsKey struct{}

// lookSlot waits for a slot of ctx's look, if it has one, to look up
// name, and returns the function that gives it back. A name whose look
// ends first failed as a lookup that timed out, naming it: the bare
// context error was cause "timed out", where a name's failure is
// "lookup", with a text that named nothing (found by review).
func lookSlot(ctx context.Context, name string) (func(), error) {
	sem, _ := ctx.Value(lookSlotsKey{}).(lookSlots)
	if sem == nil {
		return func() {}, nil
	}
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, lookTimedOut(ctx, name)
	}
}

// lookTimedOut is the failure of a lookup of name that the end of ctx cut.
func lookTimedOut(ctx context.Context, name string) error {
	return &net.DNSError{Err: "not answered within the look's time", Name: name, IsTimeout: true, UnwrapErr: ctx.Err()}
}

// lookupSRV is res.LookupSRV, returning at ctx's end: Go's resolver does
// not, for an SRV name's lookup, under a Resolver's Dial that ignores its
// context (a DNS-over-TLS handshake a server never completes), which held
// the look for good: no peer was joined, the live ones listed beside it
// neither (found by review).
func (r *Replicator) lookupSRV(ctx context.Context, res *net.Resolver, name string) ([]*net.SRV, error) {
	return lookupBounded(r, ctx, "srv", name, func() ([]*net.SRV, error) {
		_, srvs, err := res.LookupSRV(ctx, "", "", name)
		return srvs, err
	})
}

// lookupHost is res.LookupHost, returning at ctx's end: Go's LookupHost
// does not either (LookupIPAddr does), and a name:port among the peers
// held the look as an SRV name did (found by review:
// TestAHungHostLookupHidesNoPeer).
func (r *Replicator) lookupHost(ctx context.Context, res *net.Resolver, host string) ([]string, error) {
	return lookupBounded(r, ctx, "host", host, func() ([]string, error) { return res.LookupHost(ctx, host) })
}

// maxHungLookups bounds the lookups that have not returned (see
// lookupBounded): four looks' worth of lookWorkers.
const maxHungLookups = 4 * lookWorkers

// lookupBounded returns what f, a lookup of name, returns, or a lookup
// that timed out at ctx's end, f left running on its goroutine. A name
// whose lookup of that kind has not returned since an earlier look is not
// looked up again (one goroutine held a name, not one a look), and none
// is while maxHungLookups have not returned: names that change at every
// look (a PeerSource's) each held a goroutine, and its dials, for good
// (found by review: TestHungLookupsAreBounded). A name's lookup in flight
// in the same look is shared, not a failure: two peers at one host and
// two ports (two members on one machine, an SRV name's targets on one
// node), looked up at once, failed the second as "an earlier lookup has
// not returned", at every look: that peer had no address, and the look,
// a failure, settled nothing (found by review:
// TestPeersOnOneHostAreAllLookedUp).
//
// A lookup shared is made under its first caller's context, which may
// end before another's (Peers' names are looked up under the look's
// context, the PeerSource's under one of their own: see seeds): one that
// failed once its context had ended is made again for a caller whose
// context has not, its failure not taken for that caller's (found by
// review: TestASharedLookupIsNotFailedByAnotherContext, where the
// source's peer at a host Peers also name failed "operation was
// canceled" in its own time).
func lookupBounded[T any](r *Replicator, ctx context.Context, kind, name string, f func() (T, error)) (T, error) {
	var none T
	key := kind + ":" + name
	look, _ := ctx.Value(lookSlotsKey{}).(lookSlots)
	l := &lookupInFlight[T]{done: make(chan struct{}), look: look, ctx: ctx}
	for {
		v, busy := r.lookHung.LoadOrStore(key, l)
		if !busy {
			break
		}
		shared := v.(*lookupInFlight[T])
		if shared.look == nil || shared.look != look {
			// An earlier look's: its caller has failed it already, and
			// this one does too, at once (waiting, each such name held a
			// slot of this look until its end).
			return none, &net.DNSError{Err: "an earlier lookup has not returned", Name: name, IsTimeout: true}
		}
		select {
		case <-shared.done:
			if shared.err == nil || shared.ctx.Err() == nil || ctx.Err() != nil {
				return shared.v, shared.err
			}
			// Its context ended, this one's has not: looked up again
			// (the name was let go before done was closed).
		case <-ctx.Done():
			return none, lookTimedOut(ctx, name)
		}
	}
	if r.lookups.Add(1) > maxHungLookups {
		r.lookups.Add(-1)
		l.err = &net.DNSError{Err: fmt.Sprintf("%d earlier lookups have not returned", maxHungLookups), Name: name, IsTimeout: true}
		r.lookHung.Delete(key)
		close(l.done)
		return none, l.err
	}
	go func() {
		l.v, l.err = f()
		// Let go of the name before the answer goes: let go after it, the
		// caller's next lookup of the name, at once, found the earlier
		// one not returned now and then (a CI run).
		r.lookHung.Delete(key)
		r.lookups.Add(-1)
		close(l.done)
	}()
	select {
	case <-l.done:
		return l.v, l.err
	case <-ctx.Done():
		return none, lookTimedOut(ctx, name)
	}
}

// lookupInFlight is a lookup that has not returned (see lookupBounded):
// v and err are its answer once done is closed.
type lookupInFlight[T any] struct {
	done chan struct{}
	look lookSlots       // the look it is of (see seeds): only that look's callers share it
	ctx  context.Context // its first caller's, under which f runs
	v    T
	err  error
}

// resolvePeer returns the ip:port addresses of peer p.
func (r *Replicator) resolvePeer(ctx context.Context, p string) ([]string, error) {
	res := r.cfg.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	if name, ok := strings.CutPrefix(p, srvPrefix); ok {
		done, err := lookSlot(ctx, name)
		if err != nil {
			return nil, err
		}
		srvs, err := r.lookupSRV(ctx, res, name)
		done()
		// Go's resolver drops records whose target is no valid name and
		// returns the others with an error: the name's failure (it
		// settles nothing), but the valid targets are peers all the same
		// (taken as a failure of the whole name, one malformed record hid
		// every live target, at every look: found by review).
		if err != nil && len(srvs) == 0 {
			return nil, err
		}
		var errs []error
		if err != nil {
			errs = append(errs, err)
		}
		// Every target: one that does not resolve (a stale record) hid
		// those after it (found by review). Up to maxPeerAddrs in all.
		// At once, as Peers are: one whose servers do not answer does
		// not use up the others' time (found by review). Every target,
		// up to as many as a source's peers: one that does not resolve
		// takes no address.
		// Each target once (a target named twice was looked up twice, as
		// often as an answer of a thousand named it), none for ".", the
		// RFC 2782 "no service here" (looked up as "", it failed at every
		// look: found by review).
		targets := len(srvs)
		twice := map[string]bool{}
		srvs = slices.DeleteFunc(srvs, func(s *net.SRV) bool {
			t := net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port)))
			// A target at port 0 is no one to dial, as Peers take it
			// (checkPeer): taken, it was dialled at every look, and
			// counted as a member elsewhere (found by review).
			if s.Target == "." || s.Target == "" || s.Port == 0 || twice[t] {
				return true
			}
			twice[t] = true
			return false
		})
		if len(srvs) > maxSourcePeers { // said, not cut without a word (found by review)
			r.capped(fmt.Sprintf("%s: %d targets: looked up the first %d", p, len(srvs), maxSourcePeers))
			srvs = srvs[:maxSourcePeers]
		}
		// lookWorkers at a time, in the answer's order (of priority),
		// starting none once maxPeerAddrs have been found: every target
		// was looked up before the cap was applied (found by review).
		got := make([][]string, len(srvs))
		gotErr := make([]error, len(srvs))
		looked := make([]bool, len(srvs))
		// Distinct addresses, as the look's cap counts them: two targets
		// naming one host gave its address twice, and the repeat used up
		// the cap.
		var mu sync.Mutex
		distinct := map[string]bool{}
		forEachUntil(len(srvs), lookWorkers, func(i int) {
			got[i], gotErr[i] = r.resolveHost(ctx, res, strings.TrimSuffix(srvs[i].Target, "."), strconv.Itoa(int(srvs[i].Port)))
			looked[i] = true
			mu.Lock()
			for _, a := range got[i] {
				distinct[a] = true
			}
			mu.Unlock()
		}, func() bool { mu.Lock(); defer mu.Unlock(); return len(distinct) >= maxPeerAddrs })
		var addrs []string
		taken := map[string]bool{}
		failed := 0
		cut := false // addresses left out, or targets not looked up
		for i := range srvs {
			if !looked[i] { // not looked up: what it gives is not known
				cut = true
				break
			}
			fresh := slices.DeleteFunc(slices.Clone(got[i]), func(a string) bool { return taken[a] })
			room := maxPeerAddrs - len(addrs)
			if room == 0 {
				// The cap taken: past it, a target's failure is none of
				// the name's (counted, a name that gave all it may failed
				// at every look: found by review), and one that repeats
				// addresses taken leaves nothing out.
				if len(fresh) > 0 {
					cut = true
					break
				}
				continue
			}
			if err := gotErr[i]; err != nil {
				if failed++; failed <= maxPeerErrors {
					errs = append(errs, err)
				}
			}
			cut = cut || len(fresh) > room
			for _, a := range fresh[:min(len(fresh), room)] {
				taken[a] = true
				addrs = append(addrs, a)
			}
		}
		if cut { // a cap, not a failure (see capped)
			r.capped(fmt.Sprintf("%s: %d targets: took the addresses of the first ones, %d", p, targets, maxPeerAddrs))
		}
		if failed > maxPeerErrors {
			errs = append(errs, fmt.Errorf("and %d more targets that failed", failed-maxPeerErrors))
		}
		return addrs, errors.Join(errs...)
	}
	host, port, err := net.SplitHostPort(p)
	if err != nil {
		return nil, err
	}
	return r.resolveHost(ctx, res, host, port)
}

// resolveHost returns host:port for every address of host; an IP address,
// or any host with a Transport of the caller's, stands for itself.
// Every address is written as memberlist writes a member's (an IPv4
// address as such, the port without leading zeros): spelled otherwise, a
// live member was never taken for one, and joined again at every look.
func (r *Replicator) resolveHost(ctx context.Context, res *net.Resolver, host, port string) ([]string, error) {
	if r.cfg.Transport != nil {
		return []string{net.JoinHostPort(host, port)}, nil
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port in %q", net.JoinHostPort(host, port))
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []string{netip.AddrPortFrom(ip.Unmap(), uint16(n)).String()}, nil
	}
	done, err := lookSlot(ctx, host)
	if err != nil {
		return nil, err
	}
	ips, err := r.lookupHost(ctx, res, host)
	done()
	if err != nil {
		return nil, err
	}
	addrs := make([]string, 0, min(len(ips), maxPeerAddrs))
	// Each once, in the resolver's order: an answer may repeat an address
	// (or give it as IPv4 and as IPv4-mapped IPv6), which counted against
	// the caps each time (found by review). Those of a family this member
	// cannot reach are left out (see unreachable). The cap applies to
	// what is left: cut before, repeats and addresses of the other family
	// used it up (a dual-stack Service of more pods than the cap, its IPv6
	// addresses sorted first, gave a member bound to its IPv4 address no
	// peer at all, a lookup failure: found by review,
	// TestANameRepeatingAnAddressGivesItsOthersWithinTheCap).
	once := make(map[string]bool, min(len(ips), maxPeerAddrs))
	found, cut := 0, 0
	for _, ip := range ips {
		// Written as memberlist writes a member's (a name's port with a
		// leading zero was joined again at every look: found by review).
		a, err := netip.ParseAddr(ip)
		if err != nil {
			continue
		}
		found++
		s := netip.AddrPortFrom(a.Unmap(), uint16(n)).String()
		switch {
		case once[s] || r.unreachable(s):
		case len(addrs) == maxPeerAddrs:
			cut++
		default:
			once[s] = true
			addrs = append(addrs, s)
		}
	}
	if cut > 0 { // a cap, not a failure (see capped)
		r.capped(fmt.Sprintf("%s: %d addresses: took the first %d it can reach", host, len(ips), maxPeerAddrs))
	}
	if len(addrs) == 0 && found > 0 {
		// A DNS error, as a name's other failures: cause "lookup" (a plain
		// error was "failed", found by review).
		return nil, &net.DNSError{Err: fmt.Sprintf("no address this member can reach from %s: %d of another family", r.bound.Addr(), found), Name: host, IsNotFound: true}
	}
	return addrs, nil
}

// literalUnreachable reports whether p, a peer given, is an ip:port of a
// family this member cannot reach (see unreachable).
func (r *Replicator) literalUnreachable(p string) bool {
	ap, err := netip.ParseAddrPort(p)
	return err == nil && r.cfg.Transport == nil && r.unreachable(ap.String())
}

// unreachable reports whether addr, of a name resolved, is of an address
// family this member cannot reach from the address it bound: IPv6 from an
// IPv4 address (0.0.0.0 included, when Go bound it alone), IPv4 from an
// IPv6 address other than ::. A name of a dual-stack Service gives every
// pod's IPv6 address beside its IPv4 one: a member bound to its pod's
// IPv4 address took its own IPv6 address for a peer, joined it at every
// round and never reached it, and the first pod of a StatefulSet never
// founded its cluster (found by review).
func (r *Replicator) unreachable(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !r.bound.IsValid() {
		return false
	}
	bound, ip := r.bound.Addr().Unmap(), ap.Addr().Unmap()
	switch {
	case bound.Is4():
		return !ip.Is4()
	case bound.IsUnspecified(): // ::, both families
		return false
	}
	return ip.Is4()
}
