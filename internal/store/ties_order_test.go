package store

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// TestStoreTiesConvergeWhateverTheOrder: two stores of one
// configuration fed the same records through Apply (forged ties of few
// versions with other values, expiries and kinds; values over the
// store's bound), in two orders with repeats, evicting and refilling at
// points of their own (a refill carries the value a store that evicts
// nothing serves, as a converged peer would answer), hold the same
// version and expiry per key; and what either serves at now is what the
// reference store (no evictions) serves, or a miss.
func TestStoreTiesConvergeWhateverTheOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ks := []string{"a", "b"}
		now := testNow + 5
		var recs []crdt.Record
		for i := range rapid.IntRange(1, 12).Draw(t, "records") {
			l := fmt.Sprint("record ", i)
			r := crdt.Record{Key: rapid.SampledFrom(ks).Draw(t, l+" key"),
				Time: crdt.Timestamp{Wall: testNow + rapid.Int64Range(1, 2).Draw(t, l+" wall"), Node: 1}}
			switch rapid.IntRange(0, 4).Draw(t, l+" kind") {
			case 0:
				r.Tombstone = true
			case 1:
				r.Evicted = true
			default:
				r.Value = []byte(rapid.StringMatching(`[ab]{0,4}`).Draw(t, l+" value"))
			}
			if !r.Tombstone && rapid.Bool().Draw(t, l+" expires") {
				r.Expires = rapid.SampledFrom([]int64{now, now + 1, testNow + 100}).Draw(t, l+" expiry")
			}
			recs = append(recs, r)
		}
		cfg := Config{Shards: 1, DigestBits: 4, MaxValueSize: rapid.IntRange(0, 3).Draw(t, "max value")}
		// ref holds every record; vals, every record but peers' stubs
		// (eviction is local: a peer's stub may leave a store a miss where
		// another serves, never serving another value).
		ref, vals := newStoreR(t, cfg), newStoreR(t, cfg)
		for _, r := range recs {
			ref.Apply(r, false, now)
			if !r.Evicted {
				vals.Apply(r, false, now)
			}
		}
		refRec := func(k string) (crdt.Record, bool) { return vals.Lookup(k) }
		clock := func() int64 { return now }
		run := func(order []crdt.Record, label string) *Store {
			s := newStoreR(t, cfg)
			for i, r := range order {
				s.Apply(r, false, now)
				switch rapid.IntRange(0, 2).Draw(t, fmt.Sprint(label, " after ", i)) {
				case 1:
					s.Evict(r.Key)
				case 2: // a peer's answer: converged, or not yet (any value of the key)
					if rapid.Bool().Draw(t, fmt.Sprint(label, " converged answer ", i)) {
						if rr, ok := refRec(r.Key); ok && !rr.Evicted && !rr.Tombstone {
							rr.Value = bytes.Clone(rr.Value)
							s.Refill(rr, now)
						}
					} else if rr := rapid.SampledFrom(recs).Draw(t, fmt.Sprint(label, " answer ", i)); rr.Key == r.Key && !rr.Evicted && !rr.Tombstone {
						rr.Value = bytes.Clone(rr.Value)
						s.Refill(rr, now)
					}
				}
			}
			return s
		}
		a := run(recs, "a")
		perm := rapid.Permutation(recs).Draw(t, "order")
		b := run(append(perm, rapid.SliceOf(rapid.SampledFrom(recs)).Draw(t, "repeats")...), "b")
		for _, k := range ks {
			rr, rok := ref.Lookup(k)
			rv, rserved := vals.Get(k, clock)
			for _, x := range []struct {
				name string
				s    *Store
			}{{"a", a}, {"b", b}} {
				xr, ok := x.s.Lookup(k)
				if ok != rok || ok && (xr.Version() != rr.Version() || xr.Expires != rr.Expires) {
					t.Fatalf("%s: %q holds %v, the reference %v", x.name, k, xr, rr)
				}
				if v, served := x.s.Get(k, clock); served && (!rserved || !bytes.Equal(v, rv)) {
					t.Fatalf("%s: %q serves %q, the reference store serves %q (%v); holds %v, reference %v", x.name, k, v, rv, rserved, xr, rr)
				}
			}
		}
	})
}

func newStoreR(t *rapid.T, cfg Config) *Store {
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
