package evict

import (
	"fmt"
	"testing"
)

// firstFill returns a policy for n entries that took n values, k0 to
// k(n-1), each read once as it came if read says so, and one more, unread:
// the write past the bound, whose Victim the caller asks for. es holds
// the n+1 entries in order.
func firstFill(n int, read func(i int) bool) (p *Policy[*entry], es []*entry) {
	p = new(Policy[*entry])
	p.Init(n)
	es = make([]*entry, n+1)
	for i := range es {
		es[i] = newEntry(fmt.Sprint("k", i))
		p.Add(es[i], New)
		if i < n && read(i) {
			Touch(es[i].Use())
		}
	}
	return p, es
}

// TestFirstVictimMovesAFewUnreadValues: until a cache is first full no
// value leaves the small queue, so the first Victim finds it holding
// every entry. While the cache first fills, an unread value leaving it
// takes the main queue's room (the first fill's rule), and the first
// Victim moved every one the room took, 90% of the cache, under the
// store's eviction lock: 80-90 ms at a bound of 1,000,000 entries. Each
// call moves maxMoves at most, and the rest follow, as many a write.
func TestFirstVictimMovesAFewUnreadValues(t *testing.T) {
	const n = 20_000
	// One value read: the first fill's rule is on once it reaches the
	// main queue.
	p, es := firstFill(n, func(i int) bool { return i == 0 })
	v, ok := p.Victim(0)
	if !ok {
		t.Fatal("no victim")
	}
	// es[0] moved, read; maxMoves-1 unread values after it took the main
	// queue's room; the next one went.
	if got := p.main.len(); got != maxMoves || got > n/100 {
		t.Fatalf("the first Victim moved %d values to the main queue, want %d", got, maxMoves)
	}
	if v != es[maxMoves] {
		t.Fatalf("victim %s, want %s (the oldest value not moved)", v.name, es[maxMoves].name)
	}
	// The next calls go on where it stopped, maxMoves each, and the main
	// queue's room fills as it did in one call (all but a few of the
	// small queue's share).
	for i := 0; p.main.len() < n/2; i++ {
		before := p.main.len()
		e := newEntry(fmt.Sprint("next", i))
		p.Add(e, New)
		if _, ok := p.Victim(0); !ok {
			t.Fatal("no victim")
		}
		if moved := p.main.len() - before; moved < 1 || moved > maxMoves {
			t.Fatalf("write %d past the bound: %d values moved to the main queue, want 1 to %d", i+2, moved, maxMoves)
		}
	}
}

// TestFirstVictimSparesTheNewestUnread: the first write past a bound of
// 1,000 entries, every value read but the newest 50. The first Victim
// moves maxMoves read values to the main queue and then takes the first
// unread value near the small queue's front: that was one of the 50,
// written fewer writes ago than the small queue holds at its share (a
// tenth), unread because its reads had not come yet. Only a value as old
// as that goes so; here none is, and the main queue's victim goes, the
// oldest value, as LRU's.
func TestFirstVictimSparesTheNewestUnread(t *testing.T) {
	const n, unread = 1000, 50
	p, es := firstFill(n, func(i int) bool { return i < n-unread })
	v, ok := p.Victim(0)
	if !ok {
		t.Fatal("no victim")
	}
	if v != es[0] {
		t.Fatalf("victim %s, want %s (the oldest value)", v.name, es[0].name)
	}
}

