package store

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
	"github.com/bcache-go/bcache/lww"
	"pgregory.net/rapid"
)

// TestStoreAgreesWithItsMaps drives a store through random local writes,
// received records (newer, older, tombstones), forgets, evictions by a
// small bound, expiries and collections, and checks after every step that
// what readers see (the index and its items, updated in place) agrees with
// the shards' maps, which are the truth: Get serves exactly the live
// values of the maps, never an evicted or older one, and Len and the byte
// count match them. Bounded, it holds at most MaxKeys values, never evicts
// below that, and its policy orders exactly the values held. And its
// watcher's events, replayed from the start, rebuild exactly the values it
// holds: every set, delete, eviction, expiry and drop is reported.
func TestStoreAgreesWithItsMaps(t *testing.T) {
	rapid.Check(t, storeProperty(0))
}

// TestFeedPropertyCatchesAMissingKind: a watcher that misses one kind of
// event (as a store that did not report it would) fails the property.
func TestFeedPropertyCatchesAMissingKind(t *testing.T) {
	for _, kind := range []EventKind{EventSet, EventDelete, EventEvict, EventExpire, EventDrop} {
		if !rapidfail.Fails(t, fmt.Sprintf("StoreFeedWithout_%d", kind), storeProperty(kind)) {
			t.Errorf("the property passed a feed without events of kind %d", kind)
		}
	}
}

// storeProperty is TestStoreAgreesWithItsMaps, with a feed that misses
// the events of kind missing (0: none).
func storeProperty(missing EventKind) func(*rapid.T) {
	return func(t *rapid.T) {
		now := int64(1_750_000_000_000_000_000)
		cfg := Config{Shards: 16, DigestBits: 8, Horizon: 2 * time.Second, MaxClockDrift: time.Second}
		if rapid.Bool().Draw(t, "bounded") {
			cfg.MaxKeys = rapid.IntRange(1, 4).Draw(t, "max keys")
		}
		if rapid.Bool().Draw(t, "value limit") {
			cfg.MaxValueSize = 2
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		feed := map[string]crdt.Record{} // the values the events say the store holds
		s.Watch(func(ev *Event) {
			if ev.Kind == missing {
				return
			}
			switch ev.Kind {
			case EventSet:
				feed[ev.Record.Key] = ev.Record
			default:
				delete(feed, ev.Record.Key)
			}
		})
		clock := crdt.NewHLC(1, func() int64 { return now }, time.Second)
		keys := rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f"})
		var evictions uint64 // as of the last check, and those Evict made since
		manual := false
		value := func(t *rapid.T) []byte { return rapid.SliceOfN(rapid.Byte(), 0, 3).Draw(t, "value") }
		t.Repeat(map[string]func(*rapid.T){
			"set":    localSet(s, keys, clock),
			"delete": localDelete(s, keys, clock),
			"receive": func(t *rapid.T) {
				rec := crdt.Record{
					Key: keys.Draw(t, "key"),
					Time: crdt.Timestamp{
						Wall: now + int64(rapid.IntRange(-3000, 500).Draw(t, "offset ms"))*int64(time.Millisecond),
						Node: crdt.NodeID(rapid.IntRange(2, 4).Draw(t, "node")),
					},
				}
				switch rapid.IntRange(0, 4).Draw(t, "kind") {
				case 0:
					rec.Tombstone = true
				case 1:
					rec.Evicted = true // a peer's version whose value it evicted
				default:
					rec.Value = value(t)
				}
				s.Apply(rec, rapid.Bool().Draw(t, "delta"), now)
			},
			"answer": func(t *rapid.T) { // a peer's tombstone answering a rejection
				s.Apply(s.Tombstone(keys.Draw(t, "key")), false, now)
			},
			"dropped": func(t *rapid.T) { // a peer rejected this member's record: its answer, above it
				key := keys.Draw(t, "key")
				if r, ok := s.Lookup(key); ok {
					s.Apply(crdt.Record{Key: key, Tombstone: true, Time: crdt.Timestamp{Wall: r.Time.Wall, Logical: r.Time.Logical + 1}}, false, now)
				}
			},
			"get":   func(t *rapid.T) { s.Get(keys.Draw(t, "key"), func() int64 { return now }) },
			"evict": func(t *rapid.T) { manual = s.Evict(keys.Draw(t, "key")) || manual },
			"time": func(t *rapid.T) {
				now += int64(rapid.IntRange(1, 3000).Draw(t, "ms")) * int64(time.Millisecond)
			},
			"synced":  func(t *rapid.T) { s.MarkSynced(now) },
			"collect": localCollect(s, &now),
			"": func(t *rapid.T) {
				values, bytes := recount(s)
				for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
					// Readers find each key's entry (its item while it
					// holds a value), or none, as the writer does.
					sh := &s.shards[s.shardOf(crdt.HashKey(k))]
					sh.mu.Lock()
					checkFound(t, sh, k)
					sh.mu.Unlock()
				}
				for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
					sh := &s.shards[s.shardOf(crdt.HashKey(k))]
					sh.mu.Lock()
					want, wantOK := sh.m.Get(k, now)
					// This check's read is not the workload's (the "get"
					// action is): its item's use word is put back, or every
					// value would be read after every step and the policy
					// would never order an unread one.
					var it *item
					var use uint32
					if e := sh.m.Entry(k); e != nil && e.HoldsValue() {
						it = itemOf(e)
						use = it.use.Load()
					}
					sh.mu.Unlock()
					if got, ok := s.Get(k, func() int64 { return now }); ok != wantOK || string(got) != string(want) {
						t.Fatalf("Get(%s) = %q, %v; the map holds %q, %v", k, got, ok, want, wantOK)
					}
					if it != nil {
						it.use.Store(use)
					}
				}
				if s.Len() != values || s.bytes.Load() != bytes {
					t.Fatalf("Len %d and %d bytes; the maps hold %d values of %d bytes", s.Len(), s.bytes.Load(), values, bytes)
				}
				if cfg.MaxKeys > 0 && s.Len() > cfg.MaxKeys {
					t.Fatalf("%d values held, MaxKeys %d", s.Len(), cfg.MaxKeys)
				}
				if ev := s.stats.evictions.Load(); ev > evictions && !manual && s.Len() != cfg.MaxKeys {
					t.Fatalf("evicted down to %d values, MaxKeys %d", s.Len(), cfg.MaxKeys)
				}
				evictions, manual = s.stats.evictions.Load(), false
				if s.policy != nil && s.policy.Len() != s.Len() {
					t.Fatalf("the policy orders %d values, %d held", s.policy.Len(), s.Len())
				}
				held := map[string]crdt.Record{}
				s.Range(func(r crdt.Record) bool {
					if !r.Tombstone && !r.Evicted {
						held[r.Key] = r
					}
					return true
				})
				if !maps.EqualFunc(held, feed, func(a, b crdt.Record) bool {
					return a.Time == b.Time && string(a.Value) == string(b.Value) && a.Expires == b.Expires
				}) {
					t.Fatalf("the feed rebuilds %v; the store holds %v", feed, held)
				}
			},
		})
	}
}

