package lww

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/bcache-go/bcache/crdt"
)

const hour = int64(time.Hour)

func newMap(t tb, cfg Config) *Map {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tb is what test helpers need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func ts(wall int64, node crdt.NodeID) crdt.Timestamp { return crdt.Timestamp{Wall: wall, Node: node} }

func set(key, value string, t crdt.Timestamp) crdt.Record {
	return crdt.Record{Key: key, Value: []byte(value), Time: t}
}

func setTTL(key, value string, t crdt.Timestamp, expires int64) crdt.Record {
	r := set(key, value, t)
	r.Expires = expires
	return r
}

func del(key string, t crdt.Timestamp) crdt.Record {
	return crdt.Record{Key: key, Time: t, Tombstone: true}
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero config", Config{}, true},
		{"shard of 16", Config{DigestBits: 12, PrefixBits: 4}, true},
		{"digest bits not a multiple of four", Config{DigestBits: 10}, false},
		{"prefix not a multiple of four", Config{PrefixBits: 2}, false},
		{"negative horizon", Config{Horizon: -time.Second}, false},
		{"too many bits", Config{DigestBits: 24, PrefixBits: 44}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Fatalf("New(%+v) error = %v, want ok=%v", tc.cfg, err, tc.ok)
			}
		})
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		records []crdt.Record
		want    []crdt.Outcome
		key     string
		value   string // "" means a miss
	}{
		{"newer write wins", []crdt.Record{set("k", "a", ts(1, 1)), set("k", "b", ts(2, 1))}, []crdt.Outcome{crdt.Applied, crdt.Applied}, "k", "b"},
		{"older write is stale", []crdt.Record{set("k", "b", ts(2, 1)), set("k", "a", ts(1, 1))}, []crdt.Outcome{crdt.Applied, crdt.Stale}, "k", "b"},
		{"duplicate is stale", []crdt.Record{set("k", "a", ts(1, 1)), set("k", "a", ts(1, 1))}, []crdt.Outcome{crdt.Applied, crdt.Stale}, "k", "a"},
		{"node id breaks a wall tie", []crdt.Record{set("k", "hi", ts(1, 9)), set("k", "lo", ts(1, 2))}, []crdt.Outcome{crdt.Applied, crdt.Stale}, "k", "hi"},
		{"delete beats an older write", []crdt.Record{set("k", "a", ts(1, 1)), del("k", ts(2, 2))}, []crdt.Outcome{crdt.Applied, crdt.Applied}, "k", ""},
		{"older write loses to a delete", []crdt.Record{del("k", ts(2, 2)), set("k", "a", ts(1, 1))}, []crdt.Outcome{crdt.Applied, crdt.Stale}, "k", ""},
		{"delete of a key never held", []crdt.Record{del("k", ts(2, 2))}, []crdt.Outcome{crdt.Applied}, "k", ""},
		{"write after delete", []crdt.Record{del("k", ts(2, 2)), set("k", "c", ts(3, 1))}, []crdt.Outcome{crdt.Applied, crdt.Applied}, "k", "c"},
		{"later write with shorter TTL wins", []crdt.Record{setTTL("k", "long", ts(1, 1), 100*hour), setTTL("k", "short", ts(2, 2), 10)}, []crdt.Outcome{crdt.Applied, crdt.Applied}, "k", ""},
		{"earlier write with longer TTL loses", []crdt.Record{setTTL("k", "short", ts(2, 2), 10), setTTL("k", "long", ts(1, 1), 100*hour)}, []crdt.Outcome{crdt.Applied, crdt.Stale}, "k", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMap(t, Config{DigestBits: 8})
			for i, r := range tc.records {
				if got := apply(m, r); got != tc.want[i] {
					t.Fatalf("Apply #%d (%v) = %v, want %v", i, r.Time, got, tc.want[i])
				}
			}
			v, ok := m.Get(tc.key, 50) // now = 50: TTL 10 has expired
			if ok != (tc.value != "") || string(v) != tc.value {
				t.Fatalf("Get(%q) = %q, %v; want %q", tc.key, v, ok, tc.value)
			}
			if !m.Tree().Equal(m.RecomputeTree()) {
				t.Fatal("incremental digest differs from recomputed digest")
			}
		})
	}
}

func TestGetHonoursExpiry(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8})
	apply(m, setTTL("k", "v", ts(1, 1), 100))
	if v, ok := m.Get("k", 99); !ok || string(v) != "v" {
		t.Fatalf("Get before expiry = %q, %v; want v", v, ok)
	}
	if _, ok := m.Get("k", 100); ok {
		t.Fatal("Get at expiry hit, want miss")
	}
	if m.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (expired values count until collected)", m.Len())
	}
}

func TestEvict(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8})
	apply(m, set("k", "value", ts(5, 1)))
	apply(m, del("gone", ts(5, 1)))
	before := m.Tree().Clone()
	if n, ok := m.Evict("k"); !ok || n != 5 {
		t.Fatalf("Evict(k) = %d, %v; want 5, true", n, ok)
	}
	if _, ok := m.Evict("k"); ok {
		t.Fatal("second Evict(k) succeeded")
	}
	if _, ok := m.Evict("gone"); ok {
		t.Fatal("Evict of a tombstone succeeded")
	}
	if !m.Tree().Equal(before) {
		t.Fatal("eviction changed the digest")
	}
	if _, ok := m.Get("k", 0); ok {
		t.Fatal("Get of an evicted key hit")
	}
	if got := apply(m, set("k", "older", ts(4, 1))); got != crdt.Stale {
		t.Fatalf("older write to an evicted key = %v, want stale", got)
	}
	if got := apply(m, set("k", "newer", ts(6, 1))); got != crdt.Applied {
		t.Fatalf("newer write to an evicted key = %v, want applied", got)
	}
	if v, _ := m.Get("k", 0); string(v) != "newer" {
		t.Fatalf("Get after newer write = %q, want newer", v)
	}
	if m.Len() != 1 || m.Evicted() != 0 || m.Tombstones() != 1 {
		t.Fatalf("counts: len %d evicted %d tombstones %d; want 1 0 1", m.Len(), m.Evicted(), m.Tombstones())
	}
}

func TestEvictedStubReplicates(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8})
	stub := crdt.Record{Key: "k", Value: []byte("ignored"), Time: ts(5, 1), Evicted: true}
	if got := apply(m, stub); got != crdt.Applied {
		t.Fatalf("Apply(stub) = %v", got)
	}
	if _, ok := m.Get("k", 0); ok {
		t.Fatal("a received stub is served")
	}
	if got := apply(m, set("k", "old", ts(4, 1))); got != crdt.Stale {
		t.Fatalf("older write after a stub = %v, want stale", got)
	}
	if r, _ := m.Lookup("k"); r.Value != nil || !r.Evicted {
		t.Fatalf("stored stub = %+v, want evicted without value", r)
	}
}

