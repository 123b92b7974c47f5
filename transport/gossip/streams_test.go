package gossip

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// memNode starts a member called name on net, its transport wrapped by
// wrap if not nil.
func memNode(t *testing.T, net *memnet.Network, name string, peers []string, wrap func(*memnet.Transport) Transport) *node {
	t.Helper()
	tr, err := net.NewTransport(name)
	if err != nil {
		t.Fatal(err)
	}
	var base Transport = tr
	if wrap != nil {
		base = wrap(tr)
	}
	return startNode(t, name, peers, func(c *Config) { c.Transport = base })
}

// TestStalledPeerIsBounded: a member writes large values one after the
// other; each goes as a stream frame to an honest peer and to a peer whose
// streams stall. Every value reaches the honest peer at once, not after the
// stalled peer's stream timeouts; the frames held for the stalled peer stay
// within the bounds, the rest dropped and counted. Frames and bounds are
// scaled down (64 KiB frames, 512 KiB per peer, 2 MiB in all) so that the
// race detector copies little.
func TestStalledPeerIsBounded(t *testing.T) {
	network := memnet.NewNetwork(1)
	var st *stallingTransport
	src := memNode(t, network, "src", nil, func(tr *memnet.Transport) Transport {
		st = &stallingTransport{Transport: tr}
		return st
	})
	honest := memNode(t, network, "honest", []string{src.r.Addr()}, nil)
	stalled := memNode(t, network, "stalled", []string{src.r.Addr()}, nil)
	waitMembers(t, 3, src, honest, stalled)
	const perPeer, total = 512 << 10, 2 << 20
	setStreamBounds(src.r, total, perPeer)
	st.stall(stalled.r.Addr())

	// Each frame to the stalled peer holds its stream until the stream
	// timeout (2 s), and the stalled peer's anti-entropy asks for the
	// values again and again: frames for it pile up at once.
	const values, size = 40, 64 << 10
	for i := range values {
		key, value := fmt.Sprintf("big-%02d", i), bytes.Repeat([]byte{byte(i)}, size)
		src.rep.write(src.r, key, value, false)
		await.Until(t, time.Second, func() bool {
			v, ok := honest.rep.get(key)
			return ok && bytes.Equal(v, value)
		}, "the honest peer never got %s: %v", key, lazy(func() string { return fmt.Sprintf("%+v", src.r.Stats()) }))
	}
	s := src.r.Stats()
	if s.StreamsDroppedPeer == 0 || s.StreamsDropped < s.StreamsDroppedPeer {
		t.Fatalf("%d KiB for a stalled peer, and %d frames dropped (%d for the peer's bound)",
			values*size>>10, s.StreamsDropped, s.StreamsDroppedPeer)
	}
	if held := queuedFor(src.r.streams, "stalled"); held > perPeer {
		t.Fatalf("%d bytes queued for the stalled peer, bound %d", held, perPeer)
	}
	if peak := streamBytesPeak(src.r); peak > total {
		t.Fatalf("the stream queue held up to %d bytes, bound %d", peak, total)
	}
}

// setStreamBounds changes r's stream queue bounds.
func setStreamBounds(r *Replicator, total, perPeer int) {
	r.streams.mu.Lock()
	defer r.streams.mu.Unlock()
	r.streams.maxTotal, r.streams.maxPer = total, perPeer
}

// streamBytesPeak returns the most bytes r held for streams at once.
func streamBytesPeak(r *Replicator) int {
	r.streams.mu.Lock()
	defer r.streams.mu.Unlock()
	return r.streams.peak
}

// lazy formats as what it returns, when the message is formatted: the
// arguments of await.Until are evaluated when it is called.
type lazy func() string

func (l lazy) String() string { return l() }

// TestStreamQueueBounds checks the queue's accounting with a sender that
// blocks for one peer: its frames are bounded per peer, a frame over the
// bound passes when nothing is queued, a broadcast frame counts once in
// the total, and another peer's frames still go out.
func TestStreamQueueBounds(t *testing.T) {
	release := make(chan struct{})
	sent := make(chan string, 16)
	q := newStreamQueue(func(peer string, frame []byte) error {
		if peer == "slow" {
			<-release
		}
		sent <- fmt.Sprintf("%s:%d", peer, len(frame))
		return nil
	}, 100, 40)
	frame := func(n int) *streamFrame { return &streamFrame{b: make([]byte, n)} }
	push := func(peer string, f *streamFrame, want error) {
		t.Helper()
		if err := q.push(peer, f); err != want {
			t.Fatalf("push %d bytes for %s: %v, want %v", len(f.b), peer, err, want)
		}
	}
	push("slow", frame(50), nil) // over the peer's bound, nothing queued: taken (and sent)
	await.Until(t, time.Second, func() bool { return queuedFor(q, "slow") == 0 }, "the sender never took the first frame")
	shared := frame(30)
	push("slow", shared, nil)
	push("slow", frame(10), nil)
	push("slow", frame(1), errPeerStreamsFull) // 40 queued for slow
	push("fast", shared, nil)                  // counted once: 50 + 30 + 10 held
	push("other", frame(20), errStreamsFull)   // 110 > 100
	if got := <-sent; got != "fast:30" {
		t.Fatalf("sent %s first, want fast:30 while slow is stalled", got)
	}
	if q.bytes() != 90 {
		t.Fatalf("holds %d bytes, want 90", q.bytes())
	}
	close(release)
	for _, want := range []string{"slow:50", "slow:30", "slow:10"} {
		if got := <-sent; got != want {
			t.Fatalf("sent %s, want %s", got, want)
		}
	}
	q.close()
	if q.bytes() != 0 || len(q.peers) != 0 {
		t.Fatalf("after close: %d bytes held, %d senders", q.bytes(), len(q.peers))
	}
	push("fast", frame(1), ErrClosed)
}

// TestStreamQueueCloseDropsQueued: close drops what is queued and waits
// only for the frame being written.
func TestStreamQueueCloseDropsQueued(t *testing.T) {
	writing, release := make(chan struct{}), make(chan struct{})
	var sends atomic.Int32
	q := newStreamQueue(func(string, []byte) error {
		if sends.Add(1) == 1 {
			close(writing)
			<-release
		}
		return nil
	}, 100, 100)
	for range 5 {
		if err := q.push("p", &streamFrame{b: make([]byte, 10)}); err != nil {
			t.Fatal(err)
		}
	}
	<-writing
	closed := make(chan struct{})
	go func() { q.close(); close(closed) }()
	await.Until(t, time.Second, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.closed
	}, "close never started")
	close(release)
	<-closed
	if n := sends.Load(); n != 1 {
		t.Fatalf("%d frames written, want only the one in flight at close", n)
	}
	if q.bytes() != 0 {
		t.Fatalf("%d bytes held after close", q.bytes())
	}
}

// queuedFor2 returns the bytes q has queued for peer.
func queuedFor(q *streamQueue, peer string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.peers[peer]; p != nil {
		return p.queued
	}
	return 0
}
