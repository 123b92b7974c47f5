package lww

import (
	"github.com/bcache-go/bcache/crdt"
)

// Tree returns the map's digest. It belongs to the map and changes with it:
// read it, do not modify it.
func (m *Map) Tree() *crdt.Tree { return m.tree }

// DigestBits returns the leaf-index width of the map's digest.
func (m *Map) DigestBits() int { return m.tree.Bits() }

// AppendHashes appends digest node hashes at a level: the root's alone at
// level 0, otherwise the crdt.Fanout children of each parent (a node index
// at level-1), in order. It is what anti-entropy exchanges.
func (m *Map) AppendHashes(dst []uint64, level int, parents []uint32) []uint64 {
	if level == 0 {
		return append(dst, m.tree.Root().Hash())
	}
	for _, p := range parents {
		for _, c := range m.tree.Children(level-1, p) {
			dst = append(dst, c.Hash())
		}
	}
	return dst
}

// AppendVersions appends the versions held in a digest leaf to dst, in no
// particular order, and returns it. (It sorted them by key, which the sync
// protocol, matching versions by key hash, never needed: that sort was a
// sixth of the CPU of three members writing 150,000 keys a second, whose
// sessions each second compared thousands of leaves.)
func (m *Map) AppendVersions(dst []crdt.Version, leaf uint32) []crdt.Version {
	for e := m.heads[leaf]; e != nil; e = e.next {
		dst = append(dst, e.version())
	}
	return dst
}

// AppendRecords appends the records held in a digest leaf to dst and returns
// it. Their values belong to the map.
func (m *Map) AppendRecords(dst []crdt.Record, leaf uint32) []crdt.Record {
	for e := m.heads[leaf]; e != nil; e = e.next {
		dst = append(dst, e.Record())
	}
	return dst
}
