package lww

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// keys is the small alphabet property tests draw keys from, so that writes
// to the same key are the common case.
var keys = []string{"a", "b", "c", "d", "e", "f"}

type recordID struct {
	key string
	t   crdt.Timestamp
}

// universe hands out records with unique identities: the same (key,
// timestamp) always names the same record, as it does in a real cluster.
type universe map[recordID]crdt.Record

func (u universe) draw(t *rapid.T, label string) crdt.Record {
	key := rapid.SampledFrom(keys).Draw(t, label+" key")
	id := recordID{key, crdt.Timestamp{
		Wall:    rapid.Int64Range(1, 30).Draw(t, label+" wall"),
		Logical: rapid.Uint32Range(0, 2).Draw(t, label+" logical"),
		Node:    crdt.NodeID(rapid.IntRange(1, 3).Draw(t, label+" node")),
	}}
	if r, ok := u[id]; ok {
		return r
	}
	r := crdt.Record{Key: key, Time: id.t}
	switch rapid.IntRange(0, 3).Draw(t, label+" kind") {
	case 0:
		r.Tombstone = true
	case 1:
		r.Expires = id.t.Wall + rapid.Int64Range(1, 20).Draw(t, label+" ttl")
		fallthrough
	default:
		r.Value = []byte(fmt.Sprintf("%s@%v", key, id.t))
	}
	u[id] = r
	return r
}

func (u universe) drawList(t *rapid.T, label string, max int) []crdt.Record {
	n := rapid.IntRange(0, max).Draw(t, label+" count")
	out := make([]crdt.Record, n)
	for i := range out {
		out[i] = u.draw(t, fmt.Sprintf("%s %d", label, i))
	}
	return out
}

// clone copies r with its own value bytes, as a decoder would hand it over.
func clone(r crdt.Record) crdt.Record {
	r.Value = bytes.Clone(r.Value)
	return r
}

func applyAll(t tb, m *Map, recs []crdt.Record) {
	t.Helper()
	for _, r := range recs {
		if got := apply(m, clone(r)); got == crdt.Rejected {
			t.Fatalf("Apply(%v) rejected without any GC", r.Time)
		}
	}
}

// mergeInto applies every record of src to dst: the state-based merge.
func mergeInto(dst, src *Map) {
	src.Range(func(r crdt.Record) bool {
		apply(dst, clone(r))
		return true
	})
}

// dump lists every record of m, sorted by key, for comparisons.
func dump(m *Map) []crdt.Record {
	var out []crdt.Record
	m.Range(func(r crdt.Record) bool {
		out = append(out, r)
		return true
	})
	slices.SortFunc(out, func(a, b crdt.Record) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func sameRecord(a, b crdt.Record) bool {
	return a.Key == b.Key && a.Time == b.Time && a.Tombstone == b.Tombstone &&
		a.Expires == b.Expires && a.Evicted == b.Evicted && bytes.Equal(a.Value, b.Value)
}

func assertSameState(t tb, label string, a, b *Map) {
	t.Helper()
	da, db := dump(a), dump(b)
	if !slices.EqualFunc(da, db, sameRecord) {
		t.Fatalf("%s: states differ:\n%v\n%v", label, da, db)
	}
	if !a.Tree().Equal(b.Tree()) {
		t.Fatalf("%s: equal states with different digests", label)
	}
}

func TestMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := universe{}
		recs := u.drawList(t, "records", 30)
		build := func(rs []crdt.Record) *Map {
			m := newMap(t, Config{DigestBits: 4})
			applyAll(t, m, rs)
			return m
		}
		base := build(recs)

		// Any permutation, with any records repeated, gives the same state.
		perm := rapid.Permutation(recs).Draw(t, "permutation")
		var dups []crdt.Record
		if len(recs) > 0 {
			dups = rapid.SliceOf(rapid.SampledFrom(recs)).Draw(t, "duplicates")
		}
		assertSameState(t, "permuted and duplicated", base, build(append(perm, dups...)))

		// State merge is commutative, associative and idempotent.
		a, b, c := build(u.drawList(t, "a", 10)), build(u.drawList(t, "b", 10)), build(u.drawList(t, "c", 10))
		ab, ba := build(nil), build(nil)
		mergeInto(ab, a)
		mergeInto(ab, b)
		mergeInto(ba, b)
		mergeInto(ba, a)
		assertSameState(t, "commutativity", ab, ba)

		abc1, bc, abc2 := build(nil), build(nil), build(nil)
		mergeInto(abc1, ab)
		mergeInto(abc1, c)
		mergeInto(bc, b)
		mergeInto(bc, c)
		mergeInto(abc2, a)
		mergeInto(abc2, bc)
		assertSameState(t, "associativity", abc1, abc2)

		aa := build(nil)
		mergeInto(aa, a)
		mergeInto(aa, a)
		assertSameState(t, "idempotence", aa, a)
	})
}

