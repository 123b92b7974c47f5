package lww

import (
	"math"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestStepsOfNoVisitsMakeProgress: GCStep, RangeStep and RangeMortalStep
// given visits of 0 or less still go on (as a step of 1 does), so that a
// caller's loop of steps until done ends. They returned the leaf they
// were given and false, every time: `for !done` over a step of 0 (a
// budget computed as 0, or wrapped negative) never ended (found by
// review).
func TestStepsOfNoVisitsMakeProgress(t *testing.T) {
	m := newMap(t, Config{DigestBits: 8, Horizon: 1})
	for i := range 50 {
		k := string(rune('a'+i%26)) + string(rune('a'+i/26))
		if i%2 == 0 {
			m.Merge(del(k, ts(int64(i+1), 1)), false, 100, nil)
		} else {
			m.Merge(set(k, "v", ts(int64(i+1), 1)), false, 100, nil)
		}
	}
	leaves := 1 << 8
	for _, visits := range []int{0, -1, math.MinInt} {
		steps := map[string]func(uint32) (uint32, bool){
			"RangeStep": func(l uint32) (uint32, bool) {
				return m.RangeStep(l, visits, func(crdt.Record) {})
			},
			"RangeMortalStep": func(l uint32) (uint32, bool) {
				return m.RangeMortalStep(l, visits, func(crdt.Record) {})
			},
			"GCStep": func(l uint32) (uint32, bool) {
				_, l, done := m.GCStep(nil, 0, NoStable, l, visits)
				return l, done
			},
		}
		for name, step := range steps {
			leaf, done := uint32(0), false
			for n := 0; !done; n++ {
				if n > leaves+1 {
					t.Fatalf("%s with visits %d: not done after %d steps (at leaf %d)", name, visits, n, leaf)
				}
				leaf, done = step(leaf)
			}
		}
	}
}
