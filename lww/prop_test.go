package lww

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
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

// collidingKeys returns two different 16-byte keys with one HashKey: a
// 16-byte step folds two factors made of the key's blocks and known
// constants, and fold is symmetric (package crdt).
func collidingKeys(a, b uint64) (string, string) {
	var k0, k1 uint64 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db
	h := k0 ^ 16*k1
	mk := func(x, y uint64) string {
		var buf [16]byte
		binary.LittleEndian.PutUint64(buf[:8], x)
		binary.LittleEndian.PutUint64(buf[8:], y)
		return string(buf[:])
	}
	return mk(a, b), mk(b^h^k1, a^k1^h)
}

// modelKeys: the empty key, a pair of keys with one HashKey, and enough
// others to grow the entries table through several resizes.
func modelKeys() []string {
	c1, c2 := collidingKeys(0x1234, 0x5678)
	ks := []string{"", c1, c2}
	for i := range 37 {
		ks = append(ks, fmt.Sprint("k", i))
	}
	return ks
}

var (
	extremeWalls = []int64{math.MinInt64, math.MinInt64 + 1, -5, 0, 1, 2, 3, 5, 8, 13, 20, 30, math.MaxInt64 - 1, math.MaxInt64}
	extremeLogs  = []uint32{0, 1, math.MaxUint32 - 1, math.MaxUint32}
	extremeNodes = []crdt.NodeID{0, 1, 2, math.MaxUint64}
	extremeNows  = []int64{math.MinInt64, -3, 0, 4, 10, 25, 40, 60, math.MaxInt64 - 1, math.MaxInt64}
)

func drawTime(t *rapid.T, label string) crdt.Timestamp {
	return crdt.Timestamp{
		Wall:    rapid.SampledFrom(extremeWalls).Draw(t, label+" wall"),
		Logical: rapid.SampledFrom(extremeLogs).Draw(t, label+" logical"),
		Node:    rapid.SampledFrom(extremeNodes).Draw(t, label+" node"),
	}
}

// drawAny draws a record with no identity rule: the same version may come
// with other values, expiries or kinds (forged ties).
func drawAny(t *rapid.T, ks []string, label string) crdt.Record {
	r := crdt.Record{Key: rapid.SampledFrom(ks).Draw(t, label+" key"), Time: drawTime(t, label)}
	switch rapid.IntRange(0, 4).Draw(t, label+" kind") {
	case 0:
		r.Tombstone = true
	case 1:
		r.Evicted = true
	}
	if !r.Tombstone && rapid.Bool().Draw(t, label+" expires") {
		r.Expires = rapid.SampledFrom([]int64{math.MinInt64, -1, 1, 6, 12, 25, 50, math.MaxInt64}).Draw(t, label+" expiry")
	}
	if !r.Tombstone && !r.Evicted {
		r.Value = []byte(rapid.StringMatching(`[ab]{0,7}`).Draw(t, label+" value"))
	}
	return r
}

// specMerge is the package doc's merge rule, written from the doc: what
// a map that holds cur (held) keeps of r, and whether r is applied.
func specMerge(cur crdt.Record, held bool, r crdt.Record, tooLong bool, maxValue int) (crdt.Record, bool) {
	if r.Tombstone || r.Evicted {
		r.Value = nil
	}
	if r.Tombstone { // a tombstone is its version alone
		r.Expires, r.Evicted = 0, false
	}
	sent := r.Evicted && !tooLong
	if len(r.Value) > maxValue {
		r.Value, r.Evicted = nil, true
	}
	if !held {
		return r, true
	}
	switch c := r.Version().Compare(cur.Version()); {
	case c > 0:
		return r, true
	case c < 0 || r.Tombstone:
		return cur, false
	}
	if r.Expires != cur.Expires {
		if r.Expires == 0 || (cur.Expires != 0 && r.Expires > cur.Expires) {
			return r, true
		}
		return cur, false
	}
	rv, cv := !r.Evicted, !cur.Evicted
	switch {
	case rv && cv && bytes.Compare(r.Value, cur.Value) > 0:
		return r, true
	case cv && !rv && !sent:
		return r, true
	}
	return cur, false
}

