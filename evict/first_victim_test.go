package evict

import (
	"fmt"
	"testing"
)

// TestFirstVictimMovesAFewUnreadValues: until a cache is first full no
// value leaves the small queue, so the first Victim finds it holding
// every entry. While the cache first fills, an unread value leaving it
// takes the main queue's room (the first fill's rule), and the first
// Victim moved every one the room took, 90% of the cache, under the
// store's eviction lock: 80-90 ms at a bound of 1,000,000 entries. Each
// call moves maxPlaced at most, and the rest follow, as many a write.
func TestFirstVictimMovesAFewUnreadValues(t *testing.T) {
	const n = 20_000
	var p Policy[*entry]
	p.Init(n)
	es := make([]*entry, n+1)
	for i := range es {
		es[i] = newEntry(fmt.Sprint("k", i))
		if i == n {
			break // the write past the bound
		}
		p.Add(es[i], New)
	}
	Touch(es[0].Use()) // one value read: the first fill's rule is on once it reaches the main queue
	p.Add(es[n], New)
	v, ok := p.Victim(0)
	if !ok {
		t.Fatal("no victim")
	}
	// es[0] moved, read; maxPlaced unread values after it took the main
	// queue's room; the next one went.
	if got := p.main.len(); got != 1+maxPlaced || got > n/100 {
		t.Fatalf("the first Victim moved %d values to the main queue, want %d", got, 1+maxPlaced)
	}
	if v != es[1+maxPlaced] {
		t.Fatalf("victim %s, want %s (the oldest value not moved)", v.name, es[1+maxPlaced].name)
	}
	// The next calls go on where it stopped, maxPlaced each, and the main
	// queue's room fills as it did in one call (all but a few of the
	// small queue's share).
	for i := 0; p.main.len() < n/2; i++ {
		before := p.main.len()
		e := newEntry(fmt.Sprint("next", i))
		p.Add(e, New)
		if _, ok := p.Victim(0); !ok {
			t.Fatal("no victim")
		}
		if moved := p.main.len() - before; moved < 1 || moved > maxPlaced {
			t.Fatalf("write %d past the bound: %d values moved to the main queue, want 1 to %d", i+2, moved, maxPlaced)
		}
	}
}