func TestGCNeedsSync(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	apply(m, del("k", ts(1, 1)))
	if got := m.GC(nil, 100*hour, NoStable); len(got) != 0 {
		t.Fatalf("GC before any sync collected %v", got)
	}
	m.MarkSynced(2 * hour)
	m.MarkSynced(hour) // older marks are ignored
	if at, ok := m.Synced(); !ok || at != 2*hour {
		t.Fatalf("Synced = %d, %v; want %d", at, ok, 2*hour)
	}
	if got := m.GC(nil, 100*hour, NoStable); len(got) != 1 || got[0].Key != "k" {
		t.Fatalf("GC after sync collected %v, want k", got)
	}
}

func TestGC(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	apply(m, del("old-delete", ts(1, 1)))
	apply(m, del("new-delete", ts(2*hour, 1)))
	apply(m, setTTL("expired", "v", ts(1, 1), 10))
	apply(m, setTTL("expiring", "v", ts(1, 1), 3*hour))
	apply(m, set("forever", "v", ts(1, 1)))
	m.MarkSynced(10 * hour)
	got := m.GC(nil, 2*hour+1, NoStable) // cutoff = hour+1
	if len(got) != 2 {
		t.Fatalf("GC collected %v, want old-delete and expired", got)
	}
	for _, k := range []string{"old-delete", "expired"} {
		if _, ok := m.Lookup(k); ok {
			t.Errorf("%s survived GC", k)
		}
	}
	for _, k := range []string{"new-delete", "expiring", "forever"} {
		if _, ok := m.Lookup(k); !ok {
			t.Errorf("%s was collected", k)
		}
	}
	if !m.Tree().Equal(m.RecomputeTree()) {
		t.Fatal("digest after GC differs from recomputed digest")
	}
}

// TestReplayAfterGCIsRejected: once a tombstone is collected, the write it
// deleted, delivered again (a late or replayed delta), must not come back.
func TestReplayAfterGCIsRejected(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	write := set("k", "v", ts(10, 1))
	apply(m, write)
	apply(m, del("k", ts(20, 2)))
	m.MarkSynced(5 * hour)
	if got := m.GC(nil, 5*hour, NoStable); len(got) != 1 {
		t.Fatalf("GC collected %v, want the tombstone", got)
	}
	if got := apply(m, write); got != crdt.Rejected {
		t.Fatalf("replayed write after GC = %v, want rejected", got)
	}
	if _, ok := m.Get("k", 5*hour); ok {
		t.Fatal("deleted key came back")
	}
	// A new write to the key is not affected.
	if got := apply(m, set("k", "fresh", ts(5*hour, 1))); got != crdt.Applied {
		t.Fatalf("new write after GC = %v, want applied", got)
	}
	if w, want := m.Watermark(m.Leaf("k")); !want || w != (crdt.Timestamp{Wall: 20, Node: math.MaxUint64}) {
		t.Fatalf("watermark = %v, %v; want the tombstone's wall and counter, every node", w, want)
	}
}

// TestTombstoneAnswersARejection: a record rejected as below its bucket's
// watermark is answered with a tombstone just above the watermark, by no
// replica, the same from every map at that watermark; merged where the
// rejected record came from, it deletes every version at or below it and
// nothing newer.
func TestTombstoneAnswersARejection(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	apply(m, del("k", ts(10, 1)))
	m.GC(nil, 100, 50) // early: written before the stable bound, dead now
	old := set("k", "old", ts(9, 1))
	if got := apply(m, old); got != crdt.Rejected {
		t.Fatalf("a record below the watermark: %v, want rejected", got)
	}
	tomb := m.Tombstone("k")
	if want := (crdt.Timestamp{Wall: 10, Logical: 1}); !tomb.Tombstone || tomb.Key != "k" || tomb.Time != want {
		t.Fatalf("tombstone %+v, want k deleted at %v", tomb, want)
	}
	sender := newMap(t, Config{DigestBits: 8})
	apply(sender, old)
	if got := apply(sender, tomb); got != crdt.Applied {
		t.Fatalf("the sender merged the tombstone: %v", got)
	}
	if _, ok := sender.Get("k", 100); ok {
		t.Fatal("the sender still serves the rejected record")
	}
	newer := set("k", "new", ts(11, 1))
	apply(sender, newer)
	if got := apply(sender, tomb); got != crdt.Stale {
		t.Fatalf("the tombstone over a newer write: %v, want stale", got)
	}
}

// TestEarlyCollection: a record dead since before the stable bound is
// collected at once, whatever the horizon; one dead since after it (a
// value that expired at now but after the bound: a member whose clock is
// behind still serves it), or not dead yet, stays.
func TestEarlyCollection(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	apply(m, del("below", ts(10, 1)))
	apply(m, del("above", ts(30, 1)))
	apply(m, setTTL("expired", "v", ts(11, 1), 19))
	apply(m, setTTL("expired after the bound", "v", ts(11, 1), 20))
	apply(m, setTTL("expiring", "v", ts(12, 1), 1000))
	apply(m, set("live", "v", ts(13, 1)))
	got := m.GC(nil, 100, 20)
	keys := []string{}
	for _, v := range got {
		keys = append(keys, v.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"below", "expired"}) {
		t.Fatalf("collected %v, want below and expired", keys)
	}
	if w, _ := m.Watermark(m.Leaf("below")); w.Wall < 10 || w.Wall >= 20 {
		t.Fatalf("watermark %v, want at least 10 and below the stable bound 20", w)
	}
}

func TestDiff(t *testing.T) {
	a, b := newMap(t, Config{DigestBits: 8}), newMap(t, Config{DigestBits: 8})
	for _, m := range []*Map{a, b} {
		apply(m, set("same", "v", ts(1, 1)))
		apply(m, del("same-delete", ts(1, 1)))
	}
	apply(a, set("only-a", "v", ts(1, 1)))
	apply(b, set("only-b", "v", ts(1, 1)))
	apply(a, set("newer-in-a", "v", ts(2, 1)))
	apply(b, set("newer-in-a", "v", ts(1, 1)))
	apply(a, set("deleted-in-b", "v", ts(1, 1)))
	apply(b, del("deleted-in-b", ts(2, 1)))
	apply(b, set("evicted-in-b", "v", ts(1, 1)))
	apply(a, set("evicted-in-b", "v", ts(1, 1)))
	b.Evict("evicted-in-b")

	_, diffs, err := Diff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Difference{}
	for _, d := range diffs {
		got[d.Key] = d
	}
	want := map[string][2]bool{
		"only-a": {true, false}, "only-b": {false, true},
		"newer-in-a": {true, true}, "deleted-in-b": {true, true},
	}
	if len(got) != len(want) {
		t.Fatalf("Diff named %d keys (%v), want %d", len(got), diffs, len(want))
	}
	for k, in := range want {
		d, ok := got[k]
		if !ok || d.InA != in[0] || d.InB != in[1] || d.Leaf != a.Leaf(k) {
			t.Errorf("Diff for %s = %+v, want InA=%v InB=%v leaf %d", k, d, in[0], in[1], a.Leaf(k))
		}
	}
}

