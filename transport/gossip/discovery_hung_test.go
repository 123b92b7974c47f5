package gossip

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestAHungSRVLookupHidesNoPeer: a Resolver whose Dial ignores its
// context (a DNS-over-TLS dial whose server accepts and never completes
// the handshake; a net.Dial of TCP to a server that drops SYNs) hangs an
// SRV lookup: Go's resolver does not return at the context's end from an
// SRV name's lookup (nor from LookupHost: TestAHungHostLookupHidesNoPeer).
// The look waited for it, never ended,
// and no look came after it: the live peer listed beside the name was
// never joined (as a hung PeerSource once did: TestHungPeerSourceHidesNoPeer).
func TestAHungSRVLookupHidesNoPeer(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	res := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		<-hang // ignores its context
		return nil, errors.New("no DNS server")
	}}
	a := startNode(t, "a", nil)
	b := startNode(t, "b", []string{"srv:_gossip._tcp.hung.test.", a.r.Addr()}, func(c *Config) { c.Resolver = res })
	await.Until(t, 20*time.Second, func() bool { return len(b.r.Members()) == 2 },
		"b never met a, listed beside an SRV name whose lookup hangs")
	// The name's failure is a lookup's, and names it.
	await.Until(t, 20*time.Second, func() bool {
		for _, j := range b.r.Status().Joining {
			if j.Addr == "srv:_gossip._tcp.hung.test." {
				return j.Cause == "lookup"
			}
		}
		return false
	}, "the hung SRV name is not reported as a lookup failure: %+v", b.r.Status().Joining)
}

// TestALookupLeftWithoutASlotIsALookupFailure: a peer whose lookup found
// no free slot before the look's time ran out (16 slow names ahead of
// it) failed with the bare context error: cause "timed out", where a
// name's failure is "lookup" (Status.Joining), and the text "context
// deadline exceeded", naming nothing; the same peer, when its select
// took a slot freed as the deadline passed, failed as a lookup. Its
// failure is a lookup's either way, and names the name.
func TestALookupLeftWithoutASlotIsALookupFailure(t *testing.T) {
	sem := make(lookSlots, 1)
	sem <- struct{}{} // every slot held, as by lookups whose servers do not answer
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), lookSlotsKey{}, sem), 50*time.Millisecond)
	defer cancel()
	r := &Replicator{}
	for p, name := range map[string]string{"live.test:7946": "live.test", "srv:_x._tcp.live.test.": "_x._tcp.live.test."} {
		_, err := r.resolvePeer(ctx, p)
		if err == nil {
			t.Fatalf("%s: looked up without a slot", p)
		}
		if cause := joinCause(err); cause != "lookup" || !strings.Contains(joinText(err), name) {
			t.Errorf("%s: cause %q, text %q; want a lookup failure naming %s", p, cause, joinText(err), name)
		}
	}
}
