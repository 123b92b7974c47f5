package store

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
	"pgregory.net/rapid"
)

// TestEvictionNeverServesWhatAnUnboundedStoreWouldNot drives a bounded
// store (MaxKeys, MaxBytes, or both, a few values) and an unbounded one
// (its shadow, with the same value limit) through the same local writes,
// received records (newer, older, ties of the version held), refills
// (with the value of the version held, or another value of it, or a
// record of another version: a peer's answer behind or ahead), manual
// evictions, expiries and collections. Eviction drops values and nothing
// else: both hold the same version of every key, and a value the bounded
// store serves is the one the shadow serves. Its counts match a recount,
// and its policy orders exactly the values it holds.
func TestEvictionNeverServesWhatAnUnboundedStoreWouldNot(t *testing.T) {
	rapid.Check(t, evictShadowProperty(intact))
}

// evictShadowProperty is TestEvictionNeverServesWhatAnUnboundedStoreWouldNot,
// with the bounded store's rule broken (intact: none).
func evictShadowProperty(broken brokenRule) func(*rapid.T) {
	return func(t *rapid.T) {
		now := int64(1_750_000_000_000_000_000)
		cfg := Config{Shards: 16, DigestBits: 8, Horizon: 2 * time.Second, MaxClockDrift: time.Second}
		switch rapid.IntRange(0, 2).Draw(t, "bound") {
		case 0:
			cfg.MaxKeys = rapid.IntRange(1, 4).Draw(t, "max keys")
		case 1:
			cfg.MaxBytes = int64(rapid.IntRange(1, 8).Draw(t, "max bytes"))
		default:
			cfg.MaxKeys = rapid.IntRange(1, 4).Draw(t, "max keys")
			cfg.MaxBytes = int64(rapid.IntRange(1, 8).Draw(t, "max bytes"))
		}
		if rapid.Bool().Draw(t, "value limit") {
			cfg.MaxValueSize = rapid.IntRange(1, 3).Draw(t, "max value")
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.broken = broken
		shadowCfg := cfg
		shadowCfg.MaxKeys, shadowCfg.MaxBytes, shadowCfg.MaxValueSize = 0, 0, valueLimit(cfg)
		shadow, err := New(shadowCfg)
		if err != nil {
			t.Fatal(err)
		}
		both := func(fn func(*Store)) { fn(s); fn(shadow) }
		clock := crdt.NewHLC(1, func() int64 { return now }, time.Second)
		names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
		keys := rapid.SampledFrom(names)
		maxLen := int(max(cfg.MaxBytes, 4)) + 1
		value := func(t *rapid.T) []byte { return rapid.SliceOfN(rapid.Byte(), 0, maxLen).Draw(t, "value") }
		expiry := func(t *rapid.T, wall int64) int64 {
			if ttl := rapid.IntRange(0, 3).Draw(t, "ttl s"); ttl > 0 {
				return wall + int64(ttl)*int64(time.Second)
			}
			return 0
		}
		// forge: records may tie with a version held (a forger's, holding
		// the cluster key); else a timestamp stands for one record.
		forge := rapid.Bool().Draw(t, "forge")
		type version struct {
			key  string
			time crdt.Timestamp
		}
		issued := map[version]crdt.Record{} // the first record of each version
		issue := func(rec crdt.Record) {
			if _, ok := issued[version{rec.Key, rec.Time}]; !ok {
				issued[version{rec.Key, rec.Time}] = rec
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"set": func(t *rapid.T) {
				rec := crdt.Record{Key: keys.Draw(t, "key"), Value: value(t), Time: clock.Now()}
				rec.Expires = expiry(t, rec.Time.Wall)
				issue(rec)
				both(func(s *Store) { s.Write(rec) })
			},
			"delete": func(t *rapid.T) {
				rec := crdt.Record{Key: keys.Draw(t, "key"), Time: clock.Now(), Tombstone: true}
				both(func(s *Store) { s.Write(rec) })
			},
			"receive": func(t *rapid.T) {
				key := keys.Draw(t, "key")
				rec := crdt.Record{Key: key, Time: crdt.Timestamp{
					Wall: now + int64(rapid.IntRange(-3000, 500).Draw(t, "offset ms"))*int64(time.Millisecond),
					Node: crdt.NodeID(rapid.IntRange(2, 4).Draw(t, "node")),
				}}
				if held, ok := shadow.Lookup(key); ok && forge && rapid.Bool().Draw(t, "tie") {
					rec.Time = held.Time // a tie of the version held (a forger's)
				}
				kind := rapid.IntRange(0, 4).Draw(t, "kind")
				if kind == 0 {
					rec.Tombstone = true
				} else {
					rec.Value = value(t)
					rec.Expires = expiry(t, rec.Time.Wall)
				}
				if was, ok := issued[version{key, rec.Time}]; ok && !forge {
					rec = was // the record of that version
				}
				issue(rec)
				if kind == 1 && !rec.Tombstone { // a peer's stub of it: its value evicted there
					rec.Value, rec.Evicted = nil, true
				}
				delta := rapid.Bool().Draw(t, "delta")
				both(func(s *Store) { s.Apply(rec, delta, now) })
			},
			"refill": func(t *rapid.T) {
				key := keys.Draw(t, "key")
				held, ok := s.Lookup(key)
				if !ok || !held.Evicted {
					return
				}
				// An owner answers with the value of the version written:
				// the first of it issued (a forger's ties aside).
				v, ok := issued[version{key, held.Time}]
				if !ok || v.Tombstone || v.Expires != held.Expires {
					return
				}
				rec := v
				both(func(s *Store) { s.Refill(rec, now) })
			},
			"refill another version": func(t *rapid.T) {
				// A peer's answer of another version of an evicted key
				// (from a peer behind this member, or ahead of it): the
				// stub is of none of them, and takes none.
				key := keys.Draw(t, "key")
				held, ok := s.Lookup(key)
				if !ok || !held.Evicted {
					return
				}
				var others []crdt.Record
				for v, rec := range issued {
					if v.key == key && v.time != held.Time && !rec.Tombstone {
						others = append(others, rec)
					}
				}
				if len(others) == 0 {
					return
				}
				slices.SortFunc(others, func(a, b crdt.Record) int { return a.Time.Compare(b.Time) })
				rec := rapid.SampledFrom(others).Draw(t, "answer")
				both(func(s *Store) { s.Refill(rec, now) })
			},
			"evict": func(t *rapid.T) { s.Evict(keys.Draw(t, "key")) },
			"get":   func(t *rapid.T) { s.Get(keys.Draw(t, "key"), func() int64 { return now }) },
			"time": func(t *rapid.T) {
				now += int64(rapid.IntRange(1, 3000).Draw(t, "ms")) * int64(time.Millisecond)
			},
			"collect": func(t *rapid.T) {
				stable := int64(lww.NoStable)
				if rapid.Bool().Draw(t, "early") {
					stable = now - int64(rapid.IntRange(0, 3000).Draw(t, "stable ms ago"))*int64(time.Millisecond)
				}
				alone := rapid.Bool().Draw(t, "alone")
				both(func(s *Store) { s.Collect(now, alone, stable) })
			},
			"": func(t *rapid.T) {
				for _, k := range names {
					got, gotOK := s.Lookup(k)
					want, wantOK := shadow.Lookup(k)
					if gotOK != wantOK || got.Time != want.Time || got.Tombstone != want.Tombstone {
						t.Fatalf("%s: bounded holds %+v (%v), unbounded %+v (%v)", k, got, gotOK, want, wantOK)
					}
					sh := &s.shards[s.shardOf(crdt.HashKey(k))]
					var it *item
					var use uint32
					sh.mu.Lock()
					if e := sh.m.Entry(k); e != nil && e.HoldsValue() {
						it = itemOf(e)
						use = it.use.Load()
					}
					sh.mu.Unlock()
					v, ok := s.Get(k, func() int64 { return now })
					if it != nil {
						it.use.Store(use) // the check's read is not the workload's
					}
					if !ok {
						continue
					}
					w, wok := shadow.Get(k, func() int64 { return now })
					if !wok || !bytes.Equal(v, w) {
						t.Fatalf("%s: bounded serves %q, unbounded %q (%v)", k, v, w, wok)
					}
				}
				values, held := recount(s)
				if s.Len() != values || s.bytes.Load() != held {
					t.Fatalf("Len %d and %d bytes; the maps hold %d values of %d bytes", s.Len(), s.bytes.Load(), values, held)
				}
				if cfg.MaxKeys > 0 && s.Len() > cfg.MaxKeys || cfg.MaxBytes > 0 && held > cfg.MaxBytes {
					t.Fatalf("%d values of %d bytes held, bounds %d and %d", s.Len(), held, cfg.MaxKeys, cfg.MaxBytes)
				}
				if s.policy.Len() != s.Len() {
					t.Fatalf("the policy orders %d values, %d held", s.policy.Len(), s.Len())
				}
			},
		})
	}
}
