package transport

import (
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/store"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestStepBackAfterAForwardStepMovesAStartBeforeTheNode documents what the
// proptest harness's first-sync check must allow: a session a starts on
// its clock at P, then its clock steps 1 s ahead and back (a skew of 1 s,
// then 0), and the step back moves the session's start back by the whole
// step, though the start was read before the step ahead: the first sync
// is said to begin 1 s before the node was created (safe lower for a
// synced mark; but the harness took "a step back moves a start back by no
// more than the step" for "never below the least skew", and failed the
// run, "made its first sync in an exchange it says began at T, before its
// incarnation").
func TestStepBackAfterAForwardStepMovesAStartBeforeTheNode(t *testing.T) {
	p := newStorePair(t, Config{}, store.Config{Shards: 16, DigestBits: 8})
	for i := range 10 {
		p.write("b", crdt.Record{Key: fmt.Sprintf("key-%d", i), Value: []byte("v")})
	}
	a := p.nodes["a"]
	born := p.now.Now()
	var held []hop
	p.run("a", a.StartSession("b", born), func(h hop, m wire.Message) bool { // skew 0
		if _, ok := m.(*wire.Versions); ok && h.from == "a" {
			held = append(held, h) // the digests compared: the session past its opening
			return true
		}
		return false
	}, nil)
	if len(held) == 0 {
		t.Fatal("no Versions from a")
	}
	a.Tick(born + int64(time.Second)) // skew 1 s
	a.Tick(born)                      // skew 0 again: a step back of 1 s
	for _, h := range held {
		p.run(h.from, []Envelope{h.e}, nil, nil)
	}
	peer, start := a.FirstSyncWith()
	t.Logf("a's first sync with %q began at %d, a was created at %d (%v before)", peer, start, born, time.Duration(born-start))
	if peer != "b" {
		t.Fatalf("a's first sync is with %q, want b", peer)
	}
	if start != born-int64(time.Second) {
		t.Errorf("start %d, want %d: the step back moved it by the whole step", start, born-int64(time.Second))
	}
}
