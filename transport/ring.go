package transport

import (
	"cmp"
	"slices"

	"github.com/bcache-go/bcache/crdt"
)

// ring is the membership in the order every member agrees on: by key hash
// of the member name, then by name. It places members in broadcast trees.
type ring struct {
	names   []string
	pos     map[string]int
	longest int // the length of the longest name
}

func newRing(names []string) *ring {
	r := &ring{names: slices.Clone(names), pos: make(map[string]int, len(names))}
	slices.SortFunc(r.names, func(a, b string) int {
		return cmp.Or(cmp.Compare(crdt.HashKey(a), crdt.HashKey(b)), cmp.Compare(a, b))
	})
	r.names = slices.Compact(r.names)
	for i, n := range r.names {
		r.pos[n] = i
		r.longest = max(r.longest, len(n))
	}
	return r
}

// children appends to dst the members self forwards a batch of origin to:
// with q the number of places self lies after origin on the ring, the
// members q*fanout+1 .. q*fanout+fanout places after origin. It appends
// nothing when either name is not on the ring.
func (r *ring) children(dst []string, origin, self string, fanout int) []string {
	o, ok1 := r.pos[origin]
	s, ok2 := r.pos[self]
	if !ok1 || !ok2 {
		return dst
	}
	return r.childrenAt(dst, o, s, fanout)
}

// childrenAt is children with origin and self given by their places on the
// ring: a node knows its own, and looks up one name a batch, not two.
func (r *ring) childrenAt(dst []string, o, s, fanout int) []string {
	n := len(r.names)
	// No member has more than n children: bounded so, q*fanout+fanout
	// cannot overflow (a Fanout near math.MaxInt, which Config takes,
	// wrapped it, and a relay indexed below zero: found by review).
	fanout = min(fanout, n)
	q := (s - o + n) % n
	for c := q*fanout + 1; c <= q*fanout+fanout && c < n; c++ {
		dst = append(dst, r.names[(o+c)%n])
	}
	return dst
}

// after returns the i-th member after self on the ring, skipping self; ""
// when self is alone or not on the ring.
func (r *ring) after(self string, i int) string {
	s, ok := r.pos[self]
	n := len(r.names)
	if !ok || n < 2 {
		return ""
	}
	return r.names[(s+1+i%(n-1))%n]
}

// size returns the number of members.
func (r *ring) size() int { return len(r.names) }

// distance returns how many places apart a and b are on the ring, the
// shorter way round; both must be on it.
func (r *ring) distance(a, b string) int {
	d := r.pos[a] - r.pos[b]
	if d < 0 {
		d = -d
	}
	return min(d, len(r.names)-d)
}
