package gossip

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/await"
)

// TestACallThatDroppedNothingDeliversNoDrops: a call whose section under
// the node's lock dropped nothing (Hurry, a reader's) does not take over
// the delivery of drops another section queued and has yet to deliver:
// with an OnDrop that waits (the Cache's, past its 1,024 keys queued), the
// caller waited in it (the loop likewise, its timers and writes held up
// by others' drops). The Cache's OnDrop may call the Cache: one that
// hurried a read (a token's wait) waited for itself, for ever.
func TestACallThatDroppedNothingDeliversNoDrops(t *testing.T) {
	block := make(chan struct{})
	called := make(chan crdt.Version, 8)
	a := startNode(t, "a", nil, func(c *Config) {
		c.Protocol.AntiEntropyInterval = time.Hour // the loop sleeps
		c.OnDrop = func(v crdt.Version) {
			called <- v
			<-block
		}
	})
	defer close(block)
	// Another goroutine's section queued a drop under the node's lock,
	// and has not delivered it yet.
	a.r.drops.push([]crdt.Version{{Key: "k"}})
	done := make(chan struct{})
	go func() {
		a.r.Hurry()
		close(done)
	}()
	select {
	case <-done:
	case v := <-called:
		t.Fatalf("a call that dropped nothing (Hurry's, or the loop's) delivered %v, another's drop, and waits in OnDrop", v)
	case <-time.After(5 * time.Second):
		t.Fatal("Hurry did not return")
	}
	// The section that queued it delivers it.
	go a.r.drops.deliver(a.r.cfg.OnDrop)
	select {
	case v := <-called:
		if v.Key != "k" {
			t.Fatalf("delivered %v", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the queued drop was not delivered")
	}
}

// TestDropsQueuedWhileOnDropWaitsAreBounded: while OnDrop waits (the
// Cache's, past its 1,024 keys queued: "replication waits"), the
// sections that drop more wait too once maxDropsQueued are queued, as
// each goroutine did when it delivered its own: the queue took every
// drop of every other goroutine meanwhile, without a bound (a key
// holder's answers drop values as fast as it sends them).
func TestDropsQueuedWhileOnDropWaitsAreBounded(t *testing.T) {
	var d dropQueue
	release := make(chan struct{})
	var got []string
	fn := func(v crdt.Version) {
		if len(got) == 0 {
			<-release // OnDrop waits
		}
		got = append(got, v.Key)
	}
	d.push([]crdt.Version{{Key: "k0"}})
	first := make(chan struct{})
	go func() { close(first); d.deliver(fn) }()
	<-first
	await.Until(t, 5*time.Second, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.delivering && len(d.q) == 0 }, "no delivery under way")
	const sections = 3 * maxDropsQueued
	var pushed atomic.Int64
	done := make(chan struct{})
	go func() { // sections of another goroutine, one drop each
		defer close(done)
		for i := 1; i <= sections; i++ {
			d.push([]crdt.Version{{Key: fmt.Sprint("k", i)}})
			d.deliver(fn)
			pushed.Add(1)
		}
	}()
	// The sections push one drop each: the one that finds the bound
	// passed waits, with maxDropsQueued+1 queued and every section
	// before it returned. Unbounded, the queue goes past that at once.
	var queued int
	await.Until(t, 5*time.Second, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		queued = len(d.q)
		return queued > maxDropsQueued
	}, "the sections queued fewer drops than the bound")
	if queued > maxDropsQueued+1 || pushed.Load() != maxDropsQueued {
		t.Fatalf("%d drops queued (%d sections returned) while OnDrop waits, bound %d", queued, pushed.Load(), maxDropsQueued)
	}
	close(release)
	<-done
	await.Until(t, 5*time.Second, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return !d.delivering }, "delivery never ended")
	if len(got) != sections+1 {
		t.Fatalf("delivered %d, want %d", len(got), sections+1)
	}
	for i, k := range got {
		if k != fmt.Sprint("k", i) {
			t.Fatalf("delivered %s at %d: out of order", k, i)
		}
	}
}
