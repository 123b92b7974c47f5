package crdt

import (
	"errors"
	"fmt"
	"slices"
)

// Fanout is the number of children of every inner node of a [Tree].
const Fanout = 16

// FanoutBits is log2(Fanout): each level of a Tree consumes this many bits of
// the leaf index.
const FanoutBits = 4

// MinTreeBits and MaxTreeBits bound the leaf-index width of a [Tree].
const (
	MinTreeBits = 4
	MaxTreeBits = 24
)

// ErrTreeShape is returned (wrapped) for a tree width that is out of range or
// not a multiple of four, and when two trees of different shapes are compared.
var ErrTreeShape = errors.New("crdt: bad digest tree shape")

// TreeNode is one node of a [Tree]: how many records lie below it and the
// wrapping sum of their hashes. Two subtrees holding the same records have
// equal nodes; different records give different nodes except with
// probability about 2^-64, unless someone chose them to collide (see
// RecordHash and mixTag: a peer choosing two versions of a key can make
// them hash alike).
type TreeNode struct {
	Count uint64
	Sum   uint64
}

// Hash folds n into the 64-bit value replicas exchange to compare nodes.
func (n TreeNode) Hash() uint64 { return mixTag(n.Count^k2, n.Sum^k3) }

// Tree is a fixed-shape Merkle digest over 2^bits leaves with fan-out 16.
// Level 0 is the root; level Depth() holds the leaves. It is not safe for
// concurrent use.
//
// Changes are queued and applied to the nodes when the tree is next read
// (or the queue is full): a change reads and writes a node of every level,
// and the leaf's is most often a cache miss, which stalled the merge that
// made the change; applied together, the changes' misses overlap. So a
// read writes too: readers need the same exclusion as writers.
type Tree struct {
	bits    int
	levels  [][]TreeNode
	pending []treeChange // changes not yet applied to levels
}

// treeChange is a change of a leaf queued in a Tree: 16 bytes.
type treeChange struct {
	leaf   uint32
	dCount int32 // -1, 0 or 1
	dSum   uint64
}

// maxPending is how many changes a Tree queues before it applies them:
// enough for their misses to overlap, 512 bytes a tree.
const maxPending = 32

// NewTree returns an empty tree with 2^bits leaves. bits must be a multiple
// of four between [MinTreeBits] and [MaxTreeBits].
func NewTree(bits int) (*Tree, error) {
	if err := CheckTreeBits(bits); err != nil {
		return nil, err
	}
	t := &Tree{bits: bits, levels: make([][]TreeNode, bits/FanoutBits+1)}
	for d := range t.levels {
		t.levels[d] = make([]TreeNode, 1<<(d*FanoutBits))
	}
	return t, nil
}

// CheckTreeBits returns an error unless bits is a valid tree width.
func CheckTreeBits(bits int) error {
	if bits < MinTreeBits || bits > MaxTreeBits || bits%FanoutBits != 0 {
		return fmt.Errorf("%w: %d leaf bits (want a multiple of %d in [%d, %d])",
			ErrTreeShape, bits, FanoutBits, MinTreeBits, MaxTreeBits)
	}
	return nil
}

// LeafIndex returns the leaf of a tree with the given width that holds a key
// with hash keyHash, when the tree covers the subtree whose top prefixBits
// are fixed (prefixBits is 0 for a tree over all keys).
func LeafIndex(keyHash uint64, prefixBits, bits int) uint32 {
	return uint32((keyHash << prefixBits) >> (64 - bits))
}

// Bits returns the leaf-index width of t.
func (t *Tree) Bits() int { return t.bits }

// Depth returns the number of levels below the root; leaves are at Depth.
func (t *Tree) Depth() int { return len(t.levels) - 1 }

// Leaves returns the number of leaves.
func (t *Tree) Leaves() int { return len(t.levels[len(t.levels)-1]) }

// Root returns the root node.
func (t *Tree) Root() TreeNode {
	t.settle()
	return t.levels[0][0]
}

// Level returns the nodes of level d, left to right. The slice belongs to t:
// do not modify it, and do not keep it across changes.
func (t *Tree) Level(d int) []TreeNode {
	t.settle()
	return t.levels[d]
}

// Children returns the Fanout children of node i at level d (d < Depth).
// The slice belongs to t.
func (t *Tree) Children(d int, i uint32) []TreeNode {
	t.settle()
	lo := int(i) * Fanout
	return t.levels[d+1][lo : lo+Fanout]
}

