package evict

// fifo is a queue of entries: pushed at the back, popped at the front, and
// removable from anywhere (a deleted key), which leaves a hole that pop
// skips. The entries live in a slice that is compacted when holes and the
// popped prefix make up half of it, so it stays within about twice the
// entries it holds. Each entry knows its place (Entry.Slot): its index in
// the slice, one-based, with the queue's id in the low bits.
type fifo[E Entry] struct {
	id    int
	ring  []E // the zero E is a hole
	head  int // index of the front
	holes int // holes at or after head
	bytes int // the entries' sizes (see Entry.Size)
}

const (
	queueBits  = 2
	queueMask  = 1<<queueBits - 1
	minCompact = 64
)

func (q *fifo[E]) len() int { return len(q.ring) - q.head - q.holes }

func (q *fifo[E]) push(e E) {
	if n := len(q.ring); n >= minCompact && 2*(q.head+q.holes) >= n {
		q.compact()
	}
	q.ring = append(q.ring, e)
	e.SetSlot(len(q.ring)<<queueBits | q.id)
	q.bytes += e.Size()
}

// pop removes and returns the entry at the front.
func (q *fifo[E]) pop() (E, bool) {
	var zero E
	for q.head < len(q.ring) {
		e := q.ring[q.head]
		q.ring[q.head] = zero
		q.head++
		if e != zero {
			e.SetSlot(0)
			q.bytes -= e.Size()
			return e, true
		}
		q.holes--
	}
	return zero, false
}

// front returns the entry at the front without removing it.
func (q *fifo[E]) front() (E, bool) {
	var zero E
	for q.head < len(q.ring) {
		if e := q.ring[q.head]; e != zero {
			return e, true
		}
		q.head++
		q.holes--
	}
	return zero, false
}

// find returns the first of the next n entries from the front that ok
// accepts, leaving it in place.
func (q *fifo[E]) find(n int, ok func(E) bool) (E, bool) {
	var zero E
	for i := q.head; i < len(q.ring) && n > 0; i++ {
		if e := q.ring[i]; e != zero {
			if ok(e) {
				return e, true
			}
			n--
		}
	}
	return zero, false
}

// remove takes e, which this queue holds, out of it.
func (q *fifo[E]) remove(e E) {
	var zero E
	q.ring[e.Slot()>>queueBits-1] = zero
	q.holes++
	q.bytes -= e.Size()
	e.SetSlot(0)
}

// compact moves the entries to the front of a slice no larger than
// needed, in order.
// recount counts the entries' sizes again.
func (q *fifo[E]) recount() {
	var zero E
	q.bytes = 0
	for _, e := range q.ring[q.head:] {
		if e != zero {
			q.bytes += e.Size()
		}
	}
}

func (q *fifo[E]) compact() {
	var zero E
	kept := q.ring[:0]
	q.bytes = 0 // counted again (see Entry.Size)
	for _, e := range q.ring[q.head:] {
		if e != zero {
			kept = append(kept, e)
			e.SetSlot(len(kept)<<queueBits | q.id)
			q.bytes += e.Size()
		}
	}
	clear(q.ring[len(kept):])
	if cap(q.ring) > 4*len(kept) && cap(q.ring) > minCompact { // give back what a burst left
		q.ring = append(make([]E, 0, 2*len(kept)), kept...)
	} else {
		q.ring = kept
	}
	q.head, q.holes = 0, 0
}
