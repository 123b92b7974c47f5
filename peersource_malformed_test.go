package bcache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestPeerSourceMalformedEntrySettlesNothing: a PeerSource answering this
// member's own address and an entry that is no peer (" 10.0.0.2:7946",
// a list split at ", ") keeps the member from founding its cluster: the
// entry is left out and reported, but it may be the peer the source meant
// to name, and a member that took the answer for "only itself" would found
// a cluster of its own beside the others, ready and collecting, with
// nothing said but a log line. Once the source answers its own address
// alone, it founds.
func TestPeerSourceMalformedEntrySettlesNothing(t *testing.T) {
	var now atomic.Int64
	var self atomic.Pointer[string]
	var calls atomic.Int32
	var clean atomic.Bool
	c := lookedUp(t, &now, func(context.Context) ([]string, error) {
		calls.Add(1)
		p := self.Load()
		switch {
		case p == nil:
			return nil, errors.New("not yet") // a failed look settles nothing
		case clean.Load():
			return []string{*p}, nil
		}
		return []string{*p, " 10.0.0.2:7946"}, nil
	})
	addr := c.Addr()
	self.Store(&addr)
	// A look's answer is handled before the next look starts (one at a
	// time): once the source is called twice after the address is set,
	// the first of them has been handled.
	from := calls.Load()
	await.Until(t, 20*time.Second, func() bool { return calls.Load() >= from+2 }, "the source was not asked again")
	if s := c.Status(); s.Ready() || s.Founder || !s.PeersConfigured {
		t.Fatalf("its source named itself and a malformed entry: founder %v, ready %v, peers configured %v", s.Founder, s.Ready(), s.PeersConfigured)
	}
	if err := c.Delete("k"); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * time.Hour))
	c.collect()
	if n := c.Status().Tombstones; n != 1 {
		t.Fatalf("not its cluster's founder, it collected its delete past the horizon: %d tombstones", n)
	}
	clean.Store(true)
	await.Until(t, 20*time.Second, func() bool { return c.Status().Founder }, "its source naming itself alone, it did not found its cluster")
}
