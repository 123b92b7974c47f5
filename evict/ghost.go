package evict

// ghost remembers the hashes of keys evicted lately, and from which queue:
// a direct-mapped table, each key in the one slot its hash picks, a newer
// key's eviction overwriting an older one there, so that a key is
// remembered for about as many evictions as the table has slots.
type ghost struct {
	slots []uint32 // the hash's high bits, ghostHeld, and the queue (ghostMain); 0 is empty
	shift uint     // 32 less log2(len(slots))
	// puts counts the keys remembered lately from the small queue and
	// the main one, halved whenever they pass the slots.
	puts [2]int
}

const (
	ghostMain = 1 // evicted from the main queue (or doomed), not the small one
	ghostHeld = 2 // a slot in use
	ghostTag  = ^uint32(ghostMain | ghostHeld)
)

// init sizes the table for about n evictions (a power of two at most n,
// at least 8 slots), emptying it. (At least 64 kept a cache of 100 entries
// a ghost of more evictions than its entries: see Policy.ghostSize.)
func (g *ghost) init(n int) {
	k := uint(3)
	for 1<<(k+1) <= n && k < 30 {
		k++
	}
	g.slots = make([]uint32, 1<<k)
	g.shift = 32 - k
}

func (g *ghost) slot(h uint32) *uint32 { return &g.slots[(h*0x9e3779b1)>>g.shift] }

// put remembers hash h as evicted from the main queue if main, the small
// queue otherwise.
func (g *ghost) put(h uint32, main bool) {
	if g.slots == nil {
		return
	}
	v := h&ghostTag | ghostHeld
	if main {
		v |= ghostMain
		g.puts[1]++
	} else {
		g.puts[0]++
	}
	if g.puts[0]+g.puts[1] >= len(g.slots) {
		g.puts[0] /= 2
		g.puts[1] /= 2
	}
	*g.slot(h) = v
}

// take forgets hash h and returns whether it was remembered, and as
// evicted from the main queue.
func (g *ghost) take(h uint32) (held, main bool) {
	if g.slots == nil {
		return false, false
	}
	s := g.slot(h)
	if v := *s; v&ghostHeld != 0 && v&ghostTag == h&ghostTag {
		*s = 0
		return true, v&ghostMain != 0
	}
	return false, false
}