func TestRaiseWatermark(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8})
	kept := set("k", "held", ts(10, 1))
	apply(m, kept)
	leaf := m.Leaf("k")
	m.RaiseWatermark(leaf, ts(20, 5), 2*hour)
	m.RaiseWatermark(leaf, ts(15, 5), 2*hour) // never lowers
	if w, ok := m.Watermark(leaf); !ok || w != (crdt.Timestamp{Wall: 20, Node: math.MaxUint64}) {
		t.Fatalf("watermark = %v, %v; want %v with every node", w, ok, ts(20, 5))
	}
	if v, ok := m.Get("k", 0); !ok || string(v) != "held" {
		t.Fatal("raising the watermark dropped a record the map held")
	}
	var other string // a key of the same leaf that the map does not hold
	for i := 0; other == ""; i++ {
		if k := fmt.Sprint("other-", i); m.Leaf(k) == leaf {
			other = k
		}
	}
	if got := apply(m, set(other, "old", ts(20, 4))); got != crdt.Rejected {
		t.Fatalf("record below the raised watermark = %v, want rejected", got)
	}
	if got := apply(m, set(other, "same", ts(20, 6))); got != crdt.Rejected {
		t.Fatalf("record of the watermark's wall time and counter, another node = %v, want rejected (the watermark covers every node)", got)
	}
	if got := apply(m, set(other, "new", crdt.Timestamp{Wall: 20, Logical: 1, Node: 1})); got != crdt.Applied {
		t.Fatalf("record of the same wall time above the raised watermark = %v, want applied", got)
	}
}

func TestMergeHint(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8})
	_, e := m.Merge(set("k", "1", ts(1, 1)), false, 0, nil)
	_, f := m.Merge(set("f", "1", ts(1, 1)), false, 0, nil)
	if o, got := m.Merge(set("k", "2", ts(2, 1)), false, 0, e); o != crdt.Applied || got != e {
		t.Fatalf("Merge hinted with its own entry = %v, %p; want applied, %p", o, got, e)
	}
	// An entry of another key is ignored: the record goes to its own key.
	if o, _ := m.Merge(set("k", "3", ts(3, 1)), false, 0, f); o != crdt.Applied {
		t.Fatalf("Merge hinted with another key's entry = %v, want applied", o)
	}
	if v, _ := m.Get("f", 0); string(v) != "1" {
		t.Fatalf("Merge hinted with another key's entry overwrote it: f = %q", v)
	}
	if v, _ := m.Get("k", 0); string(v) != "3" {
		t.Fatalf("k = %q, want 3", v)
	}
	// A removed entry is ignored: the record is looked up (and here
	// rejected by the watermark that collecting k's delete raised).
	apply(m, del("k", ts(3, 2)))
	m.GC(nil, 10, 4)
	if o, got := m.Merge(set("k", "old", ts(2, 5)), false, 0, e); o != crdt.Rejected || got != nil {
		t.Fatalf("Merge hinted with a removed entry = %v, %p; want rejected", o, got)
	}
	if o, got := m.Merge(set("k", "4", ts(4, 1)), false, 0, e); o != crdt.Applied || got == e {
		t.Fatalf("Merge hinted with a removed entry, with a new write = %v, %p; want applied to a new entry", o, got)
	}
	if m.Records() != 2 {
		t.Fatalf("%d records, want 2", m.Records())
	}
}

// TestCutoffSaturates (no-loss item 3): a synced mark near the bottom of
// the int64 range used to make mark - horizon wrap to a cutoff far in the
// future, and a tombstone 1 ms old was collected under a 1 h horizon. The
// subtraction saturates.
func TestCutoffSaturates(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	now := 5 * hour
	apply(m, del("k", ts(now-int64(time.Millisecond), 1)))
	m.MarkSynced(math.MinInt64 + 1)
	if cutoff, _ := m.Cutoff(now); cutoff != math.MinInt64 {
		t.Fatalf("cutoff %d, want the saturated %d", cutoff, int64(math.MinInt64))
	}
	if got := m.GC(nil, now, NoStable); len(got) != 0 {
		t.Fatalf("collected %v a millisecond after the delete", got)
	}
}

// apply merges r as a repair (not a delta) and returns the outcome.
func apply(m *Map, r crdt.Record) crdt.Outcome {
	o, _ := m.Merge(r, false, 0, nil)
	return o
}

// applyDelta merges r as a delta received at now.
func applyDelta(m *Map, r crdt.Record, now int64) crdt.Outcome {
	o, _ := m.Merge(r, true, now, nil)
	return o
}

// TestWatermarkBeforeTheEpoch: a record stamped before the Unix epoch (a
// peer's clock, or a key holder, may send one) raises its bucket's
// watermark when collected like any other; an older version of its key
// offered again is rejected, not resurrected. Found by the harness: the
// zero Timestamp once stood for "no watermark", and such a record left
// its bucket without one.
func TestWatermarkBeforeTheEpoch(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	old := set("k", "v", crdt.Timestamp{Wall: math.MinInt64 + 1, Logical: 178, Node: 9})
	apply(m, old)
	apply(m, del("k", crdt.Timestamp{Wall: math.MinInt64 + 2, Node: 9}))
	m.MarkSynced(5 * hour)
	if got := m.GC(nil, 5*hour, NoStable); len(got) != 1 {
		t.Fatalf("GC collected %v, want the tombstone", got)
	}
	if w, ok := m.Watermark(m.Leaf("k")); !ok || w.Wall != math.MinInt64+2 {
		t.Fatalf("watermark = %v, %v; want the tombstone's time", w, ok)
	}
	if got := apply(m, old); got != crdt.Rejected {
		t.Fatalf("the deleted value offered again: %v, want rejected", got)
	}
}

// TestCollectDead: a bound collects a dead record whatever rules 2 and 6
// say, and raises its bucket's watermark; it never takes a live value.
func TestCollectDead(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	apply(m, set("live", "v", ts(10, 1)))
	apply(m, del("gone", ts(20, 1)))
	if _, ok := m.CollectDead("live", 30); ok {
		t.Fatal("a live value was collected")
	}
	if v, ok := m.CollectDead("gone", 30); !ok || v.Time != ts(20, 1) {
		t.Fatalf("CollectDead(gone) = %v, %v", v, ok)
	}
	if got := apply(m, set("gone", "old", ts(15, 2))); got != crdt.Rejected {
		t.Fatalf("a write older than the collected delete: %v, want rejected", got)
	}
	if !m.Tree().Equal(m.RecomputeTree()) {
		t.Fatal("digest differs from recompute")
	}
}

