package proptest

import (
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/internal/rapidfail"
	"github.com/bcache-go/bcache/lww"
	"github.com/bcache-go/bcache/transport"
)

// harnessFails runs the harness over replicas built by factory and reports
// whether it found a counterexample.
func harnessFails(t *testing.T, name string, factory Factory) bool {
	t.Helper()
	return harnessFailsOn(t, name, Config{Factory: factory})
}

// harnessFailsOn is harnessFails with a whole harness configuration.
func harnessFailsOn(t *testing.T, name string, cfg Config) bool {
	t.Helper()
	return rapidfail.Fails(t, "BrokenReplica_"+strings.ReplaceAll(name, " ", "_"), Property(cfg))
}

// TestHarnessCatchesBrokenMerges: the harness must find a counterexample
// for merge rules that are wrong in the ways the original bcache was.
func TestHarnessCatchesBrokenMerges(t *testing.T) {
	tests := []struct {
		name  string
		merge func(*lww.Map, crdt.Record, bool, int64) crdt.Outcome
	}{
		{"longest expiry wins", func(m *lww.Map, r crdt.Record, _ bool, _ int64) crdt.Outcome {
			if cur, ok := m.Lookup(r.Key); ok && cur.Expires == 0 && r.Expires != 0 {
				return crdt.Stale // an expiring write never beats one that lives forever
			}
			o, _ := m.Merge(r, false, 0, nil)
			return o
		}},
		{"received deletes are ignored", func(m *lww.Map, r crdt.Record, _ bool, _ int64) crdt.Outcome {
			if r.Tombstone {
				return crdt.Stale
			}
			o, _ := m.Merge(r, false, 0, nil)
			return o
		}},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cfg := DefaultMapConfig()
			cfg.Merge = tc.merge
			if !harnessFails(t, "map "+tc.name, MapFactory(cfg)) {
				t.Fatalf("the harness passed replicas whose merge is broken: %s", tc.name)
			}
		})
	}
}

// broken is a production store with one rule broken.
type broken struct {
	Store
	apply func(s Store, r crdt.Record, delta bool, now int64) crdt.Outcome
}

func (b broken) Apply(r crdt.Record, delta bool, now int64) crdt.Outcome {
	if b.apply != nil {
		return b.apply(b.Store, r, delta, now)
	}
	return b.Store.Apply(r, delta, now)
}

// TestHarnessCatchesBrokenStores: the harness, on the production store,
// must find a counterexample for each rule broken: the original bcache's
// two merge bugs, and the ways a member could trust what a peer sends.
func TestHarnessCatchesBrokenStores(t *testing.T) {
	tests := []struct {
		name string
		b    broken
	}{
		{"longest expiry wins", broken{apply: func(s Store, r crdt.Record, delta bool, now int64) crdt.Outcome {
			if cur, ok := s.Lookup(r.Key); ok && !cur.Tombstone && cur.Expires == 0 && r.Expires != 0 {
				return crdt.Stale
			}
			return s.Apply(r, delta, now)
		}}},
		{"received deletes are ignored", broken{apply: func(s Store, r crdt.Record, delta bool, now int64) crdt.Outcome {
			if r.Tombstone {
				return crdt.Stale
			}
			return s.Apply(r, delta, now)
		}}},
		{"answers to rejections are ignored", broken{apply: func(s Store, r crdt.Record, delta bool, now int64) crdt.Outcome {
			if r.Tombstone && r.Time.Node == 0 {
				return crdt.Stale // the rejected record stays, and bounces
			}
			return s.Apply(r, delta, now)
		}}},
		{"received versions are restamped", broken{apply: func(s Store, r crdt.Record, delta bool, now int64) crdt.Outcome {
			r.Time.Logical++
			return s.Apply(r, delta, now)
		}}},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			cfg := DefaultStoreConfig()
			cfg.Wrap = func(s Store) transport.Replica { b := tc.b; b.Store = s; return b }
			if !harnessFails(t, "store "+tc.name, StoreFactory(cfg)) {
				t.Fatalf("the harness passed production stores with a broken rule: %s", tc.name)
			}
		})
	}
	t.Run("early_collection_without_stability", func(t *testing.T) {
		cfg := DefaultStoreConfig()
		cfg.Stable = func(_, now int64) int64 { return now - int64(time.Millisecond) }
		// One busy bucket: a collection there often raises the watermark
		// over a write of another key in flight to the collector, which
		// holds no record of that key, and the rejection comes long
		// before a horizon could excuse it.
		if !harnessFailsOn(t, "store early collection without stability", busyBucket(cfg)) {
			t.Fatal("the harness passed production stores that collect early without knowing the cluster holds the records")
		}
	})
}
