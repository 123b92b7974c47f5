package crdt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// TestHashStable pins the hash functions: replicas of different versions
// compare digests, so a change here is a wire-format change.
func TestHashStable(t *testing.T) {
	keys := map[string]uint64{
		"":                   HashKey(""),
		"a":                  HashKey("a"),
		"user:0000000000042": HashKey("user:0000000000042"),
	}
	golden := map[string]uint64{
		"":                   0xd04a359f0fc5bf86,
		"a":                  0x0ee526813f131151,
		"user:0000000000042": 0x10b51bab2c4bdbdd,
	}
	for k, got := range keys {
		if got != golden[k] {
			t.Errorf("HashKey(%q) = %#x, want %#x", k, got, golden[k])
		}
	}
	ts := Timestamp{Wall: 1_700_000_000_000_000_000, Logical: 3, Node: 0xfeed}
	if got, want := RecordHash(HashKey("a"), ts, true), uint64(0x6c59d0f2a687778c); got != want {
		t.Errorf("RecordHash = %#x, want %#x", got, want)
	}
}

// TestHashSpread checks that sequential keys of every length up to 40 spread
// evenly over 256 buckets and that no two collide in 64 bits.
func TestHashSpread(t *testing.T) {
	const n, buckets = 1 << 16, 256
	for _, width := range []int{1, 7, 8, 15, 16, 17, 40} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			seen := make(map[uint64]bool, n)
			var counts [buckets]int
			for i := range n {
				k := fmt.Sprintf("%0*d", width, i)
				if len(k) > width {
					k = k[len(k)-width:] // width 1 repeats keys; count distinct ones only
				}
				h := HashKey(k)
				if !seen[h] {
					seen[h] = true
					counts[h>>56]++
				}
			}
			distinct := len(seen)
			mean := float64(distinct) / buckets
			for b, c := range counts {
				if float64(c) < mean*0.75-8 || float64(c) > mean*1.25+8 {
					t.Fatalf("bucket %d holds %d of %d keys, mean %.0f", b, c, distinct, mean)
				}
			}
		})
	}
}

func TestRecordHashSeparatesFields(t *testing.T) {
	base := Timestamp{Wall: 100, Logical: 1, Node: 1}
	kh := HashKey("k")
	hashes := map[uint64]string{}
	add := func(name string, h uint64) {
		if prev, dup := hashes[h]; dup {
			t.Fatalf("%s and %s hash alike", name, prev)
		}
		hashes[h] = name
	}
	add("base", RecordHash(kh, base, false))
	add("tombstone", RecordHash(kh, base, true))
	add("other key", RecordHash(HashKey("l"), base, false))
	add("wall", RecordHash(kh, Timestamp{Wall: 101, Logical: 1, Node: 1}, false))
	add("logical", RecordHash(kh, Timestamp{Wall: 100, Logical: 2, Node: 1}, false))
	add("node", RecordHash(kh, Timestamp{Wall: 100, Logical: 1, Node: 2}, false))
}

// TestHashKeyHasNoStructuralCollisions (no-loss item 13): every key whose
// first 8 bytes were the constant k1 (little-endian) hashed alike, whatever
// followed, because that block zeroed a product. Such keys now hash apart.
func TestHashKeyHasNoStructuralCollisions(t *testing.T) {
	prefix := binary.LittleEndian.AppendUint64(nil, k1)
	seen := map[uint64]string{}
	for i := range 1000 {
		key := string(binary.LittleEndian.AppendUint64(bytes.Clone(prefix), uint64(i)))
		for _, k := range []string{key, key[:12], key + "tail"} {
			h := HashKey(k)
			if other, ok := seen[h]; ok && other != k {
				t.Fatalf("%x and %x share hash %x", k, other, h)
			}
			seen[h] = k
		}
	}
}

// TestRecordHashSeesEveryField: a version's hash depends on its time,
// logical counter, node and tombstone whatever the others hold, the node
// ids and wall times that made a factor zero included: a node id of k2
// made every version of a key stamped with it hash alike (a value and a
// later delete), and a wall of k1 made the hash blind to the node, so
// anti-entropy never repaired such differences (found by review).
func TestRecordHashSeesEveryField(t *testing.T) {
	kh := HashKey("k")
	for _, base := range []Timestamp{
		{Wall: 1_700_000_000_000_000_000, Node: 5},
		{Wall: 1_700_000_000_000_000_000, Node: NodeID(k2)},
		{Wall: int64(k1 - 1<<64), Node: 5},
	} {
		h := RecordHash(kh, base, false)
		for name, other := range map[string]uint64{
			"wall":      RecordHash(kh, Timestamp{Wall: base.Wall + 1, Logical: base.Logical, Node: base.Node}, false),
			"logical":   RecordHash(kh, Timestamp{Wall: base.Wall, Logical: base.Logical + 7, Node: base.Node}, false),
			"node":      RecordHash(kh, Timestamp{Wall: base.Wall, Logical: base.Logical, Node: base.Node + 1}, false),
			"tombstone": RecordHash(kh, base, true),
		} {
			if other == h {
				t.Errorf("%v: another %s hashes alike (%#x)", base, name, h)
			}
		}
	}
	if a, b := (TreeNode{Count: 1, Sum: k3}).Hash(), (TreeNode{Count: 2, Sum: k3}).Hash(); a == b {
		t.Errorf("tree nodes of a sum k3 hash alike whatever their count (%#x)", a)
	}
	// Nor do the zero factors' substitutes collide with other inputs (a
	// substitute that is itself an input made node k2 hash as k0^k2).
	w := int64(1_700_000_000_000_000_000)
	for _, pair := range [][2]Timestamp{
		{{Wall: w, Node: NodeID(k2)}, {Wall: w, Node: NodeID(k0 ^ k2)}},
		{{Wall: int64(k1 - 1<<64), Node: 5}, {Wall: int64(k0 ^ k1), Node: 5}},
	} {
		if a, b := RecordHash(kh, pair[0], false), RecordHash(kh, pair[1], false); a == b {
			t.Errorf("%v and %v hash alike (%#x)", pair[0], pair[1], a)
		}
	}
	if a, b := (TreeNode{Count: 1, Sum: k3}).Hash(), (TreeNode{Count: 1, Sum: k3 ^ k0}).Hash(); a == b {
		t.Errorf("tree nodes of sums k3 and k3^k0 hash alike (%#x)", a)
	}
}
