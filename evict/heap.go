package evict

// byAge is a min-heap of entries by write time, oldest at the top, for
// peers' writes: evicted oldest first, whatever order they arrived in;
// those written at the same time, in the order they arrived.
// Each entry's slot is its index in the heap, one-based, with the queue's
// id in the low bits, like a fifo's.
type byAge[E Entry] struct {
	id    int
	nodes []aged[E]
	seq   uint64 // pushes so far
}

type aged[E Entry] struct {
	e       E
	written int64
	seq     uint64
}

func (h *byAge[E]) len() int { return len(h.nodes) }

func (h *byAge[E]) push(e E, written int64) {
	h.seq++
	h.nodes = append(h.nodes, aged[E]{e, written, h.seq})
	h.up(len(h.nodes) - 1)
}

// pop removes and returns the oldest entry.
func (h *byAge[E]) pop() (E, bool) {
	if len(h.nodes) == 0 {
		var zero E
		return zero, false
	}
	e := h.nodes[0].e
	h.removeAt(0)
	return e, true
}

// find returns the oldest of the first n nodes (the heap's top levels,
// the oldest entries mostly) that ok accepts, leaving it in place.
func (h *byAge[E]) find(n int, ok func(E) bool) (E, bool) {
	best := -1
	for i := range min(n, len(h.nodes)) {
		if ok(h.nodes[i].e) && (best < 0 || h.less(i, best)) {
			best = i
		}
	}
	if best < 0 {
		var zero E
		return zero, false
	}
	return h.nodes[best].e, true
}

// top returns the oldest entry, leaving it in place.
func (h *byAge[E]) top() (E, bool) {
	if len(h.nodes) == 0 {
		var zero E
		return zero, false
	}
	return h.nodes[0].e, true
}

// fix moves e, which this heap holds, to its place for a new write time,
// as if it arrived now.
func (h *byAge[E]) fix(e E, written int64) {
	i := e.Slot()>>queueBits - 1
	h.seq++
	h.nodes[i].written, h.nodes[i].seq = written, h.seq
	h.down(i)
	h.up(i)
}

// remove takes e, which this heap holds, out of it.
func (h *byAge[E]) remove(e E) { h.removeAt(e.Slot()>>queueBits - 1) }

func (h *byAge[E]) removeAt(i int) {
	n := len(h.nodes) - 1
	h.nodes[i].e.SetSlot(0)
	if i != n {
		h.nodes[i] = h.nodes[n]
		h.place(i)
	}
	h.nodes[n] = aged[E]{}
	h.nodes = h.nodes[:n]
	if i != n {
		h.down(i)
		h.up(i)
	}
	if cap(h.nodes) > 4*len(h.nodes) && cap(h.nodes) > minCompact { // give back what a burst left
		h.nodes = append(make([]aged[E], 0, 2*len(h.nodes)), h.nodes...)
	}
}

func (h *byAge[E]) place(i int) { h.nodes[i].e.SetSlot((i+1)<<queueBits | h.id) }

func (h *byAge[E]) less(i, j int) bool {
	a, b := &h.nodes[i], &h.nodes[j]
	return a.written < b.written || (a.written == b.written && a.seq < b.seq)
}

func (h *byAge[E]) swap(i, j int) {
	h.nodes[i], h.nodes[j] = h.nodes[j], h.nodes[i]
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
			if c < len(h.nodes) && h.less(c, low) {
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
