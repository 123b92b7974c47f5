package lww

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// TestRefillOfATiedValueThatLostIsRefused: a map evicts the
// value of a version, then receives a forged tie of it (same stamp and
// expiry, other bytes), which loses as a value over a stub; a peer that
// has not received the first value yet answers an ask with the second,
// and Refill put it on the stub. Both records reached the map, and a map
// that evicted nothing serves the greater: the refilled one served the
// value that lost, for ever (nothing of that version is sent to it
// again; digests agree). Same with the Refill before the second merge.
func TestRefillOfATiedValueThatLostIsRefused(t *testing.T) {
	ts := crdt.Timestamp{Wall: 10, Node: 1}
	big := crdt.Record{Key: "k", Value: []byte("b"), Time: ts}
	small := crdt.Record{Key: "k", Value: []byte("a"), Time: ts}
	ref := newMap(t, Config{DigestBits: 4})
	ref.Merge(clone(small), false, 0, nil)
	ref.Merge(clone(big), false, 0, nil)
	want, _ := ref.Get("k", 0)
	for _, c := range []struct {
		name             string
		first, tie, fill crdt.Record
		refillBeforeTie  bool
	}{
		{"big evicted, small refilled", big, small, small, false},
		{"small evicted, small refilled after big", small, big, small, false},
		{"big evicted, small refilled before it came", big, small, small, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMap(t, Config{DigestBits: 4})
			m.Merge(clone(c.first), false, 0, nil)
			m.Evict("k")
			if c.refillBeforeTie {
				m.Refill(clone(c.fill), nil)
				m.Merge(clone(c.tie), false, 0, nil)
			} else {
				m.Merge(clone(c.tie), false, 0, nil)
				m.Refill(clone(c.fill), nil)
			}
			if v, ok := m.Get("k", 0); ok && !bytes.Equal(v, want) {
				t.Fatalf("serves %q; a map that got both records and evicted nothing serves %q", v, want)
			}
		})
	}
}

// TestTiesWithEvictionsAndRefillsNeverServeTheLoser: a map fed
// forged ties in any order, evicting at points of its own and refilled
// with any of the records (a peer's answer, converged or not), serves,
// once it has every record, what a map that evicted nothing serves, or
// nothing.
func TestTiesWithEvictionsAndRefillsNeverServeTheLoser(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var recs []crdt.Record
		for i := range rapid.IntRange(1, 6).Draw(t, "records") {
			l := fmt.Sprint("record ", i)
			r := crdt.Record{Key: "k", Time: crdt.Timestamp{Wall: rapid.Int64Range(1, 2).Draw(t, l+" wall"), Node: 1}}
			if rapid.IntRange(0, 4).Draw(t, l+" kind") == 0 {
				r.Tombstone = true
			} else {
				r.Value = []byte(rapid.StringMatching(`[ab]{0,3}`).Draw(t, l+" value"))
				if rapid.Bool().Draw(t, l+" expires") {
					r.Expires = rapid.SampledFrom([]int64{50, 60}).Draw(t, l+" expiry")
				}
			}
			recs = append(recs, r)
		}
		ref := newMap(t, Config{DigestBits: 4})
		for _, r := range recs {
			ref.Merge(clone(r), false, 0, nil)
		}
		want, wok := ref.Get("k", 0)
		m := newMap(t, Config{DigestBits: 4})
		for i, r := range rapid.Permutation(recs).Draw(t, "order") {
			m.Merge(clone(r), false, 0, nil)
			switch rapid.IntRange(0, 2).Draw(t, fmt.Sprint("after ", i)) {
			case 1:
				m.Evict("k")
			case 2:
				m.Refill(clone(rapid.SampledFrom(recs).Draw(t, "answer")), nil)
			}
		}
		if v, ok := m.Get("k", 0); ok && (!wok || !bytes.Equal(v, want)) {
			t.Fatalf("serves %q; a map that evicted nothing serves %q (%v)", v, want, wok)
		}
	})
}
