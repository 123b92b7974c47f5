// Package lru is bcache's local eviction policy: CLOCK, also called second
// chance, an approximation of least-recently-used that lets readers mark
// an entry as used with one atomic store instead of moving it in a list
// under a lock.
//
// The cache adds every entry that becomes resident (a key written again
// keeps its entry) and removes entries that stop being resident (deleted,
// collected). Readers set the entry's
// reference mark. When the cache is over its bound it asks for a victim and
// the hand sweeps the ring: a marked entry loses its mark and is passed
// over; the first unmarked one is the victim. A [Clock] is not safe for
// concurrent use: its owner's lock guards it and the entries' slots; only
// the reference marks are touched by readers without it, so
// TakeReferenced must be atomic.
package lru

// Entry is an entry the policy may evict.
type Entry interface {
	comparable
	// TakeReferenced reports whether the entry was used since the hand last
	// passed it, and clears that mark.
	TakeReferenced() bool
	// Slot returns what SetSlot last stored; the Clock keeps its place in
	// the ring there (0 when the entry is not in the ring).
	Slot() int
	SetSlot(int)
}

// Clock is a CLOCK replacement policy. The zero Clock is ready to use. It is
// not safe for concurrent use.
type Clock[E Entry] struct {
	ring  []E // in order of insertion; the zero E is a hole
	hand  int
	holes int
}

// minCompact is the smallest ring that is ever compacted.
const minCompact = 64

// Add puts a newly resident entry at the end of the ring, which the hand
// may reach soon: give new entries a reference mark so that they survive
// its first pass, as CLOCK inserts them just behind the hand.
func (c *Clock[E]) Add(e E) {
	if len(c.ring) >= minCompact && 2*c.holes >= len(c.ring) {
		c.compact()
	}
	c.ring = append(c.ring, e)
	e.SetSlot(len(c.ring))
}

// Remove takes e out of the ring, if it is there.
func (c *Clock[E]) Remove(e E) {
	if i := e.Slot(); i != 0 {
		var zero E
		c.ring[i-1] = zero
		c.holes++
		e.SetSlot(0)
	}
}

// compact removes the holes, keeping the order and the hand's place.
func (c *Clock[E]) compact() {
	var zero E
	kept := c.ring[:0]
	hand := 0
	for i, e := range c.ring {
		if i == c.hand {
			hand = len(kept)
		}
		if e != zero {
			kept = append(kept, e)
			e.SetSlot(len(kept))
		}
	}
	clear(c.ring[len(kept):])
	c.ring, c.holes, c.hand = kept, 0, hand
	if c.hand >= len(c.ring) {
		c.hand = 0
	}
}

// Victim removes and returns the entry to evict next, and false if the ring
// is empty. It sweeps at most twice around the ring.
func (c *Clock[E]) Victim() (E, bool) {
	var zero E
	for steps := 2*len(c.ring) + 1; steps > 0 && len(c.ring) > c.holes; steps-- {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		e := c.ring[c.hand]
		c.hand++
		if e != zero && !e.TakeReferenced() {
			c.Remove(e)
			return e, true
		}
	}
	return zero, false
}

// Len returns the number of entries in the ring.
func (c *Clock[E]) Len() int { return len(c.ring) - c.holes }
