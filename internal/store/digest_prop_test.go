package store

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// TestDigestMatchesItsRecordsUnderEveryOperation drives a store through
// random local writes and deletes, received records (values, stubs,
// tombstones, deltas, answers), evictions (by hand and by a bound),
// refills, collections (by the horizon, early, and under MaxDead),
// watermarks offered and adopted, and restores from its own snapshot, and
// checks after every step that the digest the protocol reads (every node
// of every level, as AppendHashes serves it) equals one built from scratch
// from the records the store holds, and that each leaf's versions and
// records (AppendVersions, AppendRecords) are exactly the held records of
// that leaf: a digest that missed a change would hide a difference from
// anti-entropy for ever, and a leaf that lists other records than its
// node sums would repair nothing.
func TestDigestMatchesItsRecordsUnderEveryOperation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		now := int64(1_750_000_000_000_000_000)
		shards := rapid.SampledFrom([]int{1, 16, 256}).Draw(t, "shards")
		shardBits := map[int]int{1: 0, 16: 4, 256: 8}[shards]
		digits := 1 // of the shards' own trees: 256 shards of 256 leaves take a while to check at every step
		if shards < 256 {
			digits = rapid.IntRange(1, 2).Draw(t, "local digits")
		}
		cfg := Config{
			Shards: shards, DigestBits: shardBits + 4*digits,
			Horizon: 2 * time.Second, MaxClockDrift: time.Second, MaxClockSkew: 100 * time.Millisecond,
		}
		if rapid.Bool().Draw(t, "bounded") {
			cfg.MaxKeys = rapid.IntRange(1, 4).Draw(t, "max keys")
		}
		if rapid.Bool().Draw(t, "value limit") {
			cfg.MaxValueSize = 2
		}
		if rapid.Bool().Draw(t, "max dead") {
			cfg.MaxDead = rapid.IntRange(1, 3).Draw(t, "dead")
		}
		cfg.Founder = rapid.Bool().Draw(t, "founder")
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		clock := crdt.NewHLC(1, func() int64 { return now }, time.Second)
		names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
		keys := rapid.SampledFrom(names)
		value := func(t *rapid.T) []byte { return rapid.SliceOfN(rapid.Byte(), 0, 3).Draw(t, "value") }
		t.Repeat(map[string]func(*rapid.T){
			"set":    localSet(s, keys, clock),
			"delete": localDelete(s, keys, clock),
			"fill": func(t *rapid.T) {
				key := keys.Draw(t, "key")
				f := s.WatchFill(key)
				if _, _, err := s.WriteIfUnchanged(crdt.Record{Key: key, Value: value(t), Time: clock.Now()}, f); err != nil {
					t.Fatal(err)
				}
				s.EndFill(f)
			},
			"receive": func(t *rapid.T) {
				rec := crdt.Record{
					Key: keys.Draw(t, "key"),
					Time: crdt.Timestamp{
						Wall:    now + int64(rapid.IntRange(-3000, 500).Draw(t, "offset ms"))*int64(time.Millisecond),
						Logical: uint32(rapid.IntRange(0, 1).Draw(t, "logical")),
						Node:    crdt.NodeID(rapid.IntRange(2, 3).Draw(t, "node")),
					},
				}
				if rapid.Bool().Draw(t, "expires") {
					rec.Expires = rec.Time.Wall + int64(rapid.IntRange(1, 3000).Draw(t, "ttl ms"))*int64(time.Millisecond)
				}
				switch rapid.IntRange(0, 4).Draw(t, "kind") {
				case 0:
					rec.Tombstone = true
				case 1:
					rec.Evicted = true
				default:
					rec.Value = value(t)
				}
				s.Apply(rec, rapid.Bool().Draw(t, "delta"), now)
			},
			"same version": func(t *rapid.T) { // a peer's copy of a held version: value, stub, or refill
				key := keys.Draw(t, "key")
				r, ok := s.Lookup(key)
				if !ok || r.Tombstone {
					return
				}
				r.Evicted, r.Value = false, value(t)
				if rapid.Bool().Draw(t, "refill") {
					s.Refill(r, now)
				} else {
					if rapid.Bool().Draw(t, "as stub") {
						r.Evicted, r.Value = true, nil
					}
					s.Apply(r, false, now)
				}
			},
			"answer": func(t *rapid.T) { s.Apply(s.Tombstone(keys.Draw(t, "key")), false, now) },
			"gone": func(t *rapid.T) {
				if r, ok := s.Gone(keys.Draw(t, "key")); ok {
					s.Apply(r, false, now)
				}
			},
			"evict": func(t *rapid.T) { s.Evict(keys.Draw(t, "key")) },
			"time": func(t *rapid.T) {
				now += int64(rapid.IntRange(1, 3000).Draw(t, "ms")) * int64(time.Millisecond)
			},
			"synced": func(t *rapid.T) { s.MarkSynced(now) },
			"marks": func(t *rapid.T) {
				leaf := uint32(rapid.IntRange(0, int(s.Leaves())-1).Draw(t, "leaf"))
				if rapid.Bool().Draw(t, "of a key") {
					leaf = crdt.LeafIndex(crdt.HashKey(keys.Draw(t, "key")), 0, cfg.DigestBits)
				}
				w := crdt.Timestamp{Wall: now - int64(rapid.IntRange(0, 4000).Draw(t, "mark ms ago"))*int64(time.Millisecond)}
				s.OfferMarks([]Mark{{Leaf: leaf, Time: w}}, now)
			},
			"collect": localCollect(s, &now),
			"restore": func(t *rapid.T) {
				var buf bytes.Buffer
				if _, err := s.WriteSnapshot(&buf, now); err != nil {
					t.Fatal(err)
				}
				snap, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), int64(buf.Len()), cfg.DigestBits)
				if err != nil {
					t.Fatal(err)
				}
				r, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				r.Restore(snap, clock, now)
				s = r
			},
			"": func(t *rapid.T) { checkDigest(t, s, cfg.DigestBits) },
		})
	})
}