// TestGCGivesBackTheEntriesTable: after a burst of short-lived keys is
// collected, the entries table shrinks to the size of what is left.
func TestGCGivesBackTheEntriesTable(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	for i := range 10_000 {
		apply(m, crdt.Record{Key: fmt.Sprint("k", i), Value: []byte("v"), Expires: 5, Time: ts(1, 1)})
	}
	apply(m, set("stays", "v", ts(1, 1)))
	if got := m.GC(nil, 10, 6); len(got) != 10_000 {
		t.Fatalf("collected %d, want 10000", len(got))
	}
	if n := len(m.entries.slots); n > 16 {
		t.Fatalf("the table holds %d slots for %d entries; want at most 16", n, m.entries.n)
	}
	if v, ok := m.Get("stays", 10); !ok || string(v) != "v" {
		t.Fatal("the entry that stays was lost in the rebuild")
	}
}

// TestEntriesTableAgainstAGoMap: the entries table, through puts,
// lookups and removals that grow and shrink it many times, holds exactly
// what a Go map would, also while a resize is under way (its entries in
// two arrays), and a resize ends within its old slots' count of puts and
// removals over migrateStep.
func TestEntriesTableAgainstAGoMap(t *testing.T) {
	tab, want := newTable(nil), map[string]*Entry{}
	rng := rand.New(rand.NewPCG(1, 2))
	resizing, ops, most, bound := 0, 0, 0, 0 // steps with a resize under way; puts and removals in this one, the most, and their bound
	for step := range 200_000 {
		key := fmt.Sprint("k", rng.IntN(3000))
		if tab.old != nil {
			resizing++
			bound = max(bound, len(tab.old)/migrateStep)
		}
		// The last fifth of every 50,000 steps only removes: the table
		// empties and shrinks, then grows again.
		switch e := tab.get(key); {
		case e != want[key]:
			t.Fatalf("step %d: get(%q) = %p, want %p", step, key, e, want[key])
		case e == nil && step%50_000 < 40_000:
			e = &Entry{key: key}
			tab.put(e)
			want[key] = e
			ops++
		case e != nil:
			if step%3 == 0 { // a new entry of the key, as a merge makes
				e = &Entry{key: key}
				tab.replace(e)
				want[key] = e
				break
			}
			tab.remove(key)
			delete(want, key)
			ops++
		}
		if tab.old == nil {
			most, ops = max(most, ops), 0
		}
		if tab.n != len(want) {
			t.Fatalf("step %d: %d entries, want %d", step, tab.n, len(want))
		}
	}
	if resizing == 0 || most > bound {
		t.Fatalf("%d steps with a resize under way, the longest over %d puts and removals; want some, each within %d", resizing, most, bound)
	}
	for key, e := range want {
		if tab.get(key) != e {
			t.Fatalf("lost %q", key)
		}
	}
	if 16*tab.n > 13*len(tab.slots) {
		t.Fatalf("%d entries in %d slots: over the load bound", tab.n, len(tab.slots))
	}
	for i := range tab.slots { // removals moved entries back with their hashes
		e := tab.slots[i].Load()
		if e == nil {
			continue
		}
		if h := tab.hash(e.key); tab.hashes[i].Load() != h {
			t.Fatalf("slot %d holds %q with hash %x, want %x", i, e.key, tab.hashes[i].Load(), h)
		}
	}
}

// TestEntryIsOneCacheLine: an entry is 64 bytes, one size class of the
// allocator, and holds back every field of the record it was given.
func TestEntryIsOneCacheLine(t *testing.T) {
	if got := unsafe.Sizeof(Entry{}); got != 64 && unsafe.Sizeof(uintptr(0)) == 8 { // the size of 64-bit platforms (56 bytes where pointers have 32 bits)
		t.Fatalf("an Entry is %d bytes; want 64", got)
	}
	for _, r := range []crdt.Record{
		{Key: "k", Value: []byte("value"), Time: crdt.Timestamp{Wall: -5, Logical: math.MaxUint32, Node: math.MaxUint64}, Expires: math.MinInt64},
		{Key: "", Value: []byte{}, Time: ts(1, 2)},
		{Key: "nil value", Time: ts(1, 2), Expires: math.MaxInt64},
		{Key: "deleted", Time: ts(3, 4), Tombstone: true},
		{Key: "evicted", Time: ts(3, 4), Evicted: true, Expires: 9},
	} {
		got := (&Map{}).newEntry(&r, r.Key).Record()
		if got.Key != r.Key || got.Time != r.Time || got.Expires != r.Expires || got.Tombstone != r.Tombstone ||
			got.Evicted != r.Evicted || string(got.Value) != string(r.Value) || (got.Value == nil) != (r.Value == nil) {
			t.Fatalf("entry of %+v gives back %+v", r, got)
		}
	}
}

// TestOverlongValueKeepsItsVersion: a value longer than an entry holds is
// kept as an evicted stub, so its version still takes part in merges.
func TestOverlongValueKeepsItsVersion(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8})
	m.maxValue = 4 // MaxValueLen, 512 MiB, scaled down
	if o, _ := m.Merge(crdt.Record{Key: "fits", Value: []byte("1234"), Time: ts(1, 1)}, false, 0, nil); o != crdt.Applied {
		t.Fatalf("outcome %v; want applied", o)
	}
	if v, ok := m.Get("fits", 0); !ok || string(v) != "1234" {
		t.Fatalf("a value at the bound: %q, %v", v, ok)
	}
	if o, _ := m.Merge(crdt.Record{Key: "k", Value: []byte("12345"), Time: ts(1, 1)}, false, 0, nil); o != crdt.Applied {
		t.Fatalf("outcome %v; want applied", o)
	}
	if r, ok := m.Lookup("k"); !ok || !r.Evicted || r.Value != nil || r.Time != ts(1, 1) {
		t.Fatalf("holds %+v, %v; want the version as an evicted stub", r, ok)
	}
}

