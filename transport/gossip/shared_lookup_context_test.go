package gossip

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// doneWatched is a context that says when its Done is first asked for:
// a lookup sharing another's in flight asks for it as it starts to wait.
type doneWatched struct {
	context.Context
	once   sync.Once
	waited chan struct{}
}

func (c *doneWatched) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waited) })
	return c.Context.Done()
}

// TestASharedLookupIsNotFailedByAnotherContext: within one look, Peers'
// names are looked up under the look's context, and a PeerSource's
// under one of their own, given once the source answers (see seeds). A
// lookup of a host still in flight is shared by a later lookup of the
// same host in the look (two members on one machine, one named by Peers
// and one by the source): a Peers' lookup whose context had ended (a
// server slow to answer, a resolver Dial that ignores its context)
// returned its context's failure, and the source's lookup, its own
// context alive, took that failure for its own: its peer had no address
// and the look was a failure, though the server answered a lookup made
// in its time.
func TestASharedLookupIsNotFailedByAnotherContext(t *testing.T) {
	srv := dnsServer(t, func(w dns.ResponseWriter, req *dns.Msg) {
		q := req.Question[0]
		m := new(dns.Msg)
		m.SetReply(req)
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(127, 0, 0, 1)})
		}
		w.WriteMsg(m)
	})
	started, release := make(chan struct{}), make(chan struct{})
	var dials atomic.Int32
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 { // the first lookup's: held past its context's end, then refused
			close(started)
			<-release
			return nil, errors.New("connection refused")
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return srv.Dial(ctx, network, addr)
	}}
	r := &Replicator{cfg: Config{Resolver: res}}
	sem := make(lookSlots, lookWorkers)
	peersCtx, endPeers := context.WithCancel(context.WithValue(context.Background(), lookSlotsKey{}, sem))
	firstDone := make(chan error, 1)
	go func() {
		_, err := r.lookupHost(peersCtx, res, "multi.test.")
		firstDone <- err
	}()
	<-started
	endPeers() // the look's context ends, the lookup in flight
	if err := <-firstDone; err == nil {
		t.Fatal("a lookup whose context ended, its server not answering, succeeded")
	}
	sourceCtx := &doneWatched{Context: context.WithValue(context.Background(), lookSlotsKey{}, sem), waited: make(chan struct{})}
	type result struct {
		addrs []string
		err   error
	}
	second := make(chan result, 1)
	go func() {
		addrs, err := r.lookupHost(sourceCtx, res, "multi.test.")
		second <- result{addrs, err}
	}()
	<-sourceCtx.waited // waiting for the first lookup of the host
	close(release)
	if got := <-second; got.err != nil || !slices.Equal(got.addrs, []string{"127.0.0.1"}) {
		t.Fatalf("a lookup under a live context, sharing one whose context had ended: %q, %v; want 127.0.0.1", got.addrs, got.err)
	}
}
