package bcache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestWaitSyncedAndStatus: a member that joins a cluster is not synced,
// nor ready, until an exchange with a peer completes, and then holds what
// the peer held; its status names its peer and when it last synced; a
// member without peers is ready at once.
func TestWaitSyncedAndStatus(t *testing.T) {
	net := memnet.NewNetwork(1)
	a := onMemnet(t, net, "a")
	if err := a.WaitSynced(context.Background()); err != nil {
		t.Fatalf("a member without peers: WaitSynced %v", err)
	}
	if s := a.Status(); !s.Ready() || s.PeersConfigured || !s.Alone {
		t.Fatalf("a member without peers: %+v, ready %v", s, s.Ready())
	}
	for i := range 100 {
		if err := a.Set(string(rune('a'+i%26))+string(rune('a'+i/26)), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	b := onMemnet(t, net, "b", a.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitSynced(ctx); err != nil {
		t.Fatalf("WaitSynced: %v; status %+v", err, b.Status())
	}
	s := b.Status()
	if !s.Synced || s.FirstSync.IsZero() || !s.Ready() || s.Alone || len(s.Peers) != 1 || s.Peers[0].Name != "a" {
		t.Fatalf("after the first sync: %+v", s)
	}
	if b.Len() != 100 {
		t.Fatalf("synced, b holds %d of a's 100 keys", b.Len())
	}
	b.Close()
	if err := b.WaitSynced(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitSynced after Close: %v, want ErrClosed", err)
	}
}

// TestJoinFailuresAreReported: a member whose peer holds another key
// never syncs (WaitSynced ends with the context's error), is not ready,
// and its status says it cannot join the peer, and why.
func TestJoinFailuresAreReported(t *testing.T) {
	net := memnet.NewNetwork(1)
	tr, err := net.NewTransport("a")
	if err != nil {
		t.Fatal(err)
	}
	a := newCache(t, Config{NodeName: "a", Network: tr, Timings: FastTimings(), SecretKey: []byte("0123456789abcdef")})
	tr, err = net.NewTransport("b")
	if err != nil {
		t.Fatal(err)
	}
	b := newCache(t, Config{NodeName: "b", Network: tr, Timings: FastTimings(), Peers: []string{a.Addr()},
		SecretKey: []byte("fedcba9876543210")})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.WaitSynced(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSynced with the wrong key: %v", err)
	}
	s := b.Status()
	if s.Ready() || s.Synced || !s.Alone || len(s.Joining) != 1 || s.Joining[0].Addr != a.Addr() || s.Joining[0].Failures == 0 || s.Joining[0].Cause != "wrong key" {
		t.Fatalf("status of a member with the wrong key: %+v", s)
	}
	t.Logf("join failure: %+v", s.Joining[0])
}

// onMemnet starts a member called name on net with FastTimings, joining
// peers; it closes when the test ends.
func onMemnet(t testing.TB, net *memnet.Network, name string, peers ...string) *Cache {
	t.Helper()
	tr, err := net.NewTransport(name)
	if err != nil {
		t.Fatal(err)
	}
	return newCache(t, Config{NodeName: name, Network: tr, Peers: peers, Timings: FastTimings()})
}
