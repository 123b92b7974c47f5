package lww

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
	"pgregory.net/rapid"
)

// TestServesNothingOlderThanItHeld: whatever a map is handed (records in
// any order, older ones after newer, deltas late or not, on extreme
// timestamps and expiries) and whatever it does meanwhile (evictions,
// refills, collections by the horizon, early and forced), a value it
// serves is never of a version older than one it has held for the key:
// an evicted or collected record still shadows every older one, by its
// stub or by its bucket's watermark (the package doc). Checked from
// outside: every write's value names its version.
func TestServesNothingOlderThanItHeld(t *testing.T) {
	rapid.Check(t, servesNothingOlder((*Map).Evict))
}

// TestServesNothingOlderCatchesAnEvictionThatForgets: an eviction that
// drops the whole record, version and all, lets an older record merged
// after it in, and the map serves it; the property must say so.
func TestServesNothingOlderCatchesAnEvictionThatForgets(t *testing.T) {
	msg := rapidfail.Failure(t, "EvictionThatForgets", servesNothingOlder(forgetfulEvict))
	if msg == "" {
		t.Fatal("the property passed an eviction that forgets the version")
	}
	if !strings.Contains(msg, "older than") {
		t.Fatalf("the property caught an eviction that forgets for another reason: %s", msg)
	}
}

// forgetfulEvict is the broken variant of Map.Evict: it frees the value
// by removing the record, its version with it.
func forgetfulEvict(m *Map, key string) (int, bool) {
	e := m.entries.get(key)
	if e == nil || !e.HoldsValue() {
		return 0, false
	}
	n := e.valueLen()
	m.remove(e, m.leafOf(crdt.HashKey(key)))
	return n, true
}

// servesNothingOlder is the property of TestServesNothingOlderThanItHeld,
// with evict as the map's eviction.
func servesNothingOlder(evict func(*Map, string) (int, bool)) func(*rapid.T) {
	return func(t *rapid.T) {
		ks := []string{"a", "b", "c"}
		m := newMap(t, Config{DigestBits: 4, Horizon: 5})
		written := map[recordID]crdt.Record{} // one record per version, as in a cluster
		byValue := map[string]crdt.Record{}
		draw := func(label string) crdt.Record {
			id := recordID{rapid.SampledFrom(ks).Draw(t, label+" key"), drawTime(t, label)}
			if r, ok := written[id]; ok {
				return r
			}
			r := crdt.Record{Key: id.key, Time: id.t}
			switch rapid.IntRange(0, 2).Draw(t, label+" kind") {
			case 0:
				r.Tombstone = true
			case 1:
				r.Expires = rapid.SampledFrom([]int64{math.MinInt64, -1, 1, 6, 12, 25, 50, math.MaxInt64}).Draw(t, label+" expiry")
				fallthrough
			default:
				r.Value = fmt.Appendf(nil, "%s@%d/%d/%d", id.key, id.t.Wall, id.t.Logical, id.t.Node)
				byValue[string(r.Value)] = r
			}
			written[id] = r
			return r
		}
		held := map[string]crdt.Version{} // the newest version m has held of each key
		for i := range rapid.IntRange(1, 60).Draw(t, "steps") {
			step := fmt.Sprint("step ", i)
			switch rapid.IntRange(0, 7).Draw(t, "op") {
			case 0, 1, 2: // a record, maybe older than what is held
				r := draw("record")
				m.Merge(clone(r), rapid.Bool().Draw(t, "delta"), rapid.SampledFrom(extremeNows).Draw(t, "now"), nil)
			case 3:
				evict(m, rapid.SampledFrom(ks).Draw(t, "evict"))
			case 4: // a peer's answer to an ask: the value of the version held
				if cur, ok := m.Lookup(rapid.SampledFrom(ks).Draw(t, "refill")); ok && cur.Evicted {
					if r, ok := written[recordID{cur.Key, cur.Time}]; ok {
						m.Refill(clone(r), nil)
					}
				}
			case 5:
				stable := int64(NoStable)
				if rapid.Bool().Draw(t, "early") {
					stable = rapid.SampledFrom(extremeNows).Draw(t, "stable")
				}
				m.GC(nil, rapid.SampledFrom(extremeNows).Draw(t, "gc now"), stable)
			case 6:
				m.CollectDead(rapid.SampledFrom(ks).Draw(t, "collect"), rapid.SampledFrom(extremeNows).Draw(t, "collect now"))
			case 7:
				m.MarkSynced(rapid.SampledFrom(extremeNows).Draw(t, "synced"))
			}
			now := rapid.SampledFrom(extremeNows).Draw(t, "read now")
			for _, k := range ks {
				if v, ok := m.Get(k, now); ok {
					r, known := byValue[string(v)]
					switch h, was := held[k]; {
					case !known || r.Key != k:
						t.Fatalf("%s: Get(%q) served %q, a value never written to it", step, k, v)
					case was && r.Version().Compare(h) < 0:
						t.Fatalf("%s: Get(%q) served %v, older than %v the map held", step, k, r, h)
					}
				}
				if cur, ok := m.Lookup(k); ok {
					if h, was := held[k]; !was || h.Compare(cur.Version()) < 0 {
						held[k] = cur.Version()
					}
				}
			}
		}
	}
}