type mapModel struct {
	recs map[string]crdt.Record
	// long says a key's stub stands for a value too long for the map or
	// its holder, which a Refill does not fill.
	long map[string]bool
	// stands holds the value a stub of a key stands for (the one evicted,
	// or the first value that tied with it), if it knows it; contested
	// says a second one tied: a Refill fills such stubs with that value
	// only, contested ones with none.
	stands    map[string][]byte
	contested map[string]bool
	wm        map[uint32]crdt.Timestamp
	synced    int64
	horizon   int64
	maxValue  int
}

func (mm *mapModel) collectable(r crdt.Record, now, cutoffAt int64, early bool, stable int64) bool {
	since, dies := r.DeadSince()
	if !dies || since > now || (r.Time.Wall == math.MaxInt64 && r.Time.Logical == math.MaxUint32) {
		return false
	}
	if !early {
		return true // CollectDead
	}
	cutoff := int64(math.MinInt64)
	if mm.synced != noSync {
		cutoff = crdt.SubSat(min(now, mm.synced), mm.horizon)
	}
	return since < cutoff || since < min(stable, now)
}

func (mm *mapModel) drop(m *Map, key string) {
	r := mm.recs[key]
	delete(mm.recs, key)
	delete(mm.stands, key)
	delete(mm.contested, key)
	w := r.Time
	w.Node = math.MaxUint64
	leaf := m.Leaf(key)
	if old, ok := mm.wm[leaf]; !ok || old.Less(w) {
		if noMark.Less(w) {
			mm.wm[leaf] = w
		}
	}
}

// steppedGC is a collection in steps (GCStep) under way in a test.
type steppedGC struct {
	now, stable int64
	leaf        uint32
}

func sameRec(a, b crdt.Record) bool {
	return a.Key == b.Key && a.Time == b.Time && a.Tombstone == b.Tombstone &&
		a.Expires == b.Expires && a.Evicted == b.Evicted && bytes.Equal(a.Value, b.Value)
}