// TestRefuses: a version of a key the map holds no record of, at or below
// its bucket's watermark, would be refused (a read with a token for it
// takes it for dead here); with no watermark, above it, or when the map
// holds a record of the key (merged whatever the watermark), it would not.
func TestRefuses(t *testing.T) {
	m := newMap(t, Config{DigestBits: crdt.MinTreeBits})
	bucket := func(key string) string { // another key of key's bucket
		for i := 0; ; i++ {
			if k := fmt.Sprint(key, "-", i); m.leafOf(crdt.HashKey(k)) == m.leafOf(crdt.HashKey(key)) {
				return k
			}
		}
	}
	gone := bucket("a")
	held := bucket(gone)
	if m.Refuses("a", ts(5, 1)) {
		t.Fatal("refused with no watermark")
	}
	m.Merge(set(held, "old", ts(3, 1)), false, 0, nil)
	m.Merge(del(gone, ts(10, 1)), false, 0, nil)
	if _, ok := m.CollectDead(gone, 20); !ok {
		t.Fatal("the delete was not collected")
	}
	switch {
	case !m.Refuses("a", ts(5, 1)):
		t.Fatal("a version below the watermark, no record of its key: not refused")
	case m.Refuses("a", ts(11, 1)):
		t.Fatal("a version above the watermark: refused")
	case m.Refuses(held, ts(5, 1)):
		t.Fatal("a version of a key the map holds: refused")
	}
	if o, _ := m.Merge(set(held, "new", ts(5, 1)), false, 0, nil); o != crdt.Applied {
		t.Fatalf("merging the version Refuses let through: %v", o)
	}
}

// TestAnswerDeletesNothingTheMapTakes: a write of another node at the
// wall time and logical counter of a record collected is refused as at or
// below the watermark, consistently with the answer, which deletes it: the
// watermark was the collected record's own timestamp, so such a write,
// above it, was taken for one that survives (Refuses false) and yet lost
// to the answer to an older record of its key (found by review).
func TestAnswerDeletesNothingTheMapTakes(t *testing.T) {
	m := newMap(t, Config{DigestBits: 4})
	var k1, k2 string
	for i := 0; k2 == ""; i++ {
		k := fmt.Sprint("key", i)
		if k1 == "" {
			k1 = k
		} else if m.Leaf(k) == m.Leaf(k1) {
			k2 = k
		}
	}
	w := int64(1000 * hour)
	apply(m, del(k1, crdt.Timestamp{Wall: w, Logical: 1, Node: 5}))
	m.MarkSynced(w + 3*hour)
	if got := m.GC(nil, w+3*hour, NoStable); len(got) != 1 {
		t.Fatalf("collected %v", got)
	}
	answer := m.Tombstone(k2)
	for _, at := range []crdt.Timestamp{{Wall: w, Logical: 1, Node: 9}, {Wall: w, Logical: 1, Node: math.MaxUint64}, {Wall: w - 10, Node: 3}} {
		if !m.Refuses(k2, at) || answer.Time.Compare(at) <= 0 {
			t.Fatalf("a write at %v: refused %v, answer %v", at, m.Refuses(k2, at), answer.Time)
		}
	}
	for _, at := range []crdt.Timestamp{{Wall: w, Logical: 2}, {Wall: w + 1}} {
		if m.Refuses(k2, at) || answer.Time.Compare(at) > 0 {
			t.Fatalf("a write at %v, above the watermark: refused %v, or below the answer %v", at, m.Refuses(k2, at), answer.Time)
		}
	}
}

// TestLateDeltaIsDropped pins rule 5: a delta whose write is older than
// now - Horizon is dropped (Late), the map unchanged: it may be of a key
// that a member which joined since (no watermark for it) would otherwise
// take back. One just inside the horizon is applied, and anti-entropy's
// copy of the late one (not a delta) is too. No test held this rule: a
// horizon a thousand times longer passed every package (found by
// review).
func TestLateDeltaIsDropped(t *testing.T) {
	const horizon = 100
	m := newMap(t, Config{DigestBits: 8, Horizon: horizon})
	now := int64(1000)
	late := set("late", "v", ts(now-horizon-1, 1))
	if o, _ := m.Merge(late, true, now, nil); o != crdt.Late {
		t.Fatalf("a delta older than the horizon: %v, want Late", o)
	}
	if _, ok := m.Get("late", now); ok || m.Len() != 0 {
		t.Fatalf("a late delta changed the map: %d records", m.Len())
	}
	if o, _ := m.Merge(set("inside", "v", ts(now-horizon, 1)), true, now, nil); o != crdt.Applied {
		t.Fatalf("a delta at the horizon: %v, want Applied", o)
	}
	if o, _ := m.Merge(late, false, now, nil); o != crdt.Applied {
		t.Fatalf("the late write by anti-entropy: %v, want Applied", o)
	}
}

// TestIdleResizeEndsAtCollections: a table whose puts stop while a
// resize is under way moves its old slots at the map's collections,
// idleStep at a time: it kept both arrays until writes came again (found
// by review).
func TestIdleResizeEndsAtCollections(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8})
	for i := 0; m.entries.old == nil || len(m.entries.old) < 4*idleStep; i++ { // up to the put that begins a large resize
		m.Merge(crdt.Record{Key: fmt.Sprint("k", i), Value: []byte("v"), Time: ts(1, 1)}, false, 0, nil)
		if i > 100_000 {
			t.Fatal("no resize began")
		}
	}
	n := len(m.entries.old)
	for gc := 1; m.entries.old != nil; gc++ {
		m.GC(nil, 0, NoStable)
		if gc > n/idleStep+1 {
			t.Fatalf("the resize of %d old slots goes on after %d collections", n, gc)
		}
	}
	if m.Records() == 0 || m.RecomputeTree().Root() != m.Tree().Root() {
		t.Fatal("the entries moved by collections are not all there")
	}
}

// TestRaisingToNoMarkIsANoOp: raising a leaf's watermark to what
// Watermark reports for a leaf nothing was collected from is a no-op, as
// Watermark's doc says; it made a real watermark, which rejected records
// stamped at the least time and allocated the watermarks (found by
// review).
func TestRaisingToNoMarkIsANoOp(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8})
	leaf := m.Leaf("k")
	w, ok := m.Watermark(leaf)
	if ok {
		t.Fatal("a fresh map has a watermark")
	}
	if !m.RaiseWatermark(leaf, w, 0) {
		t.Fatal("raising to no watermark reported a watermark lowered")
	}
	if w2, ok := m.Watermark(leaf); ok {
		t.Fatalf("raising to no watermark made one: %v", w2)
	}
	if got := apply(m, set("k", "v", crdt.Timestamp{Wall: w.Wall, Node: 3})); got != crdt.Applied {
		t.Fatalf("a record at the least wall time: %v, want applied", got)
	}
}

