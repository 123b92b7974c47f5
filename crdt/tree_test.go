package crdt

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// tb is what test helpers need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
}

func mustTree(t tb, bits int) *Tree {
	t.Helper()
	tr, err := NewTree(bits)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestNewTreeShape(t *testing.T) {
	for _, bits := range []int{0, 3, 6, 28, -4} {
		if _, err := NewTree(bits); !errors.Is(err, ErrTreeShape) {
			t.Errorf("NewTree(%d) error = %v, want ErrTreeShape", bits, err)
		}
	}
	tr := mustTree(t, 8)
	if tr.Depth() != 2 || tr.Leaves() != 256 || len(tr.Level(1)) != 16 {
		t.Fatalf("8-bit tree: depth %d, %d leaves, %d nodes at level 1; want 2, 256, 16", tr.Depth(), tr.Leaves(), len(tr.Level(1)))
	}
}

func TestTreeAddRemoveReplace(t *testing.T) {
	a, b := mustTree(t, 8), mustTree(t, 8)
	a.Add(3, 100)
	a.Add(3, 7)
	a.Remove(3, 7)
	a.Add(200, 5)
	a.Replace(200, 5, 9)
	b.Add(200, 9)
	b.Add(3, 100)
	if !a.Equal(b) {
		t.Fatalf("trees with the same hashes differ: roots %v and %v", a.Root(), b.Root())
	}
	if got := a.Root(); got.Count != 2 || got.Sum != 109 {
		t.Fatalf("root = %+v, want {Count:2 Sum:109}", got)
	}
	c := a.Clone()
	a.Add(1, 1)
	if c.Equal(a) || !c.Equal(b) {
		t.Fatal("Clone shares state with its original")
	}
	a.Reset()
	if a.Root() != (TreeNode{}) {
		t.Fatalf("root after Reset = %+v, want zero", a.Root())
	}
}

func TestDiffShapeMismatch(t *testing.T) {
	if _, err := Diff(mustTree(t, 8), mustTree(t, 12)); !errors.Is(err, ErrTreeShape) {
		t.Fatalf("Diff of 8- and 12-bit trees: error %v, want ErrTreeShape", err)
	}
	tr := mustTree(t, 8)
	if _, err := tr.DiffChildren(nil, 0, []uint32{0}, make([]TreeNode, 3)); !errors.Is(err, ErrTreeShape) {
		t.Fatalf("DiffChildren with 3 remote nodes: error %v, want ErrTreeShape", err)
	}
	if _, err := tr.DiffChildren(nil, 1, []uint32{99}, make([]TreeNode, Fanout)); !errors.Is(err, ErrTreeShape) {
		t.Fatalf("DiffChildren past the leaves: error %v, want ErrTreeShape", err)
	}
}

// TestDiffFindsExactlyTheDifferences builds two trees from a common set of
// hashes plus private ones and checks that Diff names exactly the leaves
// where they differ.
func TestDiffFindsExactlyTheDifferences(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bits := rapid.SampledFrom([]int{4, 8, 12}).Draw(t, "bits")
		a, b := mustTree(t, bits), mustTree(t, bits)
		leaves := uint32(1) << bits
		leaf := rapid.Uint32Range(0, leaves-1)
		for range rapid.IntRange(0, 50).Draw(t, "common") {
			l, h := leaf.Draw(t, "leaf"), rapid.Uint64().Draw(t, "hash")
			a.Add(l, h)
			b.Add(l, h)
		}
		want := map[uint32]bool{}
		for i := range rapid.IntRange(0, 10).Draw(t, "private") {
			// Private hashes must differ from each other, or the same hash
			// added on both sides is no difference at all (the pinned
			// TestDiffSameHashOnBothSidesIsNoDifference), and small ones
			// could cancel out in a leaf's sum. A bijective mix of the draw
			// and its index makes them distinct and spread.
			l, h := leaf.Draw(t, "leaf"), mix64(rapid.Uint64().Draw(t, "hash")^uint64(i)<<56)
			if rapid.Bool().Draw(t, "side") {
				a.Add(l, h)
			} else {
				b.Add(l, h)
			}
			want[l] = true
		}
		got, err := Diff(a, b)
		if err != nil {
			t.Fatal(err)
		}
		// A leaf that received private hashes on both sides might, with
		// probability about 2^-64, still match.
		wantList := make([]uint32, 0, len(want))
		for l := range want {
			wantList = append(wantList, l)
		}
		slices.Sort(wantList)
		if !slices.Equal(got, wantList) {
			t.Fatalf("Diff = %v, want %v", got, wantList)
		}
	})
}