// TestFirstVictimOfAllReadValuesIsQuick: a cache whose every value was
// read before it first filled moved them all to the main queue in the
// first Victim (400-550 ms at 1,000,000 entries). Past maxMoves the call
// takes the first unread value near the small queue's front, leaving
// the read ones before it in place, and, with none, the main queue's
// victim: the oldest value, as it was when every value moved.
func TestFirstVictimOfAllReadValuesIsQuick(t *testing.T) {
	const n = 20_000
	for _, unreadAt := range []int{500, -1} { // an unread value 500 from the front; none
		p, es := firstFill(n, func(i int) bool { return i != unreadAt })
		v, ok := p.Victim(0)
		if !ok {
			t.Fatal("no victim")
		}
		held := maxMoves // moved
		if unreadAt < 0 {
			held-- // and the victim one of them
		}
		if got := p.main.len(); got != held || got > n/100 {
			t.Fatalf("unread at %d: the main queue holds %d values after the first Victim, want %d", unreadAt, got, held)
		}
		want := es[0] // every value read: the oldest, from the main queue
		if unreadAt >= 0 {
			want = es[unreadAt]
		}
		if v != want {
			t.Fatalf("unread at %d: victim %s, want %s", unreadAt, v.name, want.name)
		}
		// The next writes go on: the values read reach the main queue,
		// maxMoves a write, none of them evicted while an unread one is
		// near (nor from the main queue while it holds maxSweep values
		// or fewer: past them, a victim search of values all read takes
		// one with reads, TestMainVictimSearchIsBounded).
		for i := 0; p.small.len()*10 > p.Len() && p.main.len() <= maxSweep; i++ {
			e := newEntry(fmt.Sprint("next", i))
			p.Add(e, New)
			if v, ok := p.Victim(0); !ok {
				t.Fatal("no victim")
			} else if freq(v.Use().Load()) > 0 && v != es[0] && unreadAt >= 0 {
				t.Fatalf("write %d: victim %s was read", i, v.name)
			}
		}
	}
}

// TestReadPeersWritesMoveAFewAtATime: peers' writes read here move to the
// small queue as the policy comes to them; past maxMoves in one call the
// next one goes whatever its reads.
func TestReadPeersWritesMoveAFewAtATime(t *testing.T) {
	const n = 20_000
	var p Policy[*entry]
	p.Init(n)
	for i := range n + 1 {
		e := newEntry(fmt.Sprint("k", i))
		e.written = int64(i)
		p.Add(e, Received)
		Touch(e.Use())
	}
	if _, ok := p.Victim(0); !ok {
		t.Fatal("no victim")
	}
	if got := p.small.len(); got != maxMoves || got > n/100 {
		t.Fatalf("the first Victim moved %d peers' writes to the small queue, want %d", got, maxMoves)
	}
	for range 3 * n { // and every entry can go, one a call
		if _, ok := p.Victim(0); !ok {
			break
		}
	}
	if p.Len() != 0 {
		t.Fatalf("%d entries left that Victim does not give", p.Len())
	}
}

// TestMainVictimSearchIsBounded: a victim search of a main queue whose
// every value was read since its last pass sent them all round again,
// up to four times, under the store's eviction lock (56-65 ms at a
// million entries); it sends maxSweep round at most, and then takes the
// value at the front whatever its reads. An unread value within maxSweep
// of the front is the victim, as before.
func TestMainVictimSearchIsBounded(t *testing.T) {
	const n = 20_000 // over maxSweep
	for _, unreadAt := range []int{maxSweep - 1, maxSweep, -1} {
		p, es := readMainQueue(n, n, maxFreq, unreadAt)
		v, ok := p.mainVictim()
		if !ok {
			t.Fatal("no victim")
		}
		want, sent := es[maxSweep], maxSweep // the front once maxSweep went round
		if unreadAt == maxSweep-1 {
			want, sent = es[unreadAt], unreadAt
		}
		if v != want {
			t.Fatalf("unread at %d: victim %s, want %s", unreadAt, v.name, want.name)
		}
		round := 0 // values sent round: one read less to their credit
		for i, e := range es {
			if i != unreadAt && freq(e.Use().Load()) < maxFreq {
				round++
			}
		}
		if round != sent {
			t.Fatalf("unread at %d: %d values went round, want %d", unreadAt, round, sent)
		}
	}
}

// readMainQueue returns a policy of capacity whose main queue holds n
// entries, k0 at the front, each read reads times but the one at unread
// (-1: none).
func readMainQueue(capacity, n, reads, unread int) (*Policy[*entry], []*entry) {
	p := new(Policy[*entry])
	p.Init(capacity)
	es := make([]*entry, n)
	for i := range es {
		es[i] = newEntry(fmt.Sprint("k", i))
		p.main.push(es[i])
		if i != unread {
			for range reads {
				Touch(es[i].Use())
			}
		}
	}
	return p, es
}