// checkAgainstModel: the digest equals a recompute, Range visits every
// record once and only the model's, every key's entry is found (in the
// table, also mid-resize) and holds the model's record, the counters
// agree, and a removed key is gone.
func checkAgainstModel(t *rapid.T, step string, m *Map, mm *mapModel, ks []string) {
	if !m.Tree().Equal(m.RecomputeTree()) {
		t.Fatalf("%s: incremental digest differs from recompute", step)
	}
	seen := map[string]int{}
	m.Range(func(r crdt.Record) bool {
		seen[r.Key]++
		if want, ok := mm.recs[r.Key]; !ok || !sameRec(r, want) {
			t.Fatalf("%s: Range gives %v, model holds %v (%v)", step, r, want, ok)
		}
		return true
	})
	if len(seen) != len(mm.recs) {
		t.Fatalf("%s: Range visits %d keys, model holds %d", step, len(seen), len(mm.recs))
	}
	// RangeStep, in steps of a few records, gives the same records, each
	// once, a leaf's all at one step.
	stepped := map[string]bool{}
	for leaf, done := uint32(0), false; !done; {
		from := leaf
		var keys []string
		leaf, done = m.RangeStep(leaf, rapid.IntRange(1, 5).Draw(t, "range visits"), func(r crdt.Record) {
			if stepped[r.Key] || !sameRec(r, mm.recs[r.Key]) {
				t.Fatalf("%s: RangeStep from leaf %d gives %v (given before: %v), model holds %v", step, from, r, stepped[r.Key], mm.recs[r.Key])
			}
			stepped[r.Key] = true
			keys = append(keys, r.Key)
		})
		if leaf <= from && !done || done != (int(leaf) == m.tree.Leaves()) {
			t.Fatalf("%s: RangeStep from leaf %d of %d: next %d, done %v", step, from, m.tree.Leaves(), leaf, done)
		}
		for _, k := range keys {
			if l := m.Leaf(k); l < from || l >= leaf {
				t.Fatalf("%s: RangeStep over leaves %d to %d gave %q, of leaf %d", step, from, leaf, k, l)
			}
		}
	}
	if len(stepped) != len(mm.recs) {
		t.Fatalf("%s: RangeStep visits %d keys, model holds %d", step, len(stepped), len(mm.recs))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s: Range visits %q %d times", step, k, n)
		}
	}
	values, tombs, evicted := 0, 0, 0
	for _, k := range ks {
		want, held := mm.recs[k]
		e := m.Entry(k)
		if (e != nil) != held {
			t.Fatalf("%s: Entry(%q) = %p, model holds it: %v", step, k, e, held)
		}
		if !held {
			if _, ok := m.Lookup(k); ok {
				t.Fatalf("%s: Lookup finds removed %q", step, k)
			}
			continue
		}
		if got := e.Record(); !sameRec(got, want) {
			t.Fatalf("%s: Entry(%q) holds %v, model %v", step, k, got, want)
		}
		switch {
		case want.Tombstone:
			tombs++
		case want.Evicted:
			evicted++
		default:
			values++
		}
	}
	if m.Len() != values || m.Tombstones() != tombs || m.Evicted() != evicted || m.Records() != len(mm.recs) {
		t.Fatalf("%s: counts %d/%d/%d/%d, model %d/%d/%d/%d", step, m.Len(), m.Tombstones(), m.Evicted(), m.Records(), values, tombs, evicted, len(mm.recs))
	}
	for leaf, w := range mm.wm {
		if got, _ := m.Watermark(leaf); got != w {
			t.Fatalf("%s: leaf %d watermark %v, model %v", step, leaf, got, w)
		}
	}
	mortal := make([]int32, m.tree.Leaves())
	for k, r := range mm.recs {
		if r.Tombstone || r.Expires != 0 {
			mortal[m.Leaf(k)]++
		}
	}
	for leaf, n := range mortal {
		if got := m.mortalIn(uint32(leaf)); got != n {
			t.Fatalf("%s: leaf %d counts %d tombstones and records with an expiry, model %d", step, leaf, got, n)
		}
	}
	dying := 0
	for leaf, done := uint32(0), false; !done; {
		from := leaf
		leaf, done = m.RangeMortalStep(leaf, rapid.IntRange(1, 5).Draw(t, "mortal visits"), func(r crdt.Record) {
			if want, ok := mm.recs[r.Key]; !ok || !sameRec(r, want) || !r.Tombstone && r.Expires == 0 || m.Leaf(r.Key) < from {
				t.Fatalf("%s: RangeMortalStep from leaf %d gives %v, model holds %v (%v)", step, from, r, want, ok)
			}
			dying++
		})
		if leaf <= from && !done || done != (int(leaf) == m.tree.Leaves()) {
			t.Fatalf("%s: RangeMortalStep from leaf %d of %d: next %d, done %v", step, from, m.tree.Leaves(), leaf, done)
		}
	}
	if want := int(sumOf(mortal)); dying != want {
		t.Fatalf("%s: RangeMortalStep visits %d records, model holds %d tombstones and records with an expiry", step, dying, want)
	}
}

func sumOf(ns []int32) (sum int32) {
	for _, n := range ns {
		sum += n
	}
	return sum
}