// TestLongLeavesStayConsistent: a leaf whose list grows past longLeaf is
// indexed by predecessor, so that unlinking an entry (a delete or an
// eviction moving its key to a new entry, a collection) no longer walks
// the list; through inserts, moves and removals, with and without the
// index, every leaf's list holds exactly the map's entries of that leaf,
// the index agrees with the list, and it is dropped once its leaf
// shrinks. (Without it, a caller that chose keys sharing a leaf, which
// HashKey's collisions allow with no search, made every delete cost the
// whole list: found by review.)
func TestLongLeavesStayConsistent(t *testing.T) {
	m := newMap(t, Config{DigestBits: 4, Alloc: func(key string) (*Entry, string) { return new(Entry), key }})
	rng := rand.New(rand.NewPCG(1, 2))
	const keys = 24_000 // 1,500 a leaf
	ts := int64(1)
	write := func(k int, tomb bool) {
		ts++
		r := crdt.Record{Key: fmt.Sprint("k", k), Time: crdt.Timestamp{Wall: ts, Node: 1}, Tombstone: tomb}
		if !tomb {
			r.Value = []byte("v")
		}
		m.Merge(r, false, ts, nil)
	}
	check := func(step string) {
		t.Helper()
		seen := 0
		for leaf := range m.heads {
			prev, indexed := m.long[uint32(leaf)]
			n := 0
			var p *Entry
			for e := m.heads[leaf]; e != nil; e = e.next {
				if e == removed || m.entries.get(e.key) != e || m.Leaf(e.key) != uint32(leaf) {
					t.Fatalf("%s: leaf %d lists %q, not the map's entry of it there", step, leaf, e.key)
				}
				if q, ok := prev[e]; indexed && (!ok || q != p) {
					t.Fatalf("%s: leaf %d's index gives %q a predecessor %p, the list %p", step, leaf, e.key, q, p)
				}
				p = e
				n++
			}
			if indexed && len(prev) != n {
				t.Fatalf("%s: leaf %d's index holds %d entries, its list %d", step, leaf, len(prev), n)
			}
			if indexed && n < shortLeaf/4 { // dropped below longAt/4 at an unlink
				t.Fatalf("%s: leaf %d of %d entries still indexed", step, leaf, n)
			}
			seen += n
		}
		if seen != m.Records() {
			t.Fatalf("%s: the leaves list %d entries, the map holds %d", step, seen, m.Records())
		}
	}
	for k := range keys {
		write(k, false)
	}
	check("after the inserts")
	indexedOnce := false
	for step := range 60_000 {
		k := rng.IntN(keys)
		switch rng.IntN(4) {
		case 0:
			write(k, false) // a new value, or back from a tombstone or an eviction: a move
		case 1:
			write(k, true) // a delete: a move
		case 2:
			m.Evict(fmt.Sprint("k", k)) // a move
		case 3:
			m.CollectDead(fmt.Sprint("k", k), ts) // a removal, if dead
		}
		indexedOnce = indexedOnce || len(m.long) > 0
		if step%5_000 == 0 {
			check(fmt.Sprint("step ", step))
		}
	}
	check("after the changes")
	if !indexedOnce {
		t.Fatal("no leaf was ever indexed: the test proves nothing")
	}
	for k := range keys { // every key deleted and collected: the leaves empty
		write(k, true)
		m.CollectDead(fmt.Sprint("k", k), ts)
	}
	check("after every key went")
	if len(m.long) != 0 || m.Records() != 0 {
		t.Fatalf("%d leaves still indexed, %d records held", len(m.long), m.Records())
	}
}

// TestRefillPutsAValueBackOnItsStub: Refill puts a value back on an
// evicted stub of its very version (time and expiry), and on nothing
// else: Merge takes no record of a version held, so a member that evicted
// a key missed it however often a peer answered an ask for it with the
// value (found by review). The digest does not change: a stub and its
// value are one version.
func TestRefillPutsAValueBackOnItsStub(t *testing.T) {
	m := newMap(t, Config{})
	rec := setTTL("k", "v", ts(5, 1), 9*hour)
	m.Merge(rec, false, 0, nil)
	m.Merge(set("live", "v", ts(5, 1)), false, 0, nil)
	m.Merge(del("dead", ts(5, 1)), false, 0, nil)
	if _, ok := m.Evict("k"); !ok {
		t.Fatal("nothing evicted")
	}
	root := m.Tree().Root()
	for name, r := range map[string]crdt.Record{
		"another time":   setTTL("k", "v", ts(6, 1), 9*hour),
		"another expiry": setTTL("k", "v", ts(5, 1), 10*hour),
		"a tombstone":    del("k", ts(5, 1)),
		"a stub":         {Key: "k", Time: ts(5, 1), Expires: 9 * hour, Evicted: true},
		"a live value":   set("live", "w", ts(5, 1)),
		"a deleted key":  set("dead", "w", ts(5, 1)),
		"a key not held": set("none", "w", ts(5, 1)),
	} {
		if o, e := m.Refill(r, nil); o != crdt.Stale || e != nil {
			t.Fatalf("%s: %v; want Stale, nothing changed", name, o)
		}
	}
	if _, ok := m.Get("k", 0); ok || m.Evicted() != 1 {
		t.Fatalf("a refused refill changed the stub: %d evicted", m.Evicted())
	}
	if o, e := m.Refill(rec, nil); o != crdt.Applied || e == nil {
		t.Fatalf("the stub's own version: %v; want Applied", o)
	}
	if v, ok := m.Get("k", 0); !ok || string(v) != "v" || m.Evicted() != 0 || m.Len() != 2 {
		t.Fatalf("after the refill: %q, %v, %d evicted, %d values", v, ok, m.Evicted(), m.Len())
	}
	if m.Tree().Root() != root {
		t.Fatal("a refill changed the digest")
	}
}

// TestAnAnswerAtTheLastTimestampDeletesTheRejected: a tombstone stamped
// at the very last timestamp, collected, raised its bucket's watermark to
// it, and the answer to a record of the bucket then rejected (above the
// watermark, saturated) fell below it: it deleted nothing at the sender,
// which sent the record again at every session (found by review). The
// watermark stops one below the last timestamp.
func TestAnAnswerAtTheLastTimestampDeletesTheRejected(t *testing.T) {
	const last = int64(1<<63 - 1)
	m := newMap(t, Config{DigestBits: 4})
	var keys []string
	for i := 0; len(keys) < 3; i++ {
		k := string(rune('a'+i%26)) + string(rune('a'+i/26))
		if len(keys) == 0 || m.Leaf(k) == m.Leaf(keys[0]) {
			keys = append(keys, k)
		}
	}
	k0, k1, k2 := keys[0], keys[1], keys[2]
	apply(m, del(k0, crdt.Timestamp{Wall: last, Logical: 1<<32 - 1, Node: 5}))
	if _, ok := m.CollectDead(k0, last); ok {
		t.Fatal("a record at the last timestamp collected: no answer stands above its watermark")
	}
	apply(m, del(k1, crdt.Timestamp{Wall: last, Logical: 1<<32 - 2, Node: 5}))
	if _, ok := m.CollectDead(k1, last); !ok {
		t.Fatal("not collected")
	}
	r := set(k2, "v", crdt.Timestamp{Wall: last, Logical: 7, Node: 2})
	if o := apply(m, r); o != crdt.Rejected {
		t.Fatalf("%v", o)
	}
	answer := m.Tombstone(k2)
	sender := newMap(t, Config{DigestBits: 4})
	apply(sender, r)
	apply(sender, answer)
	if got, _ := sender.Lookup(k2); got.Time == r.Time {
		w, _ := m.Watermark(m.Leaf(k2))
		t.Fatalf("answer %v (watermark %v) left the rejected record %v at its sender", answer.Time, w, got)
	}
}

