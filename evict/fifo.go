package evict

// fifo is a queue of entries: pushed at the back, popped at the front, and
// removable from anywhere (a deleted key), which leaves a hole that pop
// skips. Each entry knows its place (Entry.Slot): its position in the
// queue, counted from the queue's first push, modulo posMod, one-based,
// with the queue's id in the low bits.
//
// The positions live in blocks of blockSize entries: a push that needs
// room takes a new block, a pop that empties the front block lets it go,
// so that a queue turning over moves no entry but the one pushed or
// popped. (One
// slice, compacted once its popped prefix and holes were half of it and
// grown by append, moved every entry it held at once: 29-35 ms under the
// store's eviction lock for a main queue of 889,000 entries, and growing,
// 24-55 ms at a bound of a million entries, 315 ms at 4.2 million under
// MaxBytes alone: found by review.) Holes are squeezed out only once they
// outnumber the entries, compactPace positions a push (compactStep),
// which keeps a queue's span within about twice its entries (and a
// compactPace-th more while a compaction runs) as long as pushes go on,
// and its positions within posMod. A compaction moves only with pushes:
// after many removals and no push (a mass delete, then reads alone) the
// span stays at what it was until pushes come again.
type fifo[E Entry] struct {
	id     int
	blocks [][]E // blocks[i] holds the positions from base+i*blockSize on; the zero E is a hole
	base   int64 // the position of blocks[0][0]
	head   int64 // the front's position
	tail   int64 // the position the next push takes
	holes  int   // holes in [head, tail)
	bytes  int   // the entries' sizes (see Entry.Size)
	spare  []E   // an emptied block, kept for the next push that needs one
	// The entries' sizes are counted again as the queue goes, a few each
	// time its bytes are read (see recountStep): counted is the sum of
	// those of the entries before cursor, which replaces bytes when the
	// cursor reaches the tail. (A size that changes as its entry moves
	// between queues leaves bytes off, and the compaction that used to
	// count them again runs seldom now.)
	cursor  int64
	counted int
	// A compaction under way (see compactStep): the entries at positions
	// [head, squeezed) are squeezed together, [squeezed, read) are holes,
	// [read, tail) are as they were.
	compacting     bool
	squeezed, read int64
}

const (
	queueBits  = 2
	queueMask  = 1<<queueBits - 1
	blockBits  = 10
	blockSize  = 1 << blockBits
	minCompact = 64
	// compactPace is how many positions a push moves a compaction under
	// way on: the queue's span grows by at most about one in
	// compactPace of its length meanwhile.
	compactPace = 32
	// recountPace is how many positions recountStep counts again: more
	// than one, so that the count catches up with the pushes.
	recountPace = 4
)

// posMod is the modulus of the positions slots hold: the largest whose
// slot, one-based and shifted by queueBits, fits an int32 (the store's
// items keep their slot in 32 bits). A queue's span (tail less head) stays
// below it: it holds at most MaxBoundedKeys (2^27) entries, and compacts
// once its holes outnumber them. A variable: tests lower it, to see the
// positions wrap.
var posMod int64 = 1<<(31-queueBits) - 1

func (q *fifo[E]) len() int { return int(q.tail-q.head) - q.holes }

// span returns the positions from the front to the back, holes included.
func (q *fifo[E]) span() int { return int(q.tail - q.head) }

// at returns the place of position pos, which lies in [base, base +
// blocks).
func (q *fifo[E]) at(pos int64) *E {
	i := pos - q.base
	return &q.blocks[i>>blockBits][i&(blockSize-1)]
}

// slotOf returns the slot of position pos.
func (q *fifo[E]) slotOf(pos int64) int { return int(pos%posMod+1)<<queueBits | q.id }

// posOf returns the position of an entry of this queue with slot s: the
// one in [head, head+posMod) that slot names.
func (q *fifo[E]) posOf(s int) int64 {
	p := int64(s>>queueBits) - 1
	return q.head + ((p-q.head%posMod)%posMod+posMod)%posMod
}

func (q *fifo[E]) push(e E) {
	if !q.compacting && q.holes >= minCompact && q.holes > q.len() {
		q.compacting, q.squeezed, q.read = true, q.head, q.head
	}
	if q.compacting {
		q.compactStep(compactPace)
	}
	if i := q.tail - q.base; int(i>>blockBits) == len(q.blocks) {
		b := q.spare
		if b == nil {
			b = make([]E, blockSize)
		}
		q.spare = nil
		q.blocks = append(q.blocks, b)
	}
	*q.at(q.tail) = e
	e.SetSlot(q.slotOf(q.tail))
	q.tail++
	q.bytes += e.Size()
}