// TestAgreesWithModel compares the map with a plain map that keeps the
// record with the greatest timestamp per key.
func TestAgreesWithModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := universe{}
		m := newMap(t, Config{DigestBits: 4})
		model := map[string]crdt.Record{}
		for _, r := range u.drawList(t, "records", 40) {
			got := apply(m, clone(r))
			cur, held := model[r.Key]
			want := crdt.Stale
			if !held || cur.Time.Less(r.Time) {
				model[r.Key] = r
				want = crdt.Applied
			}
			if got != want {
				t.Fatalf("Apply(%s %v) = %v, want %v", r.Key, r.Time, got, want)
			}
		}
		now := rapid.Int64Range(0, 60).Draw(t, "now")
		for _, k := range keys {
			r, held := model[k]
			wantLive := held && r.Live(now)
			v, ok := m.Get(k, now)
			if ok != wantLive || (ok && !bytes.Equal(v, r.Value)) {
				t.Fatalf("Get(%s, %d) = %q, %v; model holds %+v", k, now, v, ok, r)
			}
		}
		if m.Records() != len(model) {
			t.Fatalf("map holds %d records, model %d", m.Records(), len(model))
		}
	})
}

// TestDigestIncremental runs every kind of change and checks after each
// that the incrementally maintained digest equals a full recompute, and
// that eviction never changes it.
func TestDigestIncremental(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := universe{}
		m := newMap(t, Config{DigestBits: rapid.SampledFrom([]int{4, 8}).Draw(t, "bits"), Horizon: 5})
		m.MarkSynced(rapid.Int64Range(0, 40).Draw(t, "synced"))
		for i := range rapid.IntRange(0, 60).Draw(t, "steps") {
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1:
				apply(m, clone(u.draw(t, "record")))
			case 2:
				before := m.Tree().Clone()
				m.Evict(rapid.SampledFrom(keys).Draw(t, "evict"))
				if !m.Tree().Equal(before) {
					t.Fatalf("step %d: eviction changed the digest", i)
				}
			case 3:
				now := rapid.Int64Range(0, 60).Draw(t, "gc now")
				stable := int64(NoStable)
				if rapid.Bool().Draw(t, "early") {
					stable = rapid.Int64Range(0, 60).Draw(t, "stable")
				}
				m.GC(nil, now, stable)
			}
			if !m.Tree().Equal(m.RecomputeTree()) {
				t.Fatalf("step %d: incremental digest differs from recompute", i)
			}
			if n := m.Len() + m.Tombstones() + m.Evicted(); n != m.Records() {
				t.Fatalf("step %d: %d values + tombstones + evicted, %d records", i, n, m.Records())
			}
		}
	})
}

// TestDiffIsExact checks Diff against a brute-force comparison of every key.
func TestDiffIsExact(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := universe{}
		bits := rapid.SampledFrom([]int{4, 8}).Draw(t, "bits")
		a, b := newMap(t, Config{DigestBits: bits}), newMap(t, Config{DigestBits: bits})
		common := u.drawList(t, "common", 20)
		applyAll(t, a, common)
		applyAll(t, b, common)
		applyAll(t, a, u.drawList(t, "only a", 8))
		applyAll(t, b, u.drawList(t, "only b", 8))
		for _, k := range rapid.SliceOfN(rapid.SampledFrom(keys), 0, 3).Draw(t, "evict in b") {
			b.Evict(k)
		}
		leaves, diffs, err := Diff(a, b)
		if err != nil {
			t.Fatal(err)
		}
		var want []Difference
		wantLeaves := map[uint32]bool{}
		for _, k := range keys {
			ra, inA := a.Lookup(k)
			rb, inB := b.Lookup(k)
			if inA == inB && (!inA || ra.Version() == rb.Version()) {
				continue
			}
			d := Difference{Leaf: a.Leaf(k), Key: k, InA: inA, InB: inB}
			if inA {
				d.A = ra.Version()
			}
			if inB {
				d.B = rb.Version()
			}
			want = append(want, d)
			wantLeaves[d.Leaf] = true
		}
		slices.SortFunc(want, func(x, y Difference) int {
			if x.Leaf != y.Leaf {
				return int(x.Leaf) - int(y.Leaf)
			}
			return strings.Compare(x.Key, y.Key)
		})
		if !slices.Equal(diffs, want) {
			t.Fatalf("Diff = %+v\nwant  %+v", diffs, want)
		}
		if len(leaves) != len(wantLeaves) {
			t.Fatalf("Diff named leaves %v, want %v", leaves, wantLeaves)
		}
		for _, l := range leaves {
			if !wantLeaves[l] {
				t.Fatalf("Diff named leaf %d with no differing key", l)
			}
		}
	})
}
