package crdt

import (
	"math"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/rapidfail"
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

// TestUpdateAllIsUpdateOfEachRecord: for any clock state, physical
// reading and batch of stamps (within, at and past the drift, at both ends
// of int64, ties on the wall with other counters), UpdateAll leaves the
// clock where Update of each record in turn leaves a copy of it, with the
// physical source standing still, and a record is above the bound it
// returns exactly when Update refuses it.
func TestUpdateAllIsUpdateOfEachRecord(t *testing.T) {
	rapid.Check(t, checkUpdateAll(func(c *HLC, recs []Record) int64 { return c.UpdateAll(recs) }))
}

// TestUpdateAllPropertyCatchesAWrongOrder: the property fails for an
// UpdateAll that takes the last record's stamp instead of the newest, and
// for one that orders stamps by wall alone.
func TestUpdateAllPropertyCatchesAWrongOrder(t *testing.T) {
	broken := map[string]func(*HLC, []Record) int64{
		"last": func(c *HLC, recs []Record) int64 {
			bound := AddSat(c.phys(), c.maxDrift)
			for i := len(recs) - 1; i >= 0; i-- {
				if recs[i].Time.Wall <= bound {
					c.Update(recs[i].Time)
					break
				}
			}
			return bound
		},
		"wall alone": func(c *HLC, recs []Record) int64 {
			bound := AddSat(c.phys(), c.maxDrift)
			var newest *Timestamp
			for i := range recs {
				if t := &recs[i].Time; t.Wall <= bound && (newest == nil || t.Wall > newest.Wall) {
					newest = t
				}
			}
			if newest != nil {
				c.Update(*newest)
			}
			return bound
		},
	}
	for name, f := range broken {
		if !rapidfail.Fails(t, "UpdateAll_"+name, checkUpdateAll(f)) {
			t.Errorf("%s: the property passed", name)
		}
	}
}

func checkUpdateAll(updateAll func(*HLC, []Record) int64) func(*rapid.T) {
	return func(t *rapid.T) {
		drift := int64(time.Second)
		pt := rapid.SampledFrom([]int64{math.MinInt64, math.MinInt64 + 5, -1, 0, 1 << 60, math.MaxInt64 - 2*drift, math.MaxInt64 - drift, math.MaxInt64}).Draw(t, "physical")
		stamp := func(label string) Timestamp {
			return Timestamp{
				Wall:    AddSat(pt, rapid.SampledFrom([]int64{-2 * drift, -1, 0, 1, drift - 1, drift, drift + 1, 2 * drift}).Draw(t, label+" off")),
				Logical: rapid.SampledFrom([]uint32{0, 1, 7, math.MaxUint32}).Draw(t, label+" logical"),
				Node:    NodeID(rapid.IntRange(1, 3).Draw(t, label+" node")),
			}
		}
		start := stamp("start")
		recs := make([]Record, rapid.IntRange(0, 8).Draw(t, "records"))
		for i := range recs {
			recs[i] = Record{Key: "k", Time: stamp("record")}
		}
		pc := NewManualTime(pt)
		one, all := NewHLC(9, pc.Now, time.Duration(drift)), NewHLC(9, pc.Now, time.Duration(drift))
		one.wall, one.logical = start.Wall, start.Logical
		all.wall, all.logical = start.Wall, start.Logical
		refused := make([]bool, len(recs))
		for i, r := range recs {
			refused[i] = one.Update(r.Time) != nil
		}
		bound := updateAll(all, recs)
		for i, r := range recs {
			if above := r.Time.Wall > bound; above != refused[i] {
				t.Fatalf("record %d (%v): above the bound %d: %v; Update refused it: %v", i, r.Time, bound, above, refused[i])
			}
		}
		if one.Last() != all.Last() {
			t.Fatalf("UpdateAll left the clock at %v, Update of each at %v", all.Last(), one.Last())
		}
	}
}
