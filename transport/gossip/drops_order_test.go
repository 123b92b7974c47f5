package gossip

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestDropsAreReportedInTheOrderDropped: drops queued by one section
// under the node's lock are reported before those of a later one, also
// when the later section's goroutine reports while the earlier one's
// call is under way (each goroutine reported its own after the lock's
// release, and two receiving goroutines could report theirs out of the
// order the node dropped them: found by review); a call that leads to
// more drops has them reported after it, by the call under way.
func TestDropsAreReportedInTheOrderDropped(t *testing.T) {
	var d dropQueue
	v := func(i int) crdt.Version { return crdt.Version{Key: fmt.Sprint("k", i)} }
	var got []string
	first := make(chan struct{})
	release := make(chan struct{})
	fn := func(x crdt.Version) {
		got = append(got, x.Key)
		if x.Key == "k0" {
			close(first)
			<-release // the first goroutine's call is under way
		}
		if x.Key == "k3" {
			d.push([]crdt.Version{v(4)}) // a drop the call itself led to
			d.deliver(nil)               // delivered by the call under way, not here
		}
	}
	d.push([]crdt.Version{v(0), v(1)})
	var wg sync.WaitGroup
	wg.Go(func() { d.deliver(fn) })
	<-first
	d.push([]crdt.Version{v(2), v(3)}) // a later section, on another goroutine
	d.deliver(fn)                      // returns at once: the first delivers them
	close(release)
	wg.Wait()
	if want := []string{"k0", "k1", "k2", "k3", "k4"}; !slices.Equal(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
	if d.delivering || len(d.q) != 0 {
		t.Fatalf("left delivering %v with %d queued", d.delivering, len(d.q))
	}
}