// localSet is a property's action writing a random key here with a small
// value and, at times, a TTL of a few seconds.
func localSet(s *Store, keys *rapid.Generator[string], clock *crdt.HLC) func(*rapid.T) {
	return func(t *rapid.T) {
		rec := crdt.Record{Key: keys.Draw(t, "key"), Value: rapid.SliceOfN(rapid.Byte(), 0, 3).Draw(t, "value"), Time: clock.Now()}
		if ttl := rapid.IntRange(0, 3).Draw(t, "ttl s"); ttl > 0 {
			rec.Expires = rec.Time.Wall + int64(ttl)*int64(time.Second)
		}
		if _, err := s.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
}

// localDelete is a property's action deleting a random key here.
func localDelete(s *Store, keys *rapid.Generator[string], clock *crdt.HLC) func(*rapid.T) {
	return func(t *rapid.T) {
		if _, err := s.Write(crdt.Record{Key: keys.Draw(t, "key"), Time: clock.Now(), Tombstone: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// localCollect is a property's action collecting at *now, early at times
// (a stable bound up to 3 s back), alone or not.
func localCollect(s *Store, now *int64) func(*rapid.T) {
	return func(t *rapid.T) {
		stable := int64(lww.NoStable)
		if rapid.Bool().Draw(t, "early") {
			stable = *now - int64(rapid.IntRange(0, 3000).Draw(t, "stable ms ago"))*int64(time.Millisecond)
		}
		s.Collect(*now, rapid.Bool().Draw(t, "alone"), stable)
	}
}

// recount counts the values the store's maps hold and their keys' and
// values' bytes, shard by shard under each shard's lock: what Len and the
// store's byte count must say.
func recount(s *Store) (values int, held int64) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		values += sh.m.Len()
		sh.m.Range(func(r crdt.Record) bool {
			if !r.Tombstone && !r.Evicted {
				held += int64(len(r.Key) + len(r.Value))
			}
			return true
		})
		sh.mu.Unlock()
	}
	return values, held
}
