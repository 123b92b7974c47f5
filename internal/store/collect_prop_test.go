package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/lww"
	"pgregory.net/rapid"
)

// TestCollectionsResurrectNothingAndLoseNoWrite drives one store, its
// keys crowded into few buckets, through local writes stamped late (a
// writer descheduled between its clock and the store), peers' records of
// every age with equal walls and counters of other nodes, syncs, and
// collections at the horizon, early and under a tiny MaxDead or
// MaxDeadBytes, and checks
// after every step: no key holds a version at or below one collected of
// it (no resurrection), Gone answers above it, a local write that
// returned is held (or a newer version of its key is), at most MaxDead
// dead records, and MaxDeadBytes bytes of their keys, are held after a
// collection of a member that may collect under the bounds, and the
// counters agree with what was collected.
func TestCollectionsResurrectNothingAndLoseNoWrite(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const horizon = 300
		cfg := Config{Shards: 1, DigestBits: 4, Horizon: horizon, MaxClockDrift: time.Second, MaxClockSkew: 5,
			MaxDead:      rapid.SampledFrom([]int{0, 1, 2, 10}).Draw(t, "max dead"),
			MaxDeadBytes: rapid.SampledFrom([]int64{0, 0, 1, 4, 12}).Draw(t, "max dead bytes"),
			Founder:      rapid.Bool().Draw(t, "founder")}
		if rapid.Bool().Draw(t, "sharded") {
			cfg.Shards, cfg.DigestBits = 16, 8
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		now := testNow
		var clock crdt.Timestamp // the greatest stamp applied or issued
		see := func(ts crdt.Timestamp) {
			if clock.Less(ts) {
				clock = ts
			}
		}
		next := func() crdt.Timestamp {
			ts := crdt.Timestamp{Wall: max(now, clock.Wall), Logical: 0, Node: 1}
			if ts.Wall == clock.Wall {
				ts.Logical = clock.Logical + 1
			}
			see(ts)
			return ts
		}
		var issued []crdt.Timestamp // the local clock's readings, for late writes
		s.Overtaken(func(crdt.Timestamp) bool { return false }, next)
		keys := []string{"a", "bbb", "c", "dddd", "e", "ff", "g", "hhhhh", "i", "jj"} // of several lengths, for MaxDeadBytes
		collected := map[string]crdt.Timestamp{}
		var nCollected, nValues uint64
		synced := false
		stamp := func(t *rapid.T, label string) crdt.Timestamp {
			return crdt.Timestamp{Wall: now - rapid.Int64Range(-3, 2*horizon).Draw(t, label+" age"),
				Logical: rapid.Uint32Range(0, 2).Draw(t, label+" logical"), Node: crdt.NodeID(rapid.Uint64Range(1, 3).Draw(t, label+" node"))}
		}
		expiry := func(t *rapid.T, ts crdt.Timestamp) int64 {
			if rapid.Bool().Draw(t, "ttl") {
				return ts.Wall + rapid.Int64Range(0, horizon).Draw(t, "ttl len")
			}
			return 0
		}
		check := func(what string) {
			for _, k := range keys {
				r, held := s.Lookup(k)
				c, was := collected[k]
				if !was {
					continue
				}
				if held && r.Time.Compare(c) <= 0 {
					t.Fatalf("%s: %s holds %v at or below its collected %v", what, k, r.Time, c)
				}
				if !held {
					g, ok := s.Gone(k)
					if !ok || g.Time.Compare(c) <= 0 {
						t.Fatalf("%s: %s collected at %v, Gone %v %v", what, k, c, g, ok)
					}
				}
			}
			st := s.Stats()
			if st.Expirations != nValues || st.CollectedEarly+st.CollectedByBound > nCollected {
				t.Fatalf("%s: stats %+v, collected %d of which %d values", what, st, nCollected, nValues)
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"tick": func(t *rapid.T) { now += rapid.Int64Range(0, 100).Draw(t, "tick") },
			"issue": func(t *rapid.T) {
				issued = append(issued, next())
			},
			"write": func(t *rapid.T) {
				k := rapid.SampledFrom(keys).Draw(t, "key")
				ts := next()
				if len(issued) > 0 && rapid.Bool().Draw(t, "late") {
					ts = rapid.SampledFrom(issued).Draw(t, "stamp") // stamped earlier
				}
				rec := crdt.Record{Key: k, Time: ts}
				if rapid.IntRange(0, 2).Draw(t, "delete") == 0 {
					rec.Tombstone = true
				} else {
					rec.Value, rec.Expires = []byte("v"), expiry(t, ts)
				}
				got, err := s.Write(rec)
				if err != nil {
					t.Fatal(err)
				}
				if r, ok := s.Lookup(k); !ok || r.Time.Less(got.Time) {
					t.Fatalf("write of %s at %v (stamped %v) returned, store holds %v %v", k, got.Time, ts, r, ok)
				}
				check("write")
			},
			"apply": func(t *rapid.T) {
				k := rapid.SampledFrom(keys).Draw(t, "key")
				ts := stamp(t, "apply")
				rec := crdt.Record{Key: k, Time: ts}
				if rapid.Bool().Draw(t, "delete") {
					rec.Tombstone = true
				} else {
					rec.Value, rec.Expires = []byte("p"), expiry(t, ts)
				}
				if s.Apply(rec, false, now) != crdt.Rejected {
					see(ts)
				}
				check("apply")
			},
			"offer": func(t *rapid.T) {
				leaf := rapid.Uint32Range(0, s.Leaves()-1).Draw(t, "leaf")
				s.OfferMarks([]Mark{{Leaf: leaf, Time: stamp(t, "mark")}}, now)
			},
			"evict": func(t *rapid.T) {
				s.Evict(rapid.SampledFrom(keys).Draw(t, "key"))
				check("evict")
			},
			"restart": func(t *rapid.T) {
				var buf bytes.Buffer
				if _, err := s.WriteSnapshot(&buf, now); err != nil {
					t.Fatal(err)
				}
				snap, err := ReadSnapshot(bytes.NewReader(buf.Bytes()), int64(buf.Len()), s.DigestBits())
				if err != nil {
					t.Fatal(err)
				}
				r, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				hlc := crdt.NewHLC(1, func() int64 { return now }, time.Second)
				r.Restore(snap, hlc, now)
				see(hlc.Last())
				r.Overtaken(func(crdt.Timestamp) bool { return false }, next)
				s, synced, nCollected, nValues = r, false, 0, 0
				check("restart")
			},
			"sync": func(t *rapid.T) {
				s.MarkSynced(now - rapid.Int64Range(0, 50).Draw(t, "sync age"))
				synced = true
			},
			"collect": func(t *rapid.T) {
				stable := int64(lww.NoStable)
				if rapid.Bool().Draw(t, "stable") {
					stable = now - rapid.Int64Range(0, horizon).Draw(t, "stable age")
				}
				alone := rapid.Bool().Draw(t, "alone")
				got := s.Collect(now, alone, stable)
				for _, v := range got {
					if c, ok := collected[v.Key]; !ok || c.Less(v.Time) {
						collected[v.Key] = v.Time
					}
					nCollected++
					if !v.Tombstone {
						nValues++
					}
				}
				if (cfg.MaxDead > 0 || cfg.MaxDeadBytes > 0) && (synced || cfg.Founder) {
					dead, deadKeys := 0, int64(0)
					s.Range(func(r crdt.Record) bool {
						if since, dies := r.DeadSince(); dies && since <= now {
							dead++
							deadKeys += int64(len(r.Key))
						}
						return true
					})
					if cfg.MaxDead > 0 && dead > cfg.MaxDead {
						t.Fatalf("%d dead records held after a collection, MaxDead %d", dead, cfg.MaxDead)
					}
					if cfg.MaxDeadBytes > 0 && deadKeys > cfg.MaxDeadBytes {
						t.Fatalf("%d bytes of dead records' keys held after a collection, MaxDeadBytes %d", deadKeys, cfg.MaxDeadBytes)
					}
				}
				for _, m := range s.Marks() {
					if s.PendingMarks() == 0 && m.Time.Wall > now {
						t.Fatalf("watermark %v of leaf %d ahead of now", m.Time, m.Leaf)
					}
				}
				check(fmt.Sprint("collect at ", now-testNow))
			},
		})
	})
}
