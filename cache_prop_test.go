package bcache

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// TestCacheAgreesWithItsMaps drives one member through random local
// writes, received records (newer, older, tombstones), forgets, evictions
// by a small bound, expiries and collections, and checks after every step
// that what readers see (the index and its items, updated in place) agrees
// with the shards' maps, which are the truth: Get serves exactly the live
// values of the maps, never an evicted or older one, and Len and the byte
// count match them.
func TestCacheAgreesWithItsMaps(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		clock := new(offsetClock)
		cfg := Config{BindAddr: "127.0.0.1:0", Clock: clock.now, GCInterval: time.Hour,
			TombstoneHorizon: 2 * time.Second, MaxClockDrift: time.Second}
		if rapid.Bool().Draw(t, "bounded") {
			cfg.MaxKeys = rapid.IntRange(1, 4).Draw(t, "max keys")
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		keys := rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f"})
		value := func(t *rapid.T) []byte { return rapid.SliceOfN(rapid.Byte(), 0, 3).Draw(t, "value") }
		t.Repeat(map[string]func(*rapid.T){
			"set": func(t *rapid.T) {
				ttl := time.Duration(rapid.IntRange(0, 3).Draw(t, "ttl s")) * time.Second
				if err := c.Set(keys.Draw(t, "key"), value(t), ttl); err != nil {
					t.Fatal(err)
				}
			},
			"delete": func(t *rapid.T) {
				if err := c.Delete(keys.Draw(t, "key")); err != nil {
					t.Fatal(err)
				}
			},
			"receive": func(t *rapid.T) {
				rec := crdt.Record{
					Key: keys.Draw(t, "key"),
					Time: crdt.Timestamp{
						Wall: c.phys() + int64(rapid.IntRange(-3000, 500).Draw(t, "offset ms"))*int64(time.Millisecond),
						Node: crdt.NodeID(rapid.IntRange(1, 3).Draw(t, "node")),
					},
					Tombstone: rapid.IntRange(0, 3).Draw(t, "kind") == 0,
				}
				if !rec.Tombstone {
					rec.Value = value(t)
				}
				c.apply(rec, rapid.Bool().Draw(t, "delta"), c.phys())
			},
			"forget": func(t *rapid.T) {
				if r, ok := lookup(c, keys.Draw(t, "key")); ok {
					c.forget(r.Version())
				}
			},
			"time": func(t *rapid.T) {
				clock.advance(time.Duration(rapid.IntRange(1, 3000).Draw(t, "ms")) * time.Millisecond)
			},
			"collect": func(t *rapid.T) { c.collect() },
			"": func(t *rapid.T) {
				now := c.phys()
				var values int
				var bytes int64
				for i := range c.shards {
					s := &c.shards[i]
					s.mu.Lock()
					values += s.m.Len()
					s.m.Range(func(r crdt.Record) bool {
						if !r.Tombstone && !r.Evicted {
							bytes += int64(len(r.Key) + len(r.Value))
						}
						return true
					})
					s.mu.Unlock()
				}
				for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
					s := &c.shards[shardOf(crdt.HashKey(k))]
					s.mu.Lock()
					want, wantOK := s.m.Get(k, now)
					s.mu.Unlock()
					if got, ok := c.Get(k); ok != wantOK || string(got) != string(want) {
						t.Fatalf("Get(%s) = %q, %v; the map holds %q, %v", k, got, ok, want, wantOK)
					}
				}
				if c.Len() != values || c.bytes.Load() != bytes {
					t.Fatalf("Len %d and %d bytes; the maps hold %d values of %d bytes", c.Len(), c.bytes.Load(), values, bytes)
				}
				if cfg.MaxKeys > 0 && c.Len() > cfg.MaxKeys {
					t.Fatalf("%d values held, MaxKeys %d", c.Len(), cfg.MaxKeys)
				}
			},
		})
	})
}
