package lww

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// TestTooLongMarkDoesNotDependOnTheOrder: two maps fed the same records
// (ties of one version: values, peers' stubs, values too long here or for
// the holder) in two orders answer a Refill alike wherever both hold a
// stub of the same version.
func TestTooLongMarkDoesNotDependOnTheOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var fs []feed
		for i := range rapid.IntRange(1, 8).Draw(t, "records") {
			label := fmt.Sprint("record ", i)
			r := crdt.Record{Key: "k", Time: crdt.Timestamp{Wall: rapid.Int64Range(1, 2).Draw(t, label+" wall"), Node: 1}}
			r.Expires = rapid.SampledFrom([]int64{0, 5, 9}).Draw(t, label+" exp")
			f := feed{r: r}
			switch rapid.IntRange(0, 3).Draw(t, label+" kind") {
			case 0:
				f.r.Evicted = true
			case 1:
				f.r.Evicted, f.tooLong = true, true
			case 2:
				f.r.Value = []byte("long value")
			default:
				f.r.Value = []byte(rapid.StringMatching(`[ab]{1,3}`).Draw(t, label+" value"))
			}
			fs = append(fs, f)
		}
		mk := func() *Map {
			m := newMap(t, Config{DigestBits: 4})
			m.maxValue = 4
			return m
		}
		a, b := mk(), mk()
		feedAll(a, fs)
		feedAll(b, rapid.Permutation(fs).Draw(t, "order"))
		ra, _ := a.Lookup("k")
		rb, _ := b.Lookup("k")
		if !(ra.Evicted && rb.Evicted) || ra.Time != rb.Time || ra.Expires != rb.Expires {
			return
		}
		probe := crdt.Record{Key: "k", Value: []byte("z"), Time: ra.Time, Expires: ra.Expires}
		oa, _ := a.Refill(clone(probe), nil)
		ob, _ := b.Refill(clone(probe), nil)
		if oa != ob {
			t.Fatalf("refill: %v and %v", oa, ob)
		}
	})
}
