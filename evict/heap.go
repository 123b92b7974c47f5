package evict

// byAge is a min-heap of entries by write time, oldest at the top, for
// peers' writes: evicted oldest first, whatever order they arrived in;
// those written at the same time, in the order they arrived.
// Each entry's slot is its index in the heap, one-based, with the queue's
// id in the low bits, like a fifo's.
//
// The nodes live in blocks of blockSize, as a fifo's entries do: a push
// that needs room takes a new block, a removal that empties the last one
// lets it go (keeping one spare), so that no push or removal moves more
// than the nodes on one path of the heap. (One slice grown by append
// copied every node at once, 24 bytes each: at a million peers' writes,
// a member whose cache holds mostly those, 24 MB copied by one write
// under the store's eviction lock, and a copy again by the removal that
// gave the room back; found by review.)
type byAge[E Entry] struct {
	id     int
	blocks [][]aged[E]
	n      int       // nodes held
	spare  []aged[E] // an emptied block, kept for the next push that needs one
	seq    uint64    // pushes so far
}

type aged[E Entry] struct {
	e       E
	written int64
	seq     uint64
}

func (h *byAge[E]) len() int { return h.n }

// node returns node i, which lies in [0, blocks).
func (h *byAge[E]) node(i int) *aged[E] { return &h.blocks[i>>blockBits][i&(blockSize-1)] }

func (h *byAge[E]) push(e E, written int64) {
	h.seq++
	if h.n>>blockBits == len(h.blocks) {
		b := h.spare
		if b == nil {
			b = make([]aged[E], blockSize)
		}
		h.spare = nil
		h.blocks = append(h.blocks, b)
	}
	*h.node(h.n) = aged[E]{e, written, h.seq}
	h.n++
	h.up(h.n - 1)
}

// pop removes and returns the oldest entry.
func (h *byAge[E]) pop() (E, bool) {
	if h.n == 0 {
		var zero E
		return zero, false
	}
	e := h.node(0).e
	h.removeAt(0)
	return e, true
}

// find returns the oldest of the first n nodes (the heap's top levels,
// the oldest entries mostly) that ok accepts, leaving it in place.
func (h *byAge[E]) find(n int, ok func(E) bool) (E, bool) {
	best := -1
	for i := range min(n, h.n) {
		if ok(h.node(i).e) && (best < 0 || h.less(i, best)) {
			best = i
		}
	}
	if best < 0 {
		var zero E
		return zero, false
	}
	return h.node(best).e, true
}

// top returns the oldest entry, leaving it in place.
func (h *byAge[E]) top() (E, bool) {
	if h.n == 0 {
		var zero E
		return zero, false
	}
	return h.node(0).e, true
}

// fix moves e, which this heap holds, to its place for a new write time,
// as if it arrived now.
func (h *byAge[E]) fix(e E, written int64) {
	i := e.Slot()>>queueBits - 1
	h.seq++
	h.node(i).written, h.node(i).seq = written, h.seq
	h.down(i)
	h.up(i)
}

// remove takes e, which this heap holds, out of it.
func (h *byAge[E]) remove(e E) { h.removeAt(e.Slot()>>queueBits - 1) }

func (h *byAge[E]) removeAt(i int) {
	n := h.n - 1
	h.node(i).e.SetSlot(0)
	if i != n {
		*h.node(i) = *h.node(n)
		h.place(i)
	}
	*h.node(n) = aged[E]{}
	h.n = n
	if i != n {
		h.down(i)
		h.up(i)
	}
	if last := len(h.blocks) - 1; n == last<<blockBits { // the last block emptied: give it back
		h.spare = h.blocks[last]
		h.blocks[last] = nil
		h.blocks = h.blocks[:last]
		if len(h.blocks) == 0 {
			h.blocks = nil
		}
	}
}

func (h *byAge[E]) place(i int) { h.node(i).e.SetSlot((i+1)<<queueBits | h.id) }

func (h *byAge[E]) less(i, j int) bool {
	a, b := h.node(i), h.node(j)
	return a.written < b.written || (a.written == b.written && a.seq < b.seq)
}

func (h *byAge[E]) swap(i, j int) {
	a, b := h.node(i), h.node(j)
	*a, *b = *b, *a
	h.place(i)
	h.place(j)
}

func (h *byAge[E]) up(i int) {
	h.place(i)
	for i > 0 {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

func (h *byAge[E]) down(i int) {
	for {
		low := i
		for _, c := range []int{2*i + 1, 2*i + 2} {
			if c < h.n && h.less(c, low) {
				low = c
			}
		}
		if low == i {
			return
		}
		h.swap(i, low)
		i = low
	}
}
