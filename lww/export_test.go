package lww

// Inspectors for tests: not part of what a replica needs.

import (
	"slices"
	"strings"

	"github.com/bcache-go/bcache/crdt"
)

// Leaf returns the digest leaf that holds key.
func (m *Map) Leaf(key string) uint32 { return m.leafOf(crdt.HashKey(key)) }

// mortalIn returns leaf's count of tombstones and records with an expiry.
func (m *Map) mortalIn(leaf uint32) int32 {
	if m.mortal == nil {
		return 0
	}
	return m.mortal[leaf]
}

// Synced returns the time passed to the latest MarkSynced, and false if the
// map has never been marked.
func (m *Map) Synced() (int64, bool) { return m.synced, m.synced != noSync }

// RecomputeTree builds the digest from scratch from the records held. It
// must always equal [Map.Tree]; replicas may run it periodically as a check.
func (m *Map) RecomputeTree() *crdt.Tree {
	t, _ := crdt.NewTree(m.tree.Bits()) // the width was validated by New
	m.entries.each(func(e *Entry) {
		kh := crdt.HashKey(e.key)
		t.Add(m.leafOf(kh), e.hash(kh))
	})
	return t
}

// Difference is one key whose record differs between two maps.
type Difference struct {
	Leaf uint32
	Key  string
	// A and B are the versions each map holds; InA and InB say whether it
	// holds one at all.
	A, B     crdt.Version
	InA, InB bool
}

// Diff compares two maps of the same shape through their digests. It returns
// the leaves whose digest nodes differ and, within them, every key whose
// version differs, ordered by leaf then key. Its cost grows with the number
// of differences, not with the size of the maps.
func Diff(a, b *Map) ([]uint32, []Difference, error) {
	leaves, err := crdt.Diff(a.tree, b.tree)
	if err != nil {
		return nil, nil, err
	}
	var diffs []Difference
	var va, vb []crdt.Version
	for _, leaf := range leaves {
		va, vb = a.AppendVersions(va[:0], leaf), b.AppendVersions(vb[:0], leaf)
		byKey := func(x, y crdt.Version) int { return strings.Compare(x.Key, y.Key) }
		slices.SortFunc(va, byKey)
		slices.SortFunc(vb, byKey)
		diffs = appendDifferences(diffs, leaf, va, vb)
	}
	return leaves, diffs, nil
}

// appendDifferences merges two key-sorted version lists of one leaf and
// appends every key where they disagree.
func appendDifferences(dst []Difference, leaf uint32, va, vb []crdt.Version) []Difference {
	i, j := 0, 0
	for i < len(va) || j < len(vb) {
		d := Difference{Leaf: leaf}
		switch {
		case j == len(vb) || (i < len(va) && va[i].Key < vb[j].Key):
			d.Key, d.A, d.InA = va[i].Key, va[i], true
			i++
		case i == len(va) || vb[j].Key < va[i].Key:
			d.Key, d.B, d.InB = vb[j].Key, vb[j], true
			j++
		default:
			if va[i] != vb[j] {
				d.Key, d.A, d.B, d.InA, d.InB = va[i].Key, va[i], vb[j], true, true
			}
			i, j = i+1, j+1
		}
		if d.InA || d.InB {
			dst = append(dst, d)
		}
	}
	return dst
}