// TestACollectedDeleteAtTheLastTimestampKeepsItsOlderValueOut: a delete
// stamped at the very last timestamp is not collected (its watermark would
// leave no answer above it), and the value it deleted, of the same wall
// time and counter, stays out; clamping the watermark below the delete
// instead let that value back in (found by review).
func TestACollectedDeleteAtTheLastTimestampKeepsItsOlderValueOut(t *testing.T) {
	const last = int64(math.MaxInt64)
	m := newMap(t, Config{DigestBits: 4})
	older := set("k", "deleted", crdt.Timestamp{Wall: last, Logical: math.MaxUint32, Node: 3})
	apply(m, older)
	apply(m, del("k", crdt.Timestamp{Wall: last, Logical: math.MaxUint32, Node: 5}))
	m.CollectDead("k", last) // collected, or kept: either way the value stays out
	if o := apply(m, older); o == crdt.Applied {
		v, _ := m.Get("k", 0)
		w, _ := m.Watermark(m.Leaf("k"))
		t.Fatalf("the deleted value came back: %v, Get %q, watermark %v", o, v, w)
	}
}

// TestARestoredWatermarkAtTheLastTimestampKeepsItsOlderValueOut: the same
// through a snapshot: its watermark at the last nanosecond (a version-1/2
// snapshot's wall, {MaxInt64, MaxUint32, MaxUint64}) restored, the write
// log's older value replayed after it must be rejected.
// TestARestoredWatermarkAtTheLastTimestampKeepsItsOlderValueOut: a
// watermark restored at the very last timestamp (a snapshot of an older
// release) keeps out what it covers, unclamped.
func TestARestoredWatermarkAtTheLastTimestampKeepsItsOlderValueOut(t *testing.T) {
	const last = int64(math.MaxInt64)
	m := newMap(t, Config{DigestBits: 4})
	leaf := m.Leaf("k")
	if !m.RaiseWatermark(leaf, crdt.Timestamp{Wall: last, Logical: math.MaxUint32, Node: math.MaxUint64}, last) {
		t.Fatal("lowered")
	}
	if o := apply(m, set("k", "deleted", crdt.Timestamp{Wall: last, Logical: math.MaxUint32, Node: 3})); o != crdt.Rejected {
		w, _ := m.Watermark(leaf)
		t.Fatalf("a value below the restored watermark came back: %v (watermark %v)", o, w)
	}
}

// TestStepBackMovesTheSyncMark: after the clock steps back by d, the
// cutoff is the mark less d less the horizon, and a tombstone dead since
// between the two is kept; a map never synced stays so, and a mark near
// the bottom of the range saturates above "never synced".
func TestStepBackMovesTheSyncMark(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	synced, step := 5*hour, 10*int64(time.Minute)
	apply(m, del("k", ts(synced-hour-step/2, 1)))
	m.MarkSynced(synced)
	m.StepBack(step)
	if cutoff, ok := m.Cutoff(synced); !ok || cutoff != synced-step-hour {
		t.Fatalf("cutoff %d (%v), want %d", cutoff, ok, synced-step-hour)
	}
	if got := m.GC(nil, synced, NoStable); len(got) != 0 {
		t.Fatalf("collected %v, dead since after the moved mark less the horizon", got)
	}
	never := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	never.StepBack(step)
	if _, ok := never.Cutoff(synced); ok {
		t.Fatal("a map never synced is synced after a step back")
	}
	low := newMap(t, Config{DigestBits: 8, Horizon: time.Hour})
	low.MarkSynced(math.MinInt64 + 1)
	low.StepBack(step)
	if _, ok := low.Cutoff(synced); !ok {
		t.Fatal("a mark near the bottom of the range, moved back, reads as never synced")
	}
}

// TestEqualVersionsConvergeWhateverTheOrder: two records of one key at
// one timestamp, both values (a member holding the cluster key can send
// them; crdt.Version.Compare already orders a tombstone after a value
// for this reason), must leave every map that received both holding the
// same one, whatever the order they came in. Each map kept the first it
// got: two members served different values for ever, and since record
// hashes leave the value out, anti-entropy never saw a difference.
func TestEqualVersionsConvergeWhateverTheOrder(t *testing.T) {
	at := crdt.Timestamp{Wall: 10, Logical: 1, Node: 7}
	x, y := set("k", "x", at), set("k", "y", at)
	xe, ye := setTTL("e", "v", at, 0), setTTL("e", "v", at, 1<<40)
	m1, m2 := newMap(t, Config{}), newMap(t, Config{})
	for _, r := range []crdt.Record{x, y, xe, ye} {
		m1.Merge(r, false, 11, nil)
	}
	for _, r := range []crdt.Record{y, x, ye, xe} {
		m2.Merge(r, false, 11, nil)
	}
	for _, k := range []string{"k", "e"} {
		r1, _ := m1.Lookup(k)
		r2, _ := m2.Lookup(k)
		if string(r1.Value) != string(r2.Value) || r1.Expires != r2.Expires {
			t.Errorf("key %q: one map holds %q (expires %d), the other %q (expires %d): the order of arrival decided", k, r1.Value, r1.Expires, r2.Value, r2.Expires)
		}
	}
	if r, _ := m1.Lookup("e"); r.Expires != 0 { // no expiry is the latest (0 ranked lowest: found by review)
		t.Errorf("of a value with no expiry and one expiring, the map keeps the one expiring at %d", r.Expires)
	}
	if m1.Tree().Root() != m2.Tree().Root() {
		t.Fatal("digests differ")
	}
}

// TestEqualVersionsConvergeBesideAStub: one version's two values, one of
// them longer than the map holds (kept as an evicted stub, as a store
// keeps a value over its MaxValueSize), must leave two maps of one
// configuration holding the same whatever the order. The tie rule skips
// stubs: the map that got the short value first kept it, the one that got
// the long value first kept the stub, for ever (README: "a member that
// receives both keeps the same one whatever their order").
func TestEqualVersionsConvergeBesideAStub(t *testing.T) {
	at := crdt.Timestamp{Wall: 10, Logical: 1, Node: 7}
	short, long := set("k", "abc", at), set("k", "abcdefgh", at)
	m1, m2 := newMap(t, Config{}), newMap(t, Config{})
	m1.maxValue, m2.maxValue = 4, 4
	m1.Merge(short, false, 11, nil)
	m1.Merge(long, false, 11, nil)
	m2.Merge(long, false, 11, nil)
	m2.Merge(short, false, 11, nil)
	r1, _ := m1.Lookup("k")
	r2, _ := m2.Lookup("k")
	if string(r1.Value) != string(r2.Value) || r1.Evicted != r2.Evicted {
		t.Fatalf("one map holds %v, the other %v: the order of arrival decided", r1, r2)
	}
}

