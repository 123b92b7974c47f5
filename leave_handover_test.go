package bcache

import (
	"context"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestCloseHandsAPeerTheWritesItsDeltasLost: l keeps nothing (no
// snapshot), and writes k while every datagram it sends is lost; with no
// anti-entropy due for an hour, k is on l alone when l closes. Its Close
// asks a peer to pull from it before it goes (transport/gossip,
// leaving.go): once Close has returned, a holds k. Before, k went with
// l, though its Set had returned nil.
func TestCloseHandsAPeerTheWritesItsDeltasLost(t *testing.T) {
	handover(t, false)
}

// TestCloseCutOffFromItsPeersLosesTheWritesItsDeltasLost is the broken
// variant of TestCloseHandsAPeerTheWritesItsDeltasLost: l's datagrams
// are still lost as it closes, its notices among them, so no peer pulls,
// and k is lost: the write the test hands over is one its delta did not
// carry.
func TestCloseCutOffFromItsPeersLosesTheWritesItsDeltasLost(t *testing.T) {
	handover(t, true)
}

func handover(t *testing.T, cutOff bool) {
	net := memnet.NewNetwork(1)
	member := func(name string, peers ...string) *Cache {
		tr, err := net.NewTransport(name)
		if err != nil {
			t.Fatal(err)
		}
		return newCache(t, Config{NodeName: name, Network: tr, Peers: peers, Timings: FastTimings(),
			AntiEntropyInterval: time.Hour})
	}
	a := member("a")
	l := member("l", a.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { return len(a.Members()) == 2 }, "a does not see l")
	net.SetLoss("l", "*", 1)
	sent := l.Stats().Replication.Protocol.DeltaBatchesSent
	if err := l.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, func() bool { return l.Stats().Replication.Protocol.DeltaBatchesSent > sent },
		"l never sent k's delta")
	if !cutOff {
		net.SetLoss("l", "*", 0)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	v, ok := a.Get("k")
	switch {
	case !cutOff && string(v) != "v":
		t.Fatalf("a holds k = %q (%v) once l's Close returned, want v: no peer pulled l's writes", v, ok)
	case cutOff && ok:
		t.Fatalf("a holds k = %q, though every datagram l sent was lost", v)
	}
}
