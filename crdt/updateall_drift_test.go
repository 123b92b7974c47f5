package crdt

import (
	"math"
	"sync"
	"testing"
	"time"
)

// TestUpdateAllAgreesWithUpdateAtTheLargestDrift: with the largest drift
// a clock takes (math.MaxInt64 ns) and a physical reading below zero,
// pt+drift fits below math.MaxInt64 while the distance from pt to the
// largest walls does not fit an int64: Update and UpdateAll must still
// agree on whether such a record is further ahead than the drift.
func TestUpdateAllAgreesWithUpdateAtTheLargestDrift(t *testing.T) {
	for _, pt := range []int64{math.MinInt64, -5, -1, 0, 1} {
		for _, w := range []int64{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 - 6, math.MaxInt64 - 4} {
			src := NewManualTime(pt)
			one := NewHLC(9, src.Now, time.Duration(math.MaxInt64))
			all := NewHLC(9, src.Now, time.Duration(math.MaxInt64))
			r := Timestamp{Wall: w, Node: 1}
			refused := one.Update(r) != nil
			bound := all.UpdateAll([]Record{{Key: "k", Time: r}})
			if above := w > bound; above != refused {
				t.Errorf("pt %d, wall %d: above UpdateAll's bound %d: %v; Update refused it: %v", pt, w, bound, above, refused)
			}
			if want := pt < 0 && w > pt+math.MaxInt64; refused != want {
				t.Errorf("pt %d, wall %d: Update refused it: %v, want %v (further ahead than the drift)", pt, w, refused, want)
			}
			if one.Last() != all.Last() {
				t.Errorf("pt %d, wall %d: UpdateAll left %v, Update %v", pt, w, all.Last(), one.Last())
			}
		}
	}
}

// TestUpdateAllConcurrentWithNowAndUpdate: stamps issued by Now from
// several goroutines while others call Update and UpdateAll are unique and
// each goroutine's are increasing; every taken record is below the final
// clock.
func TestUpdateAllConcurrentWithNowAndUpdate(t *testing.T) {
	src := NewManualTime(1_000_000_000)
	c := NewHLC(1, src.Now, time.Second)
	var wg sync.WaitGroup
	stamps := make([][]Timestamp, 4)
	for g := range stamps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last Timestamp
			for i := range 2000 {
				n := c.Now()
				if i > 0 && !last.Less(n) {
					t.Errorf("goroutine %d: %v after %v", g, n, last)
					return
				}
				last = n
				stamps[g] = append(stamps[g], n)
			}
		}()
	}
	var maxTaken Timestamp
	var mu sync.Mutex
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				w := int64(1_000_000_000 + i*1000 + g)
				recs := []Record{{Key: "a", Time: Timestamp{Wall: w, Logical: uint32(i), Node: 2}}, {Key: "b", Time: Timestamp{Wall: w + 10*int64(time.Second), Node: 2}}}
				var bound int64
				if g == 0 {
					bound = c.UpdateAll(recs)
				} else {
					_ = c.Update(recs[0].Time)
					bound = 1_000_000_000 + int64(time.Second)
					if c.Update(recs[1].Time) == nil {
						t.Errorf("took a stamp past the drift")
					}
				}
				if recs[1].Time.Wall <= bound {
					t.Errorf("bound %d admits a stamp past the drift", bound)
				}
				mu.Lock()
				if maxTaken.Less(recs[0].Time) {
					maxTaken = recs[0].Time
				}
				mu.Unlock()
				if l := c.Last(); past(recs[0].Time, l) {
					t.Errorf("clock %v behind a taken stamp %v", l, recs[0].Time)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[Timestamp]bool{}
	for _, s := range stamps {
		for _, ts := range s {
			if seen[ts] {
				t.Fatalf("stamp %v issued twice", ts)
			}
			seen[ts] = true
		}
	}
	if l := c.Last(); past(maxTaken, l) {
		t.Fatalf("clock %v behind %v", l, maxTaken)
	}
}