// TestAPeersStubLeavesTheValueOfItsVersion (review 62): a stub a peer sends
// (its own eviction of the value: package doc, "an evicted record travels
// between replicas as a stub") is of the very value this map holds. Since
// b277425's tie rule a stub wins a tie over a value, and the peer's local
// eviction evicted the value here too: eviction is local (doc.go).
func TestAPeersStubLeavesTheValueOfItsVersion(t *testing.T) {
	at := crdt.Timestamp{Wall: 10, Logical: 1, Node: 7}
	for _, exp := range []int64{0, 1 << 40} {
		m := newMap(t, Config{})
		m.Merge(setTTL("k", "v", at, exp), false, 11, nil)
		stub := crdt.Record{Key: "k", Time: at, Expires: exp, Evicted: true}
		if o, _ := m.Merge(stub, false, 11, nil); o != crdt.Stale {
			t.Errorf("expiry %d: a peer's stub of the version held: %v, want Stale", exp, o)
		}
		if v, ok := m.Get("k", 11); !ok || string(v) != "v" || m.Evicted() != 0 {
			t.Errorf("expiry %d: the value held was evicted by a peer's stub (%q %v, %d evicted)", exp, v, ok, m.Evicted())
		}
	}
}

// TestForgedTombstonesConvergeWhateverTheOrder: two tombstones of one
// version that differ in the fields a tombstone does not use (an expiry,
// the evicted flag: the wire carries both, and a member holding the
// cluster key can send them) must leave maps that received both holding
// the same record whatever the order. tieWins keeps the first of two
// tombstones, taking them for one record: the maps held different
// records of one version for ever, which Range, snapshots and repairs
// hand on, and which the digest, blind to both fields, never shows.
func TestForgedTombstonesConvergeWhateverTheOrder(t *testing.T) {
	at := crdt.Timestamp{Wall: 10, Logical: 1, Node: 7}
	plain := del("k", at)
	odd := del("k", at)
	odd.Expires, odd.Evicted = 9, true
	m1, m2 := newMap(t, Config{}), newMap(t, Config{})
	m1.Merge(plain, false, 11, nil)
	m1.Merge(odd, false, 11, nil)
	m2.Merge(odd, false, 11, nil)
	m2.Merge(plain, false, 11, nil)
	r1, _ := m1.Lookup("k")
	r2, _ := m2.Lookup("k")
	if r1.Expires != r2.Expires || r1.Evicted != r2.Evicted {
		t.Fatalf("one map holds %#v, the other %#v: the order of arrival decided", r1, r2)
	}
	if o, _ := m1.MergeTooLong(crdt.Record{Key: "t", Time: at, Tombstone: true, Evicted: true}, false, 11, nil); o != crdt.Applied {
		t.Fatalf("a tombstone merged as too long: %v", o)
	}
	if r, _ := m1.Lookup("t"); r.Evicted || r.Expires != 0 {
		t.Fatalf("a tombstone held as %#v: a tombstone holds no expiry and is not evicted", r)
	}
}

// TestRefillDoesNotUndoATieLostToAValueTooLongHere: a forged tie of a
// value held here and one too long for this member's holder (merged as
// MergeTooLong) leaves the stub, as on every member that sees both; a
// Refill of the shorter value, of that very version, put it back, and the
// member served it for good (the digest leaves values out). A stub this
// member evicted itself is still refilled.
func TestRefillDoesNotUndoATieLostToAValueTooLongHere(t *testing.T) {
	at := crdt.Timestamp{Wall: 10, Logical: 1, Node: 7}
	short := crdt.Record{Key: "k", Value: []byte("ab"), Time: at}
	m := newMap(t, Config{})
	m.Merge(short, false, 11, nil)
	if o, _ := m.MergeTooLong(crdt.Record{Key: "k", Time: at, Evicted: true}, false, 11, nil); o != crdt.Applied {
		t.Fatalf("the value too long here lost the tie: %v", o)
	}
	if o, _ := m.Refill(short, nil); o != crdt.Stale {
		t.Fatalf("Refill of the value that lost the tie: %v, want Stale", o)
	}
	if r, _ := m.Lookup("k"); !r.Evicted {
		t.Fatalf("held %#v after the refill, want the stub of the value too long here", r)
	}
	// Evicted here, a value of that version is refilled, as before.
	m2 := newMap(t, Config{})
	m2.Merge(short, false, 11, nil)
	m2.Evict("k")
	if o, _ := m2.Refill(short, nil); o != crdt.Applied {
		t.Fatalf("Refill of a value evicted here: %v, want Applied", o)
	}
}

// TestRefillRefusedWhateverTheOrderOfAStubAndAValueTooLongHere: a forged
// tie of a short value and one too long here leaves the stub of the long
// one on a map that held the short value, and a Refill of the short value
// is refused there (TestRefillDoesNotUndoATieLostToAValueTooLongHere). A
// map that held a stub of that version when the long value came (a peer's
// stub, or its own eviction of the short value) kept its stub, the long
// value lost the tie as a stub over a stub, and the stub never said it
// stood for a value too long here: the Refill of the short value was
// applied, and the member served the value that lost for good, where one
// that saw the records in the other order served none.
func TestRefillRefusedWhateverTheOrderOfAStubAndAValueTooLongHere(t *testing.T) {
	at := crdt.Timestamp{Wall: 10, Logical: 1, Node: 7}
	short := crdt.Record{Key: "k", Value: []byte("ab"), Time: at}
	long := crdt.Record{Key: "k", Time: at, Evicted: true}
	for _, first := range []string{"peer's stub", "own eviction", "short value"} {
		for _, asTooLong := range []bool{true, false} {
			m := newMap(t, Config{})
			m.maxValue = 4
			switch first {
			case "peer's stub":
				m.Merge(crdt.Record{Key: "k", Time: at, Evicted: true}, false, 11, nil)
			case "own eviction":
				m.Merge(clone(short), false, 11, nil)
				m.Evict("k")
			default:
				m.Merge(clone(short), false, 11, nil)
			}
			if asTooLong {
				m.MergeTooLong(long, false, 11, nil)
			} else {
				m.Merge(crdt.Record{Key: "k", Value: []byte("abcdefgh"), Time: at}, false, 11, nil) // over the map's own bound
			}
			if o, _ := m.Refill(clone(short), nil); o != crdt.Stale {
				t.Errorf("%s, then the value too long here (MergeTooLong %v): Refill of the value that lost the tie: %v, want Stale", first, asTooLong, o)
			}
		}
	}
}
