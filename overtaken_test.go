package bcache

import (
	"context"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// TestStalledWriteIsStampedAgain: a write applied seconds after its
// stamp, once a session's cut has passed it (a writer descheduled
// between its clock and its store), is written again with a new
// timestamp, and reaches the peer; a write applied at once keeps its
// stamp.
func TestStalledWriteIsStampedAgain(t *testing.T) {
	net := memnet.NewNetwork(1)
	peer := onMemnet(t, net, "a")
	writer := onMemnet(t, net, "b", peer.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := writer.WaitSynced(ctx); err != nil { // a session with the peer: the writer has reported a cut
		t.Fatal(err)
	}
	stale := writer.clock.Now()
	stale.Wall -= int64(5 * time.Second)
	got, err := writer.write("set", crdt.Record{Key: "k", Value: []byte("v"), Time: stale})
	if err != nil {
		t.Fatal(err)
	}
	if !stale.Less(got.Time) || got.Time.Wall < stale.Wall+int64(4*time.Second) {
		t.Fatalf("a write stamped 5 s before a session's cut was kept at %v (stamped %v)", got.Time, stale)
	}
	await.Until(t, 10*time.Second, func() bool { v, ok := peer.Get("k"); return ok && string(v) == "v" },
		"the write stamped again did not reach the peer")
	fresh := writer.clock.Now()
	if got, err := writer.write("set", crdt.Record{Key: "k", Value: []byte("w"), Time: fresh}); err != nil || got.Time != fresh {
		t.Fatalf("a write applied at once was stamped again: %v (stamped %v), %v", got.Time, fresh, err)
	}
}
