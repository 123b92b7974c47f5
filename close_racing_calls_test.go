package bcache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/await"
)

// TestCloseRacingEveryCallReturns: Close called from several goroutines at
// once, while callers wait in GetAfter (for a write no peer has), a
// subscriber reads, and writers and readers run: every Close returns the same nil, every waiter returns
// ErrClosed, the subscription's C closes, and nothing hangs (Close's doc:
// idempotent, every call returns the first one's error, afterwards every
// call returns ErrClosed).
func TestCloseRacingEveryCallReturns(t *testing.T) {
	other := newCache(t, testConfig("other"))
	tok, err := other.SetWithToken("k", []byte("v"), 0) // a write only other holds
	if err != nil {
		t.Fatal(err)
	}
	a := newCache(t, testConfig("a"))
	c := newCache(t, testConfig("c", a.Addr()))
	sub, err := c.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	waiterErrs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			_, _, err := c.GetAfter(ctx, "k", tok)
			waiterErrs <- err
		})
	}
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.Set("w", []byte("x"), time.Second)
				c.Get("w")
				c.Delete("w")
				c.Stats()
				c.Status()
				c.Members()
			}
		})
	}
	wg.Go(func() {
		for range sub.C {
		}
	})
	await.Until(t, 10*time.Second, func() bool { // the readers wait, and pull
		c.feed.mu.Lock()
		defer c.feed.mu.Unlock()
		return c.feed.waiting == 4
	}, "the readers never waited")
	closeErrs := make([]error, 4)
	var closers sync.WaitGroup
	for i := range closeErrs {
		closers.Go(func() { closeErrs[i] = c.Close() })
	}
	done := make(chan struct{})
	go func() { closers.Wait(); close(stop); wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Close, or a call racing it, hangs")
	}
	for i, err := range closeErrs {
		if err != nil {
			t.Errorf("Close %d: %v", i, err)
		}
	}
	close(waiterErrs)
	for err := range waiterErrs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("GetAfter waiting as Close ran: %v, want ErrClosed", err)
		}
	}
	if err := c.WaitSynced(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitSynced after Close: %v", err)
	}
}