// TestMapAgreesWithItsSpecUnderEveryOperation runs random sequences of
// every operation of the map (merges, deltas, merges of values too long
// for the holder, evictions, refills, collections by the horizon, early
// and forced, with hints stale or of other keys), on records with extreme
// timestamps and expiries, forged ties, the empty key and two keys of one
// HashKey, against a model written from the package doc; then deletes
// and collects every key and checks the table shrinks back.
func TestMapAgreesWithItsSpecUnderEveryOperation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ks := modelKeys()
		cfg := Config{DigestBits: rapid.SampledFrom([]int{4, 8}).Draw(t, "bits"), Horizon: 5}
		if rapid.Bool().Draw(t, "alloc") {
			cfg.Alloc = func(key string) (*Entry, string) {
				b := &boxed{}
				return &b.Entry, key
			}
		}
		m := newMap(t, cfg)
		m.maxValue = rapid.IntRange(0, 8).Draw(t, "max value")
		mm := &mapModel{recs: map[string]crdt.Record{}, long: map[string]bool{}, stands: map[string][]byte{}, contested: map[string]bool{}, wm: map[uint32]crdt.Timestamp{}, synced: noSync, horizon: 5, maxValue: m.maxValue}
		hints := map[string]*Entry{}
		hint := func(key string) *Entry {
			switch rapid.IntRange(0, 2).Draw(t, "hint") {
			case 1:
				return hints[key]
			case 2:
				return hints[rapid.SampledFrom(ks).Draw(t, "hint key")]
			}
			return nil
		}
		var walk *steppedGC // a collection in steps under way (op 10)
		for i := range rapid.IntRange(20, 200).Draw(t, "steps") {
			step := fmt.Sprint("step ", i)
			switch op := rapid.IntRange(0, 10).Draw(t, "op"); op {
			case 0, 1, 2, 3: // Merge, MergeTooLong, as a delta or not
				r := drawAny(t, ks, "record")
				if cur, held := mm.recs[r.Key]; held && rapid.Bool().Draw(t, "tie") {
					// a forged tie with the version held: from independent
					// draws (224 times, 40 keys) next to none came
					r.Time = cur.Time
					if !r.Tombstone {
						r.Expires = cur.Expires
					}
				}
				tooLong := op == 3
				if tooLong {
					r.Value, r.Evicted = nil, true
				}
				delta := rapid.Bool().Draw(t, "delta")
				now := rapid.SampledFrom(extremeNows).Draw(t, "now")
				in := clone(r)
				var o crdt.Outcome
				var e *Entry
				if tooLong {
					o, e = m.MergeTooLong(in, delta, now, hint(r.Key))
				} else {
					o, e = m.Merge(in, delta, now, hint(r.Key))
				}
				cur, held := mm.recs[r.Key]
				want := crdt.Stale
				switch keep, applied := specMerge(cur, held, r, tooLong, mm.maxValue); {
				case delta && r.Time.Wall < crdt.SubSat(now, mm.horizon):
					want = crdt.Late
				case !held && func() bool { w, ok := mm.wm[m.Leaf(r.Key)]; return ok && r.Time.Compare(w) <= 0 }():
					want = crdt.Rejected
				case applied:
					want = crdt.Applied
					mm.recs[r.Key] = keep
					mm.long[r.Key] = keep.Evicted && !(r.Evicted && !tooLong)
					delete(mm.stands, r.Key)
					delete(mm.contested, r.Key)
				case held && cur.Evicted && !cur.Tombstone && !r.Tombstone && r.Time == cur.Time && r.Expires == cur.Expires &&
					(tooLong || !r.Evicted && len(r.Value) > mm.maxValue):
					// a value too long here that lost a tie to a stub of its
					// version: the stub stands for it too
					mm.long[r.Key] = true
				case held && cur.Evicted && !mm.long[r.Key] && !cur.Tombstone && !r.Tombstone && !r.Evicted && len(r.Value) <= mm.maxValue && r.Time == cur.Time && r.Expires == cur.Expires:
					// a value that lost a tie to a stub of its version: the
					// stub stands for it if it stood for none, else for
					// none if it stood for another
					if v, ok := mm.stands[r.Key]; !ok {
						mm.stands[r.Key] = bytes.Clone(r.Value)
					} else if !bytes.Equal(v, r.Value) {
						mm.contested[r.Key] = true
					}
				}
				if o != want {
					t.Fatalf("%s: merge of %v (too long %v, delta %v, now %d) over %v (%v): %v, want %v", step, r, tooLong, delta, now, cur, held, o, want)
				}
				if o == crdt.Applied {
					if e == nil || m.Entry(r.Key) != e {
						t.Fatalf("%s: Merge returned %p, not the key's entry", step, e)
					}
					hints[r.Key] = e
				}
			case 4: // Evict
				k := rapid.SampledFrom(ks).Draw(t, "evict")
				_, ok := m.Evict(k)
				cur, held := mm.recs[k]
				if want := held && !cur.Tombstone && !cur.Evicted; ok != want {
					t.Fatalf("%s: Evict(%q) = %v, model holds %v", step, k, ok, cur)
				}
				if ok {
					mm.stands[k] = bytes.Clone(cur.Value)
					cur.Value, cur.Evicted = nil, true
					mm.recs[k] = cur
					mm.long[k] = false
					delete(mm.contested, k)
				}
			case 5: // Refill with a value of a version held (maybe another)
				k := rapid.SampledFrom(ks).Draw(t, "refill")
				var stubs []string // keys held as stubs: one of 40 keys drawn seldom was one
				for _, s := range ks {
					if r, ok := mm.recs[s]; ok && r.Evicted {
						stubs = append(stubs, s)
					}
				}
				if len(stubs) > 0 && rapid.Bool().Draw(t, "a stub") {
					k = rapid.SampledFrom(stubs).Draw(t, "refill stub")
				}
				r := drawAny(t, ks, "refill record")
				r.Key = k
				if cur, held := mm.recs[k]; held && rapid.Bool().Draw(t, "same version") {
					r.Time, r.Expires = cur.Time, cur.Expires
				}
				o, e := m.Refill(clone(r), hint(k))
				cur, held := mm.recs[k]
				want := crdt.Stale
				v, knows := mm.stands[k]
				if held && cur.Evicted && !mm.long[k] && !mm.contested[k] && (!knows || bytes.Equal(v, r.Value)) && !cur.Tombstone && !r.Tombstone && !r.Evicted && len(r.Value) <= mm.maxValue && r.Time == cur.Time && r.Expires == cur.Expires {
					want = crdt.Applied
					mm.recs[k] = r
					delete(mm.stands, k)
				}
				if o != want {
					t.Fatalf("%s: Refill(%v) over %v: %v, want %v", step, r, cur, o, want)
				}
				if o == crdt.Applied {
					hints[k] = e
				}
			case 6: // GC
				now := rapid.SampledFrom(extremeNows).Draw(t, "gc now")
				stable := int64(NoStable)
				if rapid.Bool().Draw(t, "early") {
					stable = rapid.SampledFrom(extremeNows).Draw(t, "stable")
				}
				var want []crdt.Version
				for _, r := range mm.recs {
					if mm.collectable(r, now, 0, true, stable) {
						want = append(want, r.Version())
					}
				}
				got := m.GC(nil, now, stable)
				byKey := func(a, b crdt.Version) int { return strings.Compare(a.Key, b.Key) }
				slices.SortFunc(want, byKey)
				slices.SortFunc(got, byKey)
				if !slices.Equal(got, want) {
					t.Fatalf("%s: GC(%d, %d) collected %v, want %v", step, now, stable, got, want)
				}
				for _, v := range want {
					mm.drop(m, v.Key)
				}
			case 7: // CollectDead
				k := rapid.SampledFrom(ks).Draw(t, "collect")
				now := rapid.SampledFrom(extremeNows).Draw(t, "collect now")
				v, ok := m.CollectDead(k, now)
				cur, held := mm.recs[k]
				want := held && mm.collectable(cur, now, 0, false, 0)
				if ok != want || ok && v != cur.Version() {
					t.Fatalf("%s: CollectDead(%q, %d) = %v %v over %v", step, k, now, v, ok, cur)
				}
				if ok {
					mm.drop(m, k)
				}
			case 8:
				at := rapid.SampledFrom(extremeNows).Draw(t, "synced")
				m.MarkSynced(at)
				mm.synced = max(mm.synced, at)
			case 10: // a step of a collection in steps, other operations between them
				if walk == nil {
					walk = &steppedGC{now: rapid.SampledFrom(extremeNows).Draw(t, "walk now"), stable: NoStable}
					if rapid.Bool().Draw(t, "walk early") {
						walk.stable = rapid.SampledFrom(extremeNows).Draw(t, "walk stable")
					}
				}
				from := walk.leaf
				got, next, done := m.GCStep(nil, walk.now, walk.stable, from, rapid.IntRange(1, 6).Draw(t, "visits"))
				if done != (int(next) == m.tree.Leaves()) || next <= from && !done {
					t.Fatalf("%s: GCStep from leaf %d of %d: next %d, done %v", step, from, m.tree.Leaves(), next, done)
				}
				var want []crdt.Version
				for k, r := range mm.recs {
					if l := m.Leaf(k); l >= from && l < next && mm.collectable(r, walk.now, 0, true, walk.stable) {
						want = append(want, r.Version())
					}
				}
				byKey := func(a, b crdt.Version) int { return strings.Compare(a.Key, b.Key) }
				slices.SortFunc(want, byKey)
				slices.SortFunc(got, byKey)
				if !slices.Equal(got, want) {
					t.Fatalf("%s: GCStep(%d, %d) over leaves %d to %d collected %v, want %v", step, walk.now, walk.stable, from, next, got, want)
				}
				for _, v := range want {
					mm.drop(m, v.Key)
				}
				walk.leaf = next
				if done {
					walk = nil
				}
			case 9: // a burst of fresh keys
				for j := range rapid.IntRange(0, 40).Draw(t, "burst") {
					k := ks[j%len(ks)]
					if _, held := mm.recs[k]; held {
						continue
					}
					r := crdt.Record{Key: k, Value: []byte("v"), Time: crdt.Timestamp{Wall: math.MaxInt64 - 1, Logical: 0, Node: 1}}
					o, _ := m.Merge(clone(r), false, 0, nil)
					if w, ok := mm.wm[m.Leaf(k)]; ok && r.Time.Compare(w) <= 0 {
						if o != crdt.Rejected {
							t.Fatalf("%s: burst %q: %v, want rejected", step, k, o)
						}
						continue
					}
					if o != crdt.Applied {
						t.Fatalf("%s: burst %q: %v", step, k, o)
					}
					mm.recs[k], _ = specMerge(crdt.Record{}, false, r, false, mm.maxValue)
					mm.long[k] = mm.recs[k].Evicted // a value over maxValue
					delete(mm.stands, k)
					delete(mm.contested, k)
				}
			}
			checkAgainstModel(t, step, m, mm, ks)
		}
		// Mass removal: delete every key that can be, collect it, and
		// the table gives its slots back.
		for _, k := range ks {
			del := crdt.Record{Key: k, Tombstone: true, Time: crdt.Timestamp{Wall: math.MaxInt64, Logical: math.MaxUint32 - 1, Node: math.MaxUint64}}
			if cur, held := mm.recs[k]; held {
				if keep, applied := specMerge(cur, true, del, false, mm.maxValue); applied {
					if o, _ := m.Merge(clone(del), false, 0, nil); o != crdt.Applied {
						t.Fatalf("final delete of %q: %v", k, o)
					}
					mm.recs[k] = keep
				}
			}
			if _, ok := m.CollectDead(k, math.MaxInt64); ok {
				mm.drop(m, k)
			}
		}
		checkAgainstModel(t, "after mass removal", m, mm, ks)
		for range 8 {
			m.GC(nil, 0, NoStable) // idle migration
		}
		if n := len(m.entries.slots); m.entries.old != nil || n > max(16, 32*m.Records()) {
			t.Fatalf("after mass removal: %d slots (resize under way: %v) for %d records", n, m.entries.old != nil, m.Records())
		}
		if len(m.long) != 0 {
			t.Fatalf("after mass removal: %d leaves still indexed", len(m.long))
		}
	})
}

