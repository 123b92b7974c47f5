package bcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/bcache-go/bcache/internal/await"
	"github.com/bcache-go/bcache/internal/clusterfill"
	"github.com/bcache-go/bcache/internal/journal"
	"github.com/bcache-go/bcache/transport/gossip"
	"github.com/bcache-go/bcache/transport/gossip/memnet"
)

// failingSends is a transport whose next fail datagrams holding marker
// fail to send at once (a full socket buffer, a firewall's EPERM).
type failingSends struct {
	gossip.Transport
	marker []byte
	fail   atomic.Int32
	failed atomic.Int32
}

func (f *failingSends) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if bytes.Contains(b, f.marker) && f.fail.Add(-1) >= 0 {
		f.failed.Add(1)
		return time.Time{}, errors.New("sendto: no buffer space available")
	}
	return f.Transport.WriteToAddress(b, a)
}

func (f *failingSends) WriteTo(b []byte, addr string) (time.Time, error) {
	return f.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// TestFillRequestThatFailsToSendIsSentAgain: the datagram asking the
// owner to fill a key fails to send at once. The owner, filling the key
// for its own reader, never got it: the asker asks again (within its fill
// timeout) and joins that fill, rather than fill the key a second time in
// the cluster (it filled itself at once, found by review).
func TestFillRequestThatFailsToSendIsSentAgain(t *testing.T) {
	mn := memnet.NewNetwork(1)
	release := make(chan struct{})
	var ownerRuns, askerRuns atomic.Int32
	w := onMemnetWith(t, mn, "w", Config{FillTimeout: 10 * time.Second, Filler: func(ctx context.Context, _ string) ([]byte, error) {
		ownerRuns.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return []byte("w"), nil
	}})
	tr, err := mn.NewTransport("r")
	if err != nil {
		t.Fatal(err)
	}
	var key string // one w owns, seen by either
	for i := 0; ; i++ {
		if key = fmt.Sprint("sendfail-key-", i); clusterfill.Owner(key, "r", []string{"w", "r"}) == "w" {
			break
		}
	}
	fs := &failingSends{Transport: tr, marker: []byte(key)}
	r := newCache(t, Config{NodeName: "r", Network: fs, Peers: []string{w.Addr()}, Timings: FastTimings(), FillTimeout: 10 * time.Second,
		Filler: func(context.Context, string) ([]byte, error) { askerRuns.Add(1); return []byte("r"), nil }})
	for _, c := range []*Cache{w, r} {
		await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 2 }, "%s sees %d members", c.Name(), len(c.Members()))
	}
	if r.owner(key) != "w" || w.owner(key) != "w" {
		t.Fatalf("%q is owned by %s in r's view, %s in w's; want w", key, r.owner(key), w.owner(key))
	}
	// The owner's own reader starts the fill, which hangs until released.
	ownerGot := make(chan string, 1)
	go func() { v, _ := w.GetOrFill(context.Background(), key); ownerGot <- string(v) }()
	await.Until(t, 10*time.Second, func() bool { return ownerRuns.Load() == 1 }, "the owner's fill never began")
	fs.fail.Store(1) // the asker's first request datagram fails to send
	type result struct {
		v   []byte
		err error
	}
	askerGot := make(chan result, 1)
	go func() { v, err := r.GetOrFill(context.Background(), key); askerGot <- result{v, err} }()
	var res result
	var answered bool
	await.Until(t, 15*time.Second, func() bool {
		if !answered {
			select {
			case res = <-askerGot:
				answered = true
			default:
			}
		}
		return answered || w.Stats().FillsForPeers == 1
	}, "the asker neither returned nor reached the owner")
	if n := fs.failed.Load(); n != 1 {
		t.Fatalf("%d sends failed, want 1 (the test's marker missed the request)", n)
	}
	close(release)
	if !answered {
		res = <-askerGot
	}
	if res.err != nil || string(res.v) != "w" || askerRuns.Load() != 0 {
		t.Fatalf("asker: %q, %v, its filler run %d times; want the owner's value, its own filler never run (the key filled twice in the cluster)", res.v, res.err, askerRuns.Load())
	}
	if v := <-ownerGot; v != "w" || ownerRuns.Load() != 1 {
		t.Fatalf("owner: %q, its filler run %d times; want w, once", v, ownerRuns.Load())
	}
}

// TestOwnersSlowSyncIsBoundedByTheFillTimeout: an owner with SyncWrite
// whose fsync hangs answers a fill request by about its fill timeout,
// with the value it filled (a filled value need not be durable: a read
// after a crash fills it again). It answered once the sync ended,
// however long that took, past the time its asker waits for an answer
// (the fill timeout and a margin), and the asker filled the key again
// (found by review).
func TestOwnersSlowSyncIsBoundedByTheFillTimeout(t *testing.T) {
	var armed atomic.Bool
	release := make(chan struct{})
	// Restored after the Caches' cleanups have closed their Logs; the
	// syncs are freed before those cleanups (Close waits for them).
	t.Cleanup(journal.SetSyncForTest(func(f *os.File) error {
		if armed.Load() {
			<-release
		}
		return f.Sync()
	}))
	defer close(release)
	mn := memnet.NewNetwork(1)
	w := onMemnetWith(t, mn, "w", Config{FillTimeout: time.Second, SnapshotPath: filepath.Join(t.TempDir(), "w.snap"), SnapshotInterval: -1, Sync: SyncWrite,
		Filler: func(context.Context, string) ([]byte, error) { return []byte("w"), nil }})
	r := onMemnetWith(t, mn, "r", Config{}, w.Addr())
	for _, c := range []*Cache{w, r} {
		await.Until(t, 10*time.Second, func() bool { return len(c.Members()) == 2 }, "%s sees %d members", c.Name(), len(c.Members()))
	}
	armed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	start := time.Now()
	b, err := r.repl.Call(ctx, "w", clusterfill.Request(clusterfill.FillRequest, "slow-sync"))
	took := time.Since(start)
	if err != nil {
		t.Fatalf("the owner, its sync hanging, did not answer within %v: %v (its fill timeout is 1 s)", took.Round(time.Millisecond), err)
	}
	// It answered, after twice its fill timeout (its callers' backstop),
	// that its fill timed out: its asker had given up after its fill
	// timeout and a second, and the value was filled and stored.
	if rec, ok := clusterfill.Record(b, "slow-sync"); !ok || string(rec.Value) != "w" {
		t.Fatalf("the owner answered %q after %v, want its filled value by its fill timeout", b, took.Round(time.Millisecond))
	}
	// Its own caller too gets the value, not ErrFillTimeout.
	if v, err := w.GetWithFiller(ctx, "slow-sync-2", func(context.Context, string) ([]byte, error) { return []byte("v2"), nil }, 0); err != nil || string(v) != "v2" {
		t.Fatalf("GetWithFiller on the owner, its sync hanging: %q, %v; want the value filled", v, err)
	}
}
