package evict

import (
	"fmt"
	"testing"
)

// TestSmallQueueSearchPassesFewHoles: past maxMoves, Victim looks for an
// unread value among the next maxPeek entries of the small queue; the
// search counted entries alone, and went through every hole in between
// (keys deleted or expired: their positions stay until the queue is
// compacted, which only a push starts, and which never runs while the
// holes are no more than the entries). A run of holes after the read
// values at the front was gone through again by every such call, each
// write of a cache bounded at a million entries scanning up to a million
// positions under the store's eviction lock (found by review). It looks
// at 2*maxPeek positions at most: the victim it returns lies within them.
func TestSmallQueueSearchPassesFewHoles(t *testing.T) {
	const holes = 50_000
	p := new(Policy[*entry])
	p.Init(1_000_000)
	mk := func(name string) *entry { return newEntry(name) }
	for i := range 1 { // the main queue's value, unread
		p.main.push(mk(fmt.Sprint("m", i)))
	}
	for i := range maxMoves + 1 { // read at the small queue's front
		e := mk(fmt.Sprint("r", i))
		p.small.push(e)
		Touch(e.Use())
	}
	gone := make([]*entry, holes) // deleted: holes
	for i := range gone {
		gone[i] = mk(fmt.Sprint("d", i))
		p.small.push(gone[i])
	}
	unread := mk("u")
	p.small.push(unread)
	for i := range 20 { // unread too: the small queue over its share once the read values moved
		p.small.push(mk(fmt.Sprint("u", i)))
	}
	for _, e := range gone {
		p.Remove(e)
	}
	front := p.small.head
	v, ok := p.Victim(p.Len())
	if !ok {
		t.Fatal("no victim")
	}
	if v == unread {
		t.Fatalf("the small queue's search went through %d positions (%d holes) for its victim, want %d at most",
			p.small.tail-1-front, holes, 2*maxPeek)
	}
}

// TestQueueFindLooksAtFewPositions: find(n) looks at 2n positions at
// most, holes included.
func TestQueueFindLooksAtFewPositions(t *testing.T) {
	q := fifo[*entry]{id: smallQueue}
	var gone []*entry
	for i := range 100 {
		e := newEntry(fmt.Sprint(i))
		q.push(e)
		if i < 99 {
			gone = append(gone, e)
		}
	}
	for _, e := range gone {
		q.remove(e)
	}
	if _, ok := q.find(10, func(*entry) bool { return true }); ok {
		t.Fatal("find(10) went past 99 holes")
	}
	if e, ok := q.find(50, func(*entry) bool { return true }); !ok || e.name != "99" {
		t.Fatal("find(50) missed the entry 99 positions in")
	}
}
