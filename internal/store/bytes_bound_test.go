package store

import (
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// TestBoundsInBytesHoldAndEvictNoMore: a store bounded in bytes (and
// maybe keys) under local writes, peers' writes, refills, deletes, reads,
// expiries and collections: the counts equal a recount, the bounds hold,
// the policy orders the values held, and each operation that evicted
// stopped at the bound (before its last victim went, the store was over).
func TestBoundsInBytesHoldAndEvictNoMore(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		now := testNow
		cfg := Config{Shards: 16, DigestBits: 8, Horizon: 2 * time.Second, MaxClockDrift: time.Second, Founder: true}
		cfg.MaxBytes = int64(rapid.IntRange(4, 40).Draw(t, "max bytes"))
		if rapid.Bool().Draw(t, "keys too") {
			cfg.MaxKeys = rapid.IntRange(1, 5).Draw(t, "max keys")
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var evicted []crdt.Record // this step's, in order
		sizes := map[string]int{} // size of the value last held of each key
		s.Watch(func(ev *Event) {
			if ev.Kind == EventEvict && ev.Here {
				evicted = append(evicted, ev.Record)
			}
			if ev.Kind == EventSet {
				sizes[ev.Record.Key] = len(ev.Record.Value)
			}
		})
		keys := rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f", "g", "h"})
		wall := now
		stamp := func() crdt.Timestamp { wall++; return crdt.Timestamp{Wall: wall, Node: 1} }
		value := func(t *rapid.T) []byte { return make([]byte, rapid.IntRange(0, 12).Draw(t, "len")) }
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			evicted = nil
			k := keys.Draw(t, "key")
			manual := false
			switch rapid.IntRange(0, 8).Draw(t, "op") {
			case 0, 1:
				v := value(t)
				if len(k)+len(v) > int(cfg.MaxBytes) {
					continue
				}
				rec := crdt.Record{Key: k, Value: v, Time: stamp()}
				if rapid.Bool().Draw(t, "ttl") {
					rec.Expires = rec.Time.Wall + int64(rapid.IntRange(1, 2000).Draw(t, "ttl ms"))*int64(time.Millisecond)
				}
				s.Write(rec)
			case 2, 3:
				ts := stamp()
				ts.Node = 2
				if rapid.Bool().Draw(t, "older") {
					ts.Wall -= 50
				}
				s.Apply(crdt.Record{Key: k, Value: value(t), Time: ts}, false, now)
			case 4:
				if r, ok := s.Lookup(k); ok && r.Evicted {
					r.Evicted = false
					r.Value = make([]byte, sizes[k])
					s.Refill(r, now)
				}
			case 5:
				s.Get(k, func() int64 { return now })
			case 6:
				s.Write(crdt.Record{Key: k, Tombstone: true, Time: stamp()})
			case 7:
				manual = s.Evict(k)
			case 8:
				now += int64(rapid.IntRange(1, 1500).Draw(t, "ms")) * int64(time.Millisecond)
				wall = max(wall, now)
				s.Collect(now, true, now-int64(time.Second))
			}
			n, b := heldValues(s)
			if s.Len() != n || s.bytes.Load() != b {
				t.Fatalf("counted %d values of %d bytes, recount %d of %d", s.Len(), s.bytes.Load(), n, b)
			}
			if cfg.MaxKeys > 0 && n > cfg.MaxKeys || b > cfg.MaxBytes {
				t.Fatalf("over the bounds: %d values of %d bytes (%+v)", n, b, cfg)
			}
			s.evictMu.Lock()
			pl := s.policy.Len()
			s.evictMu.Unlock()
			if pl != n {
				t.Fatalf("policy orders %d, %d held", pl, n)
			}
			if len(evicted) > 0 && !manual {
				last := evicted[len(evicted)-1]
				before := b + int64(len(last.Key)+sizes[last.Key])
				if !(before > cfg.MaxBytes || cfg.MaxKeys > 0 && n+1 > cfg.MaxKeys) {
					t.Fatalf("evicted %s down to %d values of %d bytes: before it %d bytes (%+v)", last.Key, n, b, before, cfg)
				}
			}
		}
	})
}

// heldValues counts the values s holds and their key and value bytes,
// from its records.
func heldValues(s *Store) (int, int64) {
	n, b := 0, int64(0)
	s.Range(func(r crdt.Record) bool {
		if !r.Tombstone && !r.Evicted {
			n++
			b += int64(len(r.Key) + len(r.Value))
		}
		return true
	})
	return n, b
}
