package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// hungResolver is a Resolver whose Dial ignores its context and does not
// return until the test ends (a DNS-over-TLS handshake a server never
// completes; a TCP dial to a server that drops SYNs), counting the dials
// in flight.
func hungResolver(t *testing.T, inFlight *atomic.Int32) *net.Resolver {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		<-hang // ignores its context
		return nil, errors.New("no DNS server")
	}}
}

// TestAHungHostLookupHidesNoPeer: TestAHungSRVLookupHidesNoPeer for a
// host name. Go's Resolver.LookupHost does not return at its context's
// end either (LookupIPAddr does, LookupHost does not): under a Resolver
// whose Dial ignores its context, a name:port among Peers held its
// worker, its slot and the look for good, no look came after it, and the
// live peer listed beside it was never joined.
func TestAHungHostLookupHidesNoPeer(t *testing.T) {
	var inFlight atomic.Int32
	res := hungResolver(t, &inFlight)
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{"hung.test:7946", a.r.Addr()}, func(c *Config) { c.Resolver = res })
	await.Until(t, 20*time.Second, func() bool { return len(b.r.Members()) == 2 },
		"b never met a, listed beside a name whose lookup hangs")
	await.Until(t, 20*time.Second, func() bool {
		for _, j := range b.r.Status().Joining {
			if j.Addr == "hung.test:7946" {
				return j.Cause == "lookup"
			}
		}
		return false
	}, "the hung name is not reported as a lookup failure: %+v", b.r.Status().Joining)
}

// TestHungLookupsAreBounded: under such a Resolver, every lookup ends
// with the look's time, and the lookups left hung are bounded however
// many looks there are and whatever names they make (a PeerSource that
// names other SRV names or hosts at each look held one more goroutine,
// and its dials, for each, for good).
func TestHungLookupsAreBounded(t *testing.T) {
	var inFlight atomic.Int32
	r := &Replicator{cfg: Config{Resolver: hungResolver(t, &inFlight)}}
	const looks = 100
	for i := range looks {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		for _, p := range []string{"hung.test:7946", fmt.Sprintf("hung%d.test:7946", i), fmt.Sprintf("srv:_gossip._tcp.hung%d.test.", i)} {
			done := make(chan error, 1)
			go func() { _, err := r.resolvePeer(ctx, p); done <- err }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("%s: looked up through a Dial that never returns", p)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("look %d: the lookup of %s did not end with its context", i, p)
			}
		}
		cancel()
	}
	// Counted before each lookup's goroutine starts: no wait for them.
	if n := r.lookups.Load(); n > maxHungLookups {
		t.Fatalf("%d lookups not returned after %d looks, want at most %d", n, looks, maxHungLookups)
	}
	// A host's lookup dials for its A and AAAA records at once.
	if n := inFlight.Load(); n > 2*maxHungLookups {
		t.Fatalf("%d DNS dials hung after %d looks, want at most %d", n, looks, 2*maxHungLookups)
	}
}
