package lww

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"pgregory.net/rapid"
)

// TestTiesWithLocalEvictionsAgreeOnVersionExpiryAndTooLongMark: two maps fed the same records in two orders, each evicting keys
// at points of its own, hold the same version and expiry per key, and
// agree on whether the stub (if both hold one) takes a Refill.
func TestTiesWithLocalEvictionsAgreeOnVersionExpiryAndTooLongMark(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ks := []string{"a", "b"}
		var fs []feed
		for i := range rapid.IntRange(1, 12).Draw(t, "records") {
			label := fmt.Sprint("record ", i)
			r := drawAny(t, ks, label)
			r.Time = crdt.Timestamp{Wall: rapid.Int64Range(1, 2).Draw(t, label+" wall"), Node: 1}
			fs = append(fs, feed{r: r, tooLong: r.Evicted && rapid.Bool().Draw(t, label+" too long")})
		}
		maxValue := rapid.IntRange(0, 8).Draw(t, "max value")
		run := func(order []feed, label string) *Map {
			m := newMap(t, Config{DigestBits: 4})
			m.maxValue = maxValue
			for i, f := range order {
				if f.tooLong {
					m.MergeTooLong(clone(f.r), false, 0, nil)
				} else {
					m.Merge(clone(f.r), false, 0, nil)
				}
				if rapid.Bool().Draw(t, fmt.Sprint(label, " evict after ", i)) {
					m.Evict(f.r.Key)
				}
			}
			return m
		}
		a := run(fs, "a")
		b := run(rapid.Permutation(fs).Draw(t, "order"), "b")
		for _, k := range ks {
			ea, eb := a.Entry(k), b.Entry(k)
			if (ea == nil) != (eb == nil) {
				t.Fatalf("%q held by one map only", k)
			}
			if ea == nil {
				continue
			}
			if ea.version() != eb.version() || ea.expires.Load() != eb.expires.Load() {
				t.Fatalf("%q: %v vs %v", k, ea.Record(), eb.Record())
			}
			if ea.evicted() && eb.evicted() && ea.tooLong() != eb.tooLong() {
				t.Fatalf("%q: both stubs, too-long mark %v vs %v (%v)", k, ea.tooLong(), eb.tooLong(), ea.Record())
			}
		}
	})
}
