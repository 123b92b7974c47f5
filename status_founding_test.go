package bcache

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestIsolatedAfterItsFirstSyncIsNotReady: a member with peers configured
// that synced, then was cut off from every peer, is alone and not ready
// (README: "not alone while it has peers to join"), and lists the peer it
// lost in Joining; once the partition heals it is ready again.
func TestIsolatedAfterItsFirstSyncIsNotReady(t *testing.T) {
	net := memnet.NewNetwork(1)
	a := onMemnet(t, net, "a")
	b := onMemnet(t, net, "b", a.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	if s := b.Status(); !s.Ready() {
		t.Fatalf("synced: %+v", s)
	}
	net.Partition([]string{"a"}, []string{"b"})
	await.Until(t, 20*time.Second, func() bool { return b.Status().Alone }, "b still sees a: %+v", b.Status())
	s := b.Status()
	if s.Ready() || !s.PeersConfigured || !s.Synced {
		t.Fatalf("b cut off from its one peer: ready %v, %+v", s.Ready(), s)
	}
	await.Until(t, 20*time.Second, func() bool {
		for _, j := range b.Status().Joining {
			if j.Addr == a.Addr() {
				return true
			}
		}
		return false
	}, "b lists no failure to join a: %+v", b.Status().Joining)
	net.Heal()
	await.Until(t, 30*time.Second, func() bool { return b.Status().Ready() }, "healed, b is not ready: %+v", b.Status())
}

// TestAFounderThatMeetsAHolderIsNotFounding: a member whose PeerSource
// answered nothing founded its cluster, empty; the source then names a
// member holding data. Once it has met that member it knows it did not
// hold all its cluster had (the member says it holds its cluster's state:
// Founded is false), so Status.Founding, "it still holds all the cluster
// had", is not true of it: until its first exchange it must not be ready,
// nor WaitSynced return, serving nothing of what the holder has.
func TestAFounderThatMeetsAHolderIsNotFounding(t *testing.T) {
	net := memnet.NewNetwork(1)
	slow := func(name string, peers []string, src func(context.Context) ([]string, error)) *Cache {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		return newCache(t, Config{NodeName: name, Network: tr, Peers: peers, PeerSource: src, Timings: FastTimings(),
			AntiEntropyInterval: time.Hour}) // no exchange comes on its own within the test
	}
	a := slow("a", nil, nil)
	for i := range 100 {
		if err := a.Set(fmt.Sprint("k", i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	var named atomic.Bool
	b := slow("b", nil, func(context.Context) ([]string, error) {
		if named.Load() {
			return []string{a.Addr()}, nil
		}
		return nil, nil
	})
	await.Until(t, 10*time.Second, func() bool { return b.Status().Founder }, "b never founded: %+v", b.Status())
	// Packets lost both ways: b meets a by its join (a stream), and no
	// exchange completes; the checks hold whether or not it would.
	net.SetLoss("a", "b", 1)
	net.SetLoss("b", "a", 1)
	named.Store(true)
	await.Until(t, 20*time.Second, func() bool { return !b.Status().Alone }, "b never met a: %+v", b.Status())
	s := b.Status()
	if s.Ready() && b.Len() < a.Len() {
		t.Fatalf("b met a, which holds %d keys, and is ready holding %d: %+v", a.Len(), b.Len(), s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := b.WaitSynced(ctx); err == nil && b.Len() < a.Len() {
		t.Fatalf("b's WaitSynced returned holding %d of a's %d keys", b.Len(), a.Len())
	}
}
