package crdt

import (
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestClockAtTheExtremesStaysMonotonicAndBounded:
// a clock whose source starts near either end of int64 and steps both
// ways, updated by stamps within and past the drift, issues strictly
// increasing stamps (until the last one) and never follows a remote stamp
// further ahead of its physical time than the drift.
func TestClockAtTheExtremesStaysMonotonicAndBounded(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		drift := int64(time.Second)
		start := rapid.SampledFrom([]int64{math.MinInt64, math.MinInt64 + 5, -1, 0, math.MaxInt64 - 2*drift, math.MaxInt64 - 3, math.MaxInt64}).Draw(t, "start")
		pc := NewManualTime(start)
		c := NewHLC(1, pc.Now, time.Duration(drift))
		last := Timestamp{Wall: math.MinInt64}
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			switch rapid.IntRange(0, 2).Draw(t, "action") {
			case 0:
				pc.Advance(time.Duration(rapid.Int64Range(-2*drift, 2*drift).Draw(t, "move")))
			case 1:
				r := Timestamp{Wall: AddSat(pc.Now(), rapid.Int64Range(-2*drift, 2*drift).Draw(t, "off")), Logical: rapid.SampledFrom([]uint32{0, 1, math.MaxUint32 - 1, math.MaxUint32}).Draw(t, "lg"), Node: 2}
				before := c.Last()
				err := c.Update(r)
				if err != nil && c.Last() != before {
					t.Fatalf("refused update moved the clock")
				}
				if err == nil && SubSat(r.Wall, pc.Now()) > drift {
					t.Fatalf("took %v past the drift", r)
				}
			default:
				n := c.Now()
				atEnd := last.Wall == math.MaxInt64 && last.Logical == math.MaxUint32
				if !atEnd && !last.Less(n) && last.Wall != math.MinInt64 {
					t.Fatalf("Now %v not after %v", n, last)
				}
				if n.Wall < pc.Now() {
					t.Fatalf("Now %v behind physical %d", n, pc.Now())
				}
				last = n
			}
		}
	})
}