// checkDigest compares s's digest, node by node, and its leaves' versions
// and records, with those built from scratch from the records it holds.
func checkDigest(t interface {
	Helper()
	Fatalf(string, ...any)
}, s *Store, bits int) {
	t.Helper()
	want, err := crdt.NewTree(bits)
	if err != nil {
		t.Fatalf("%v", err)
	}
	byLeaf := map[uint32][]string{}
	s.Range(func(r crdt.Record) bool {
		kh := crdt.HashKey(r.Key)
		leaf := crdt.LeafIndex(kh, 0, bits)
		want.Add(leaf, crdt.RecordHash(kh, r.Time, r.Tombstone))
		byLeaf[leaf] = append(byLeaf[leaf], versionString(r.Version()))
		return true
	})
	if got, w := s.AppendHashes(nil, 0, nil), want.Root().Hash(); len(got) != 1 || got[0] != w {
		t.Fatalf("root hash %x, recomputed %x", got, w)
	}
	for d := 1; d <= want.Depth(); d++ {
		parents := make([]uint32, len(want.Level(d-1)))
		for i := range parents {
			parents[i] = uint32(i)
		}
		got := s.AppendHashes(nil, d, parents)
		for i, n := range want.Level(d) {
			if got[i] != n.Hash() {
				t.Fatalf("level %d node %d: hash %x, recomputed %x", d, i, got[i], n.Hash())
			}
		}
	}
	for leaf := range s.Leaves() {
		var got, gotRecs []string
		for _, v := range s.AppendVersions(nil, leaf) {
			got = append(got, versionString(v))
		}
		for _, r := range s.AppendRecords(nil, leaf) {
			gotRecs = append(gotRecs, versionString(r.Version()))
		}
		slices.Sort(got)
		slices.Sort(gotRecs)
		w := slices.Sorted(slices.Values(byLeaf[leaf]))
		if !slices.Equal(got, w) || !slices.Equal(gotRecs, w) {
			t.Fatalf("leaf %d: versions %v, records %v; the store holds %v there", leaf, got, gotRecs, w)
		}
	}
}

func versionString(v crdt.Version) string {
	var b strings.Builder
	b.WriteString(v.Key)
	b.WriteByte('@')
	b.WriteString(v.Time.String())
	if v.Tombstone {
		b.WriteString("+dead")
	}
	return b.String()
}