func TestCollidingKeysCollide(t *testing.T) {
	a, b := collidingKeys(0x1234, 0x5678)
	if a == b || crdt.HashKey(a) != crdt.HashKey(b) {
		t.Fatalf("%x %x", crdt.HashKey(a), crdt.HashKey(b))
	}
}

// feed is one record as a map's holder merges it: tooLong says the
// holder made it a stub as a value over its own bound (MergeTooLong).
type feed struct {
	r       crdt.Record
	tooLong bool
}

func feedAll(m *Map, fs []feed) {
	for _, f := range fs {
		if f.tooLong {
			m.MergeTooLong(clone(f.r), false, 0, nil)
		} else {
			m.Merge(clone(f.r), false, 0, nil)
		}
	}
}

// TestForgedTiesConvergeWhateverTheOrder: two maps of one configuration
// fed the same records (forged ties of one version with other values,
// expiries and kinds; values too long for the map; values the holder
// made stubs), in two orders, with repeats, hold the same state and the
// same digest; and a third map merging the states of two others (in
// both orders, and one of them twice) holds it too. Peers' stubs
// (eviction is local) may leave one a stub where the other holds the
// value, and nothing else.
func TestForgedTiesConvergeWhateverTheOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ks := []string{"a", "b", "c"}
		peerStubs := rapid.Bool().Draw(t, "peer stubs")
		var fs []feed
		for i := range rapid.IntRange(1, 25).Draw(t, "records") {
			label := fmt.Sprint("record ", i)
			r := drawAny(t, ks, label)
			r.Time = crdt.Timestamp{Wall: rapid.Int64Range(1, 3).Draw(t, label+" wall"), Node: 1} // few versions: ties are the rule
			if r.Tombstone {                                                                      // a forger's tombstone may carry an expiry and the evicted flag (the wire has both)
				r.Expires = rapid.SampledFrom([]int64{0, 0, 1, 9}).Draw(t, label+" tombstone expiry")
				r.Evicted = rapid.Bool().Draw(t, label+" tombstone evicted")
			}
			f := feed{r: r}
			if r.Evicted && !peerStubs {
				f.tooLong = true // the holder's stub of a value over its bound
			}
			fs = append(fs, f)
		}
		maxValue := rapid.IntRange(0, 8).Draw(t, "max value")
		mk := func() *Map {
			m := newMap(t, Config{DigestBits: 4})
			m.maxValue = maxValue
			return m
		}
		a, b := mk(), mk()
		feedAll(a, fs)
		perm := rapid.Permutation(fs).Draw(t, "order")
		dups := rapid.SliceOf(rapid.SampledFrom(fs)).Draw(t, "repeats")
		feedAll(b, append(perm, dups...))
		same := func(label string, x, y *Map) {
			if !x.Tree().Equal(y.Tree()) {
				t.Fatalf("%s: digests differ", label)
			}
			dx, dy := dump(x), dump(y)
			if len(dx) != len(dy) {
				t.Fatalf("%s: %d records, %d", label, len(dx), len(dy))
			}
			for i := range dx {
				p, q := dx[i], dy[i]
				if peerStubs && p.Version() == q.Version() && p.Expires == q.Expires && (p.Evicted || q.Evicted) {
					continue
				}
				if !sameRecord(p, q) {
					t.Fatalf("%s: one map holds %#v, the other %#v", label, p, q)
				}
			}
		}
		same("two orders", a, b)
		if peerStubs {
			return // a state merge ships stubs: the weaker law above is all
		}
		// State merges: commutative, idempotent (records travel with
		// the holder's stubs as peers' stubs would not: no peer stubs here).
		half := len(fs) / 2
		x, y := mk(), mk()
		feedAll(x, fs[:half])
		feedAll(y, fs[half:])
		stateOf := func(m *Map) []feed {
			var out []feed
			m.Range(func(r crdt.Record) bool {
				out = append(out, feed{r: clone(r), tooLong: r.Evicted})
				return true
			})
			return out
		}
		xy, yx := mk(), mk()
		feedAll(xy, stateOf(x))
		feedAll(xy, stateOf(y))
		feedAll(yx, stateOf(y))
		feedAll(yx, stateOf(x))
		feedAll(yx, stateOf(x))
		same("state merges in two orders", xy, yx)
		same("state merge and all records", xy, a)
	})
}