// Add accounts a record hash h in leaf.
func (t *Tree) Add(leaf uint32, h uint64) { t.update(leaf, 1, h) }

// Remove takes a record hash h out of leaf.
func (t *Tree) Remove(leaf uint32, h uint64) { t.update(leaf, -1, -h) }

// Replace swaps record hash old for new in leaf.
func (t *Tree) Replace(leaf uint32, old, new uint64) { t.update(leaf, 0, new-old) }

func (t *Tree) update(leaf uint32, dCount int32, dSum uint64) {
	if t.pending == nil {
		t.pending = make([]treeChange, 0, maxPending)
	}
	t.pending = append(t.pending, treeChange{leaf, dCount, dSum})
	if len(t.pending) == maxPending {
		t.settle()
	}
}

// settle applies the queued changes to the nodes.
func (t *Tree) settle() {
	leaves := t.levels[len(t.levels)-1]
	for _, c := range t.pending {
		n := &leaves[c.leaf]
		n.Count += uint64(int64(c.dCount))
		n.Sum += c.dSum
	}
	for _, c := range t.pending {
		i := c.leaf
		for d := len(t.levels) - 2; d >= 0; d-- {
			i >>= FanoutBits
			n := &t.levels[d][i]
			n.Count += uint64(int64(c.dCount))
			n.Sum += c.dSum
		}
	}
	t.pending = t.pending[:0]
}

// Clone returns a deep copy of t.
func (t *Tree) Clone() *Tree {
	t.settle()
	c := &Tree{bits: t.bits, levels: make([][]TreeNode, len(t.levels))}
	for d, l := range t.levels {
		c.levels[d] = slices.Clone(l)
	}
	return c
}

// Reset empties t.
func (t *Tree) Reset() {
	t.pending = t.pending[:0]
	for _, l := range t.levels {
		clear(l)
	}
}

// Equal reports whether t and u have the same shape and the same nodes.
func (t *Tree) Equal(u *Tree) bool {
	if t.bits != u.bits {
		return false
	}
	t.settle()
	u.settle()
	for d := range t.levels {
		if !equalNodes(t.levels[d], u.levels[d]) {
			return false
		}
	}
	return true
}

func equalNodes(a, b []TreeNode) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// DiffChildren is one step of a top-down comparison. parents are node
// indices at level d of t; remote holds, for each parent in order, the
// Fanout children of the same node in another replica's tree. It appends to
// dst the indices at level d+1 whose nodes differ and returns it.
func (t *Tree) DiffChildren(dst []uint32, d int, parents []uint32, remote []TreeNode) ([]uint32, error) {
	if d < 0 || d >= t.Depth() || len(remote) != len(parents)*Fanout {
		return dst, fmt.Errorf("%w: %d parents at level %d with %d children", ErrTreeShape, len(parents), d, len(remote))
	}
	t.settle()
	next := t.levels[d+1]
	for k, p := range parents {
		if uint64(p) >= uint64(len(t.levels[d])) { // int(p) is negative past 2^31 where int has 32 bits
			return dst, fmt.Errorf("%w: node %d out of range at level %d", ErrTreeShape, p, d)
		}
		base := p * Fanout
		for c := uint32(0); c < Fanout; c++ {
			if next[base+c] != remote[k*Fanout+int(c)] {
				dst = append(dst, base+c)
			}
		}
	}
	return dst, nil
}

// Diff returns, in ascending order, the leaves whose nodes differ between a
// and b. It descends only into differing subtrees, so its cost grows with
// the number of differing leaves times the depth, not with the tree size.
func Diff(a, b *Tree) ([]uint32, error) {
	if a.bits != b.bits {
		return nil, fmt.Errorf("%w: comparing %d-bit and %d-bit trees", ErrTreeShape, a.bits, b.bits)
	}
	if a.Root() == b.Root() {
		return nil, nil
	}
	frontier := []uint32{0}
	var next []uint32
	var one [1]uint32
	for d := 0; d < a.Depth() && len(frontier) > 0; d++ {
		next = next[:0]
		for _, p := range frontier {
			one[0] = p
			var err error
			if next, err = a.DiffChildren(next, d, one[:], b.Children(d, p)); err != nil {
				return nil, err
			}
		}
		frontier, next = next, frontier
	}
	return frontier, nil
}