// mix64 is splitmix64's finalizer: a bijection on uint64 that spreads
// small inputs over the whole range.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// TestDiffSameHashOnBothSidesIsNoDifference pins the counterexample rapid
// found against an earlier TestDiffFindsExactlyTheDifferences (in CI, on
// its first draw): the same hash added to the same leaf of both trees
// leaves them equal, so Diff rightly names nothing; the test expected the
// leaf.
func TestDiffSameHashOnBothSidesIsNoDifference(t *testing.T) {
	a, b := mustTree(t, 4), mustTree(t, 4)
	for range 13 {
		a.Add(0, 0)
		b.Add(0, 0)
	}
	a.Add(0, 2)
	b.Add(0, 2)
	if got, err := Diff(a, b); err != nil || len(got) != 0 {
		t.Fatalf("Diff = %v, %v; want no difference", got, err)
	}
}

func TestLeafIndex(t *testing.T) {
	tests := []struct {
		hash         uint64
		prefix, bits int
		want         uint32
	}{
		{0xABCD_0000_0000_0000, 0, 16, 0xABCD},
		{0xABCD_0000_0000_0000, 4, 12, 0xBCD},
		{0xABCD_EF00_0000_0000, 8, 16, 0xCDEF},
		{0xFFFF_FFFF_FFFF_FFFF, 0, 4, 0xF},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%x/%d/%d", tc.hash, tc.prefix, tc.bits), func(t *testing.T) {
			if got := LeafIndex(tc.hash, tc.prefix, tc.bits); got != tc.want {
				t.Fatalf("LeafIndex = %x, want %x", got, tc.want)
			}
		})
	}
}

// TestTreeReadsSeeEveryChange: changes are queued and applied when the
// tree is read, so every read (Root, Level, Children, Equal, Clone, Diff)
// sees every change made before it, whatever the mix of changes and reads,
// and a full queue changes nothing that a read would see.
func TestTreeReadsSeeEveryChange(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tr := mustTree(t, 8)
		count, sum := make([]uint64, tr.Leaves()), make([]uint64, tr.Leaves())
		for step := range rapid.IntRange(0, 200).Draw(t, "steps") {
			leaf := rapid.Uint32Range(0, uint32(tr.Leaves()-1)).Draw(t, "leaf")
			h := rapid.Uint64().Draw(t, "hash")
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0:
				tr.Add(leaf, h)
				count[leaf]++
				sum[leaf] += h
			case 1:
				tr.Remove(leaf, h)
				count[leaf]--
				sum[leaf] -= h
			case 2:
				old := rapid.Uint64().Draw(t, "old")
				tr.Replace(leaf, old, h)
				sum[leaf] += h - old
			case 3:
				var root TreeNode
				for i := range count {
					root.Count += count[i]
					root.Sum += sum[i]
				}
				if got := tr.Root(); got != root {
					t.Fatalf("step %d: root %+v, want %+v", step, got, root)
				}
				want := mustTree(t, 8)
				for i := range count { // the same leaves, set directly
					want.levels[want.Depth()][i] = TreeNode{count[i], sum[i]}
				}
				for i := range want.levels[1] {
					var n TreeNode
					for _, c := range want.levels[2][i*Fanout : (i+1)*Fanout] {
						n.Count += c.Count
						n.Sum += c.Sum
					}
					want.levels[1][i] = n
				}
				want.levels[0][0] = root
				if !tr.Clone().Equal(want) || !slices.Equal(tr.Level(1), want.Level(1)) {
					t.Fatalf("step %d: the tree's levels differ from its leaves' sums", step)
				}
				if d, err := Diff(tr, want); err != nil || len(d) != 0 {
					t.Fatalf("step %d: Diff from the same leaves = %v, %v", step, d, err)
				}
			}
		}
	})
}

// TestDiffChildrenRefusesAParentPast2To31: a parent index of 2^31 or more
// is out of range at any level, whatever the word size. Where int has 32
// bits, int(p) read as negative and passed the range check: 2^31 wrapped
// to base 0 (p*Fanout in uint32) and was compared as node 0, no error, and
// 2^32-1 indexed past the level (a panic).
// (Found by review under qemu-arm; on 64-bit the test passes either way.)
func TestDiffChildrenRefusesAParentPast2To31(t *testing.T) {
	tr, err := NewTree(8)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint32{1 << 31, 1<<31 + 1, 1<<32 - 1} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("parent %d: DiffChildren panicked: %v", p, r)
				}
			}()
			_, err := tr.DiffChildren(nil, 0, []uint32{p}, make([]TreeNode, Fanout))
			if !errors.Is(err, ErrTreeShape) {
				t.Errorf("parent %d at level 0: error %v, want ErrTreeShape", p, err)
			}
		}()
	}
}
