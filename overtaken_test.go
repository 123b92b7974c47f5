package bcache

import (
	"context"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// syncedPair returns a writer that has reported a cut to its peer (a
// completed session) and the peer.
func syncedPair(t *testing.T) (writer, peer *Cache) {
	t.Helper()
	net := memnet.NewNetwork(1)
	peer = onMemnet(t, net, "a")
	writer = onMemnet(t, net, "b", peer.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := writer.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	return writer, peer
}

// stamped returns a stamp of writer's clock moved back by d: a write made
// d before it is applied (its goroutine descheduled between the two).
func stamped(writer *Cache, d time.Duration) crdt.Timestamp {
	ts := writer.clock.Now()
	ts.Wall -= int64(d)
	return ts
}

// TestStalledWriteIsStampedAgain: a write applied seconds after its
// stamp, once a session's cut has passed it, is stamped again as it is
// applied, once (a subscriber sees one change, with the new stamp), and
// reaches the peer; a write applied at once keeps its stamp.
func TestStalledWriteIsStampedAgain(t *testing.T) {
	writer, peer := syncedPair(t)
	sub, err := writer.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	stale := stamped(writer, 5*time.Second)
	got, err := writer.write("set", crdt.Record{Key: "k", Value: []byte("v"), Time: stale})
	if err != nil {
		t.Fatal(err)
	}
	if !stale.Less(got.Time) || got.Time.Wall < stale.Wall+int64(4*time.Second) || writer.store.Stats().Restamped != 1 {
		t.Fatalf("a write stamped 5 s before a session's cut was kept at %v (stamped %v), restamped %d", got.Time, stale, writer.store.Stats().Restamped)
	}
	r := &reader{sub: sub}
	if ch := r.next(t); ch.Key != "k" || ch.Version != got.Time {
		t.Fatalf("the change is %s at %v, want k at %v", ch.Key, ch.Version, got.Time)
	}
	await.Until(t, 10*time.Second, func() bool { v, ok := peer.Get("k"); return ok && string(v) == "v" },
		"the write stamped again did not reach the peer")
	fresh := writer.clock.Now()
	if got, err := writer.write("set", crdt.Record{Key: "k", Value: []byte("w"), Time: fresh}); err != nil || got.Time != fresh {
		t.Fatalf("a write applied at once was stamped again: %v (stamped %v), %v", got.Time, fresh, err)
	}
	if ch := r.next(t); string(ch.Value) != "w" || len(r.left) != 0 {
		t.Fatalf("after the fresh write: %+v, and %d more changes: the stalled write was reported twice?", ch, len(r.left))
	}
}

// TestStalledWriteDoesNotBeatANewerOne: a stalled write whose key already
// holds a newer version loses to it, as stamped: stamped again, it beat
// the write made after it (found by review).
func TestStalledWriteDoesNotBeatANewerOne(t *testing.T) {
	writer, _ := syncedPair(t)
	stale := stamped(writer, 5*time.Second)
	if !writer.repl.Overtaken(stale) {
		t.Fatal("a stamp 5 s before the cut is not overtaken: the test shows nothing")
	}
	if err := writer.Set("k", []byte("newer"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.write("set", crdt.Record{Key: "k", Value: []byte("older"), Time: stale}); err != nil {
		t.Fatal(err)
	}
	if v, _ := writer.Get("k"); string(v) != "newer" || writer.store.Stats().Restamped != 0 {
		t.Fatalf("k = %q (restamped %d): the stalled write beat the newer one", v, writer.store.Stats().Restamped)
	}
}