// advance moves the front on by a position, letting go of the front block
// once it is passed (its places are all holes by then: pop clears them).
func (q *fifo[E]) advance() {
	q.head++
	if q.head-q.base == blockSize {
		q.spare = q.blocks[0]
		q.blocks[0] = nil
		q.blocks = q.blocks[1:]
		q.base += blockSize
	}
	if q.head == q.tail && len(q.blocks) == 0 {
		q.blocks = nil // let go of the slice's spent prefix
	}
}

// pop removes and returns the entry at the front.
func (q *fifo[E]) pop() (E, bool) {
	var zero E
	for q.head < q.tail {
		pos := q.head
		p := q.at(pos)
		e := *p
		*p = zero
		q.advance()
		if e != zero {
			e.SetSlot(0)
			q.forget(pos, e.Size())
			return e, true
		}
		q.holes--
	}
	return zero, false
}

// front returns the entry at the front without removing it.
func (q *fifo[E]) front() (E, bool) {
	var zero E
	for q.head < q.tail {
		if e := *q.at(q.head); e != zero {
			return e, true
		}
		q.advance()
		q.holes--
	}
	return zero, false
}

// find returns the first of the next n entries from the front that ok
// accepts, leaving it in place; it looks at 2n positions at most, holes
// included. (Counting entries alone, it went through every hole in
// between, again at every call that searched while they lay within its
// reach: a run of deleted keys behind the read values at the small
// queue's front had every write scan it, up to a million positions under
// the store's eviction lock; found by review.)
func (q *fifo[E]) find(n int, ok func(E) bool) (E, bool) {
	var zero E
	end := min(q.tail, q.head+2*int64(max(n, 0)))
	for pos := q.head; pos < end && n > 0; pos++ {
		if e := *q.at(pos); e != zero {
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
	pos := q.posOf(e.Slot())
	*q.at(pos) = zero
	q.holes++
	q.forget(pos, e.Size())
	e.SetSlot(0)
}

// forget takes an entry of size bytes at pos out of the queue's counts.
func (q *fifo[E]) forget(pos int64, size int) {
	q.bytes -= size
	if pos < q.cursor {
		q.counted -= size
	}
}

// grow counts a change of e's size by n bytes.
func (q *fifo[E]) grow(e E, n int) {
	q.bytes += n
	if q.posOf(e.Slot()) < q.cursor {
		q.counted += n
	}
}

// recountStep counts the sizes of the entries at the next recountPace
// positions again, and, once every entry has been counted, takes the
// count for the queue's bytes. The policy calls it where it reads them
// (the small queue's, under a bound in bytes), not at every push: a
// main queue's victim search pushes every entry it passes again, and
// the sizes it read there, a cache miss each, made a search of a
// million entries 2-3 times slower (found by a profile of its longest
// write).
func (q *fifo[E]) recountStep() {
	var zero E
	if q.cursor < q.head {
		q.cursor = q.head // what was counted before it was taken off
	}
	for n := recountPace; n > 0 && q.cursor < q.tail; n-- {
		if e := *q.at(q.cursor); e != zero {
			q.counted += e.Size()
		}
		q.cursor++
	}
	if q.cursor == q.tail {
		q.bytes = q.counted
		q.cursor, q.counted = q.head, 0
	}
}

// recount counts the entries' sizes again, at once.
func (q *fifo[E]) recount() {
	var zero E
	q.bytes = 0
	for pos := q.head; pos < q.tail; pos++ {
		if e := *q.at(pos); e != zero {
			q.bytes += e.Size()
		}
	}
	q.cursor, q.counted = q.head, 0
}

// compactStep moves a compaction on by n positions: the entries it
// reads are moved toward the front, in order, over the holes; once it
// has read the last position, the holes after the entries squeezed are
// cut off the queue, and the blocks left empty let go of. A compaction
// squeezed the whole queue in one push, moving every entry: 29 ms for a
// million entries after half a million deletes, under the store's
// eviction lock (found by review); n a push now, and the entries pushed
// meanwhile are squeezed too, after those before them.
func (q *fifo[E]) compactStep(n int) {
	var zero E
	// The front may have passed the entries squeezed, into the holes.
	q.squeezed = max(q.squeezed, q.head)
	q.read = max(q.read, q.squeezed)
	for ; n > 0 && q.read < q.tail; n-- {
		if e := *q.at(q.read); e != zero {
			if q.squeezed != q.read {
				*q.at(q.squeezed) = e
				*q.at(q.read) = zero
				e.SetSlot(q.slotOf(q.squeezed))
				if q.read >= q.cursor && q.squeezed < q.cursor {
					q.counted += e.Size() // now before the recount's cursor
				}
			}
			q.squeezed++
		}
		q.read++
	}
	if q.read < q.tail {
		return
	}
	q.holes -= int(q.tail - q.squeezed)
	q.tail = q.squeezed
	q.cursor = min(q.cursor, q.tail)
	keep := int((q.tail - q.base + blockSize - 1) >> blockBits)
	clear(q.blocks[keep:])
	q.blocks = q.blocks[:keep]
	q.compacting = false
}
