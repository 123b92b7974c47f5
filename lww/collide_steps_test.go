package lww

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// sameHashKeys returns n distinct 32-byte keys of one crdt.HashKey, made
// with no search: a 16-byte step xors its second word with the hash so
// far, so a second block whose second word is c^h1 cancels whatever the
// first block made of it.
func sameHashKeys(n int) []string {
	const k0, k1 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db
	fold := func(a, b uint64) uint64 {
		hi, lo := bits.Mul64(a, b)
		return hi ^ lo
	}
	keys := make([]string, n)
	for i := range keys {
		var b [32]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i)+1)
		binary.LittleEndian.PutUint64(b[8:], 0x1111111111111111)
		binary.LittleEndian.PutUint64(b[16:], 0x2222222222222222)
		var k1v uint64 = k1
		h0 := uint64(k0) ^ 32*k1v
		h1 := fold(binary.LittleEndian.Uint64(b[:])^k1, binary.LittleEndian.Uint64(b[8:])^h0)
		binary.LittleEndian.PutUint64(b[24:], 0x3333333333333333^h1)
		keys[i] = string(b[:])
	}
	return keys
}

// probes returns the slots a writer's lookup of key visits in the table.
func (t *table) probes(key string) int {
	h := t.hash(key)
	mask := len(t.slots) - 1
	n := 0
	for i := int(h) & mask; ; i = (i + 1) & mask {
		n++
		e := t.slots[i].Load()
		if e == nil || t.hashes[i].Load() == h && sameKey(e.key, key) {
			return n
		}
	}
}

// unlinkSteps returns the list steps unlink would take for key's entry.
func (m *Map) unlinkSteps(key string) int {
	e := m.entries.get(key)
	leaf := m.leafOf(crdt.HashKey(key))
	if m.long[leaf] != nil {
		return 1
	}
	n := 1
	for p := m.heads[leaf]; p != e; p = p.next {
		n++
	}
	return n
}

// TestCollidingKeysCostPerRecord: a peer holding the cluster key writes
// N keys of one HashKey (one digest leaf), then sends one frame of
// wire.MaxRecords (16,384) records that flip one of them between a value
// and a tombstone, each flip a move that unlinks the key's entry from the
// leaf's list. The key is the one at depth d of the list, for d up to
// longLeaf: unlink indexed a leaf only once a walk went past longLeaf, so
// a key at depth 1,024 cost 1,024 steps at every flip, for good (73-90 ms
// a frame against 2-4 ms for a key of a leaf of its own, ~4.5 us a
// record; the table, seeded, probed 1.4 slots a key on average whatever
// N). The list steps a record stay below 128 at every depth.
func TestCollidingKeysCostPerRecord(t *testing.T) {
	alloc := func(key string) (*Entry, string) { return new(Entry), key }
	const n, frame = 4096, 1 << 14
	keys := sameHashKeys(n)
	h := crdt.HashKey(keys[0])
	for _, k := range keys {
		if crdt.HashKey(k) != h {
			t.Fatalf("%x: hash %x, want %x", k, crdt.HashKey(k), h)
		}
	}
	for _, depth := range []int{16, 64, 128, 256, 512, 1024} {
		m := newMap(t, Config{DigestBits: 16, Alloc: alloc})
		ts := int64(1)
		for _, k := range keys {
			ts++
			m.Merge(crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: ts, Node: 1}}, false, ts, nil)
		}
		maxProbe, sumProbe := 0, 0
		for _, k := range keys {
			p := m.entries.probes(k)
			maxProbe, sumProbe = max(maxProbe, p), sumProbe+p
		}
		victim := keys[n-depth] // pushed at the head: the depth-th from the last
		if s := m.unlinkSteps(victim); s != depth {
			t.Fatalf("victim at depth %d, want %d", s, depth)
		}
		// The same frame, timed, on a map of the same records.
		tm := newMap(t, Config{DigestBits: 16, Alloc: alloc})
		for i, k := range keys {
			tm.Merge(crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: int64(i) + 2, Node: 1}}, false, ts, nil)
		}
		flip := func(m *Map, i int, ts int64) {
			r := crdt.Record{Key: victim, Time: crdt.Timestamp{Wall: ts, Node: 1}}
			if i%2 == 0 {
				r.Tombstone = true
			} else {
				r.Value = []byte("v")
			}
			if o, _ := m.Merge(r, false, ts, nil); o != crdt.Applied {
				t.Fatalf("flip %d: %v", i, o)
			}
		}
		steps := 0
		for i := range frame {
			steps += m.unlinkSteps(victim)
			flip(m, i, ts+int64(i)+1)
		}
		start := time.Now()
		for i := range frame {
			flip(tm, i, ts+int64(i)+1)
		}
		el := time.Since(start)
		t.Logf("depth %d of %d keys of one hash: table probes max %d mean %.2f; a frame of %d flips: %d list steps (%.1f a record), %v",
			depth, n, maxProbe, float64(sumProbe)/n, frame, steps, float64(steps)/frame, el)
		if steps/frame >= 128 {
			t.Errorf("depth %d: %d list steps a record", depth, steps/frame)
		}
	}
	// Spread keys, for scale: the same frame over a key alone in its leaf.
	s := newMap(t, Config{DigestBits: 16, Alloc: alloc})
	ts := int64(1)
	for i := range n {
		ts++
		s.Merge(crdt.Record{Key: fmt.Sprint("spread:", i), Value: []byte("v"), Time: crdt.Timestamp{Wall: ts, Node: 1}}, false, ts, nil)
	}
	start := time.Now()
	for i := range frame {
		ts++
		r := crdt.Record{Key: "spread:0", Time: crdt.Timestamp{Wall: ts, Node: 1}}
		if i%2 == 0 {
			r.Tombstone = true
		} else {
			r.Value = []byte("v")
		}
		s.Merge(r, false, ts, nil)
	}
	t.Logf("spread keys: a frame of %d flips, %v", frame, time.Since(start))
}
