package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// srvPrefix marks a peer given as a DNS SRV name: every target it lists,
// at the port it gives, is a peer.
const srvPrefix = "srv:"

// resolveTimeout bounds the name lookups of one rejoin round.
const resolveTimeout = 2 * time.Second

// checkPeer reports whether p is a peer Config.Peers may name.
func checkPeer(p string) error {
	if name, ok := strings.CutPrefix(p, srvPrefix); ok {
		if name == "" {
			return errors.New("srv: without a name")
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
func (r *Replicator) seeds(ctx context.Context) ([]string, map[string]error) {
	peers := slices.Clone(r.cfg.Peers)
	failed := map[string]error{}
	if src := r.cfg.PeerSource; src != nil {
		more, err := src(ctx)
		if err != nil {
			failed["PeerSource"] = fmt.Errorf("peer source: %w", err)
		}
		for _, p := range more {
			if checkPeer(p) == nil {
				peers = append(peers, p)
			} else {
				failed[p] = fmt.Errorf("peer source gave %q: not host:port or srv:NAME", p)
			}
		}
	}
	var addrs []string
	for _, p := range peers {
		got, err := r.resolvePeer(ctx, p)
		if err != nil {
			failed[p] = err
		}
		addrs = append(addrs, got...)
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), failed
}

// resolvePeer returns the ip:port addresses of peer p.
func (r *Replicator) resolvePeer(ctx context.Context, p string) ([]string, error) {
	res := r.cfg.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	if name, ok := strings.CutPrefix(p, srvPrefix); ok {
		_, srvs, err := res.LookupSRV(ctx, "", "", name)
		if err != nil {
			return nil, err
		}
		var addrs []string
		for _, s := range srvs {
			got, err := r.resolveHost(ctx, res, strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port)))
			if err != nil {
				return addrs, err
			}
			addrs = append(addrs, got...)
		}
		return addrs, nil
	}
	host, port, err := net.SplitHostPort(p)
	if err != nil {
		return nil, err
	}
	return r.resolveHost(ctx, res, host, port)
}

// resolveHost returns host:port for every address of host; an IP address,
// or any host with a Transport of the caller's, stands for itself.
func (r *Replicator) resolveHost(ctx context.Context, res *net.Resolver, host, port string) ([]string, error) {
	if r.cfg.Transport != nil || net.ParseIP(host) != nil {
		return []string{net.JoinHostPort(host, port)}, nil
	}
	ips, err := res.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, len(ips))
	for i, ip := range ips {
		addrs[i] = net.JoinHostPort(ip, port)
	}
	return addrs, nil
}
