package bcache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
)

// TestOnDropMayCloseTheCache: an OnDrop that closes the Cache (we lost
// data: restart) returns, on the default transport. It was called on the
// goroutine reading the socket, which Close waits for: Close waited for
// itself, for ever (found by review).
func TestOnDropMayCloseTheCache(t *testing.T) {
	clock := new(offsetClock)
	path := filepath.Join(t.TempDir(), "edge.snap")
	member := func(name string, onDrop func(string), peers ...string) *Cache {
		cfg := testConfig(name, peers...)
		cfg.Clock = clock.now
		cfg.TombstoneHorizon, cfg.MaxClockDrift, cfg.GCInterval = 2*time.Second, time.Second, 20*time.Millisecond
		if name == "edge" {
			cfg.SnapshotPath, cfg.SnapshotInterval = path, -1
		}
		cfg.OnDrop = onDrop
		return mustNew(t, cfg)
	}
	hub := member("hub", nil)
	defer hub.Close()
	edge := member("edge", nil, hub.Addr())
	if err := hub.Set("a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	waitValue(t, "a", []byte("1"), edge)
	mustClose(t, edge)
	if err := hub.Delete("a"); err != nil {
		t.Fatal(err)
	}
	clock.advance(3 * time.Second) // the edge comes back after the horizon
	await.Until(t, 10*time.Second, func() bool { _, ok := lookup(hub, "a"); return !ok }, "the hub never collected a")

	started := make(chan *Cache)
	closed := make(chan error, 1)
	edge = member("edge", func(string) {
		c := <-started
		select {
		case closed <- c.Close():
		default:
		}
	}, hub.Addr())
	started <- edge
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close from OnDrop: %v", err)
		}
	case <-time.After(30 * time.Second): // a guard: it hung for ever
		t.Fatal("Close called from OnDrop never returned")
	}
}

// TestEveryCloseReturnsTheFirstsError: a second Close (a defer beside a
// signal handler's), or one at the same time, returns the error of the
// one that wrote the snapshot. It returned nil, hiding the loss of every
// write since the last snapshot (found by review).
func TestEveryCloseReturnsTheFirstsError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.snap")
	c := mustNew(t, syncConfig(path, SyncInterval))
	if err := c.Set("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	// A non-empty directory where the snapshot goes: its rename fails.
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 2 {
		wg.Go(func() { errs[i] = c.Close() })
	}
	wg.Wait()
	errs[2] = c.Close()
	for i, err := range errs {
		if err == nil {
			t.Fatalf("Close %d returned nil; the snapshot failed (%v)", i, errs)
		}
	}
}

// hookCtx runs hook the first time its Err is asked.
type hookCtx struct {
	context.Context
	once sync.Once
	hook func()
}

func (h *hookCtx) Err() error {
	h.once.Do(h.hook)
	return h.Context.Err()
}

// TestNoFillerStartsAfterClose: a fill that a Close overtakes (Close runs
// between GetWithFiller's checks and its fill) does not start the
// Filler: it ran after Close had returned (found by review).
func TestNoFillerStartsAfterClose(t *testing.T) {
	c := mustNew(t, testConfig("solo"))
	ctx := &hookCtx{Context: context.Background(), hook: func() { c.Close() }}
	ran := make(chan struct{}, 1)
	_, err := c.GetWithFiller(ctx, "k", func(context.Context, string) ([]byte, error) {
		ran <- struct{}{}
		return []byte("v"), nil
	}, 0)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("GetWithFiller overtaken by Close: %v, want ErrClosed", err)
	}
	select { // a filler started runs at once: half a second is plenty
	case <-ran:
		t.Fatal("the filler ran after Close had returned")
	case <-time.After(500 * time.Millisecond):
	}
}

// calledFromFill says the caller's caller runs within (*Cache).fill.
func calledFromFill() bool {
	pc := make([]uintptr, 16)
	frames := runtime.CallersFrames(pc[:runtime.Callers(3, pc)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "bcache.(*Cache).fill") {
			return true
		}
		if !more {
			return false
		}
	}
}

// TestNoFillerStartsAfterCloseReturned: a Close that runs between a
// fill's check of Close and its filler's start returns only once the
// filler has started (the filler started after Close had returned: found
// by review). The Cache's clock, which the fill reads in between, starts
// the Close there and waits a while for it to return.
func TestNoFillerStartsAfterCloseReturned(t *testing.T) {
	var c *Cache
	var armed atomic.Bool
	var once sync.Once
	closed := make(chan struct{})
	cfg := testConfig("solo")
	cfg.Clock = func() time.Time {
		if armed.Load() && calledFromFill() {
			once.Do(func() {
				go func() { c.Close(); close(closed) }()
				select { // Close must not return before the filler starts: give it the time to
				case <-closed:
				case <-time.After(300 * time.Millisecond):
				}
			})
		}
		return time.Now()
	}
	c = mustNew(t, cfg)
	afterClose := make(chan bool, 1)
	armed.Store(true)
	c.GetWithFiller(context.Background(), "k", func(context.Context, string) ([]byte, error) {
		select {
		case <-closed:
			afterClose <- true
		default:
			afterClose <- false
		}
		return []byte("v"), nil
	}, 0)
	if <-afterClose {
		t.Fatal("the filler started after Close had returned")
	}
	<-closed
}

// TestNoQueuedDropIsReportedAfterClose: keys queued for OnDrop when Close
// ran are not reported after it returns (the reporting goroutine's select
// took a queued key or the end at random, and reported up to the 1,024
// queued afterwards: found by review). OnDrop is busy with a first key at
// Close, 99 more queued.
func TestNoQueuedDropIsReportedAfterClose(t *testing.T) {
	for round := range 10 {
		var closedAt atomic.Bool
		var late atomic.Int32
		first := make(chan struct{})
		release := make(chan struct{})
		var once sync.Once
		cfg := testConfig("solo")
		cfg.OnDrop = func(key string) {
			if closedAt.Load() {
				late.Add(1)
			}
			once.Do(func() { close(first); <-release })
		}
		c := mustNew(t, cfg)
		for i := range 100 {
			c.dropped(crdt.Version{Key: fmt.Sprint("k", i)})
		}
		<-first // OnDrop is under way with the first key; 99 wait
		mustClose(t, c)
		closedAt.Store(true)
		close(release)
		time.Sleep(50 * time.Millisecond)
		if n := late.Load(); n > 0 {
			t.Fatalf("round %d: %d OnDrop calls started after Close returned", round, n)
		}
	}
}

// TestAFillRefusedAtCloseIsNoFillerCall: a fill that Close overtakes
// before its filler starts runs no filler, and Stats.Fills (filler calls
// run here) and Stats.FillErrors (those that failed) do not count it
// (they counted one, failed). The fill is called as GetWithFiller's
// goroutine calls it, after Close.
func TestAFillRefusedAtCloseIsNoFillerCall(t *testing.T) {
	c := mustNew(t, testConfig("solo"))
	mustClose(t, c)
	ran := false
	_, err := c.fill(context.Background(), "k", func(context.Context, string) ([]byte, error) {
		ran = true
		return []byte("v"), nil
	}, 0, false)
	if !errors.Is(err, ErrClosed) || ran {
		t.Fatalf("a fill after Close: %v (filler ran: %v), want ErrClosed and no filler", err, ran)
	}
	if s := c.Stats(); s.Fills != 0 || s.FillErrors != 0 {
		t.Fatalf("no filler ran: Stats.Fills = %d, FillErrors = %d; want 0, 0", s.Fills, s.FillErrors)
	}
}
