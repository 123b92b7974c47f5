package bcache

import (
	"context"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestTokenOfACollectedDeleteOnAMemberThatJoinedAfter: a delete is
// collected on every member; a member that joins afterwards (or restarts
// empty) holds nothing of the key and no watermark of it. A read there
// with the delete's token must answer a miss, as it does on the members
// that collected it, not wait out its context (an HTTP node's 504 for
// every such read, for as long as the key stays unwritten).
func TestTokenOfACollectedDeleteOnAMemberThatJoinedAfter(t *testing.T) {
	net := memnet.NewNetwork(1)
	member := func(name string, peers ...string) *Cache {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		return newCache(t, Config{NodeName: name, Network: tr, Peers: peers, Timings: FastTimings(),
			AntiEntropyInterval: 50 * time.Millisecond, GCInterval: 50 * time.Millisecond, MaxClockSkew: 10 * time.Millisecond})
	}
	a := member("a")
	b := member("b", a.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	tok, err := a.DeleteWithToken("k")
	if err != nil {
		t.Fatal(err)
	}
	await.Until(t, 20*time.Second, func() bool {
		_, x := a.store.Lookup("k")
		_, y := b.store.Lookup("k")
		return !x && !y
	}, "the delete was never collected")
	c := member("c", a.Addr())
	if err := c.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithTimeout(context.Background(), 3*time.Second)
	defer stop()
	v, ok, err := c.GetAfter(short, "k", tok)
	if err != nil || ok {
		t.Fatalf("GetAfter on a member that joined after the delete was collected = %q, %v, %v; want a miss", v, ok, err)
	}
}
