package proptest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/internal/rapidfail"
	"pgregory.net/rapid"
)

// liveRun drives a cluster of the production replica through writes,
// loss, duplication, reordering, partitions, crashes, restarts and joins,
// then heals it and lets the members' own timers alone (Tick, no
// StartSession) repair every difference: the sessions each member starts,
// the yields, the deferred openings and the retries must bring every
// pair of live members to the same records within a bounded time.
// Harness convergence starts sessions itself, and so cannot see a
// schedule in which the members' own sessions never compare some pair.
func liveRun(rt *rapid.T, cfg StoreConfig, settle time.Duration) {
	n := rapid.IntRange(2, 10).Draw(rt, "members")
	c, err := NewCluster(n, StoreFactory(cfg), start)
	if err != nil {
		rt.Fatal(err)
	}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	steps := rapid.IntRange(1, 60).Draw(rt, "steps")
	for range steps {
		live := func() []int {
			var l []int
			for i := range c.Size() {
				if !c.Down(i) {
					l = append(l, i)
				}
			}
			return l
		}
		switch rapid.IntRange(0, 11).Draw(rt, "action") {
		case 0, 1:
			l := live()
			if len(l) == 0 {
				continue
			}
			i := rapid.SampledFrom(l).Draw(rt, "writer")
			c.Set(i, rapid.SampledFrom(keys).Draw(rt, "key"), []byte("v"), 0)
		case 2:
			l := live()
			if len(l) == 0 {
				continue
			}
			c.Delete(rapid.SampledFrom(l).Draw(rt, "deleter"), rapid.SampledFrom(keys).Draw(rt, "key"))
		case 3:
			c.Advance(time.Duration(rapid.IntRange(1, 3000).Draw(rt, "ms")) * time.Millisecond)
			c.Tick()
		case 4:
			if c.Net.Len() > 0 {
				if _, err := c.Deliver(rapid.IntRange(0, c.Net.Len()-1).Draw(rt, "deliver")); err != nil {
					rt.Fatal(err)
				}
			}
		case 5:
			if c.Net.Len() > 0 {
				_ = c.Net.Drop(rapid.IntRange(0, c.Net.Len()-1).Draw(rt, "drop"))
			}
		case 6:
			if c.Net.Len() > 0 {
				_ = c.Net.Duplicate(rapid.IntRange(0, c.Net.Len()-1).Draw(rt, "dup"))
			}
		case 7:
			var a, b []string
			for i := range c.Size() {
				if rapid.Bool().Draw(rt, "side") {
					a = append(a, c.Name(i))
				} else {
					b = append(b, c.Name(i))
				}
			}
			c.Partition(a, b)
		case 8:
			c.Heal()
		case 9:
			l := live()
			if len(l) > 1 {
				c.Crash(rapid.SampledFrom(l).Draw(rt, "crash"))
			}
		case 10:
			for i := range c.Size() {
				if c.Down(i) {
					if err := c.Restart(i); err != nil {
						rt.Fatal(err)
					}
					break
				}
			}
		case 11:
			if c.Size() < 12 {
				if _, err := c.Join(); err != nil {
					rt.Fatal(err)
				}
			}
		}
	}
	c.Heal()
	var up []int
	for i := range c.Size() {
		if !c.Down(i) {
			up = append(up, i)
		}
	}
	if len(up) >= 3 && rapid.Bool().Draw(rt, "views differ") {
		// A member X not yet known to some (their failure detector has not
		// seen it): each of those views lacks it, for the whole settling.
		// One live member besides X knows everyone, so records have a path.
		x := rapid.SampledFrom(up).Draw(rt, "unknown")
		y := rapid.SampledFrom(up).Filter(func(i int) bool { return i != x }).Draw(rt, "knows all")
		for _, i := range up {
			if i == x || i == y || !rapid.Bool().Draw(rt, "lacks it") {
				continue
			}
			var view []string
			for _, j := range up {
				if j != x {
					view = append(view, c.Name(j))
				}
			}
			c.Replica(i).SetMembers(view)
		}
	}
	rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(rt, "seed"), 1))
	loss := float64(rapid.IntRange(0, 30).Draw(rt, "loss %")) / 100
	hold := rapid.IntRange(0, 3).Draw(rt, "hold") // rounds a frame may wait: reordering
	for elapsed := time.Duration(0); elapsed < settle; elapsed += 10 * time.Millisecond {
		c.Advance(10 * time.Millisecond)
		c.Tick()
		for i := c.Net.Len() - 1; i >= 0; i-- {
			if rng.Float64() < loss {
				_ = c.Net.Drop(i)
			}
		}
		for k := c.Net.Len(); k > 0 && c.Net.Len() > 0; k-- {
			if hold > 0 && rng.IntN(hold+1) != 0 {
				continue
			}
			if _, err := c.Deliver(rng.IntN(c.Net.Len())); err != nil {
				rt.Fatal(err)
			}
		}
	}
	for c.Net.Len() > 0 { // the last frames, then quiet time: every session ends
		if _, err := c.Deliver(0); err != nil {
			rt.Fatal(err)
		}
	}
	for range 2000 {
		c.Advance(10 * time.Millisecond)
		c.Tick()
		if err := c.DeliverAll(100_000); err != nil {
			rt.Fatal(err)
		}
	}
	var first []string
	firstName := ""
	for i := range c.Size() {
		if c.Down(i) {
			continue
		}
		var got []string
		for _, v := range Versions(c.Replica(i)) {
			got = append(got, fmt.Sprintf("%s@%d.%d/%d/%v", v.Key, v.Time.Wall, v.Time.Logical, v.Time.Node, v.Tombstone))
		}
		if firstName == "" {
			first, firstName = got, c.Name(i)
			continue
		}
		if !slices.Equal(first, got) {
			rt.Fatalf("after %v of timers alone: %s holds %v, %s holds %v", settle, firstName, first, c.Name(i), got)
		}
	}
}

// TestTimersAloneRepairEveryDifference: see liveRun.
func TestTimersAloneRepairEveryDifference(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) { liveRun(rt, DefaultStoreConfig(), 60*time.Second) })
}

// TestTimersAloneCatchMembersThatStartNoSessions: the property fails for
// members whose timers start no anti-entropy session (an interval of a
// year): what the deltas lost is never repaired.
func TestTimersAloneCatchMembersThatStartNoSessions(t *testing.T) {
	cfg := DefaultStoreConfig()
	cfg.Transport.AntiEntropyInterval = 365 * 24 * time.Hour
	if msg := rapidfail.Failure(t, "BrokenReplica_no_sessions", func(rt *rapid.T) { liveRun(rt, cfg, 60*time.Second) }); !strings.Contains(msg, "of timers alone") {
		t.Fatalf("members that start no session passed the timers-alone property (%q)", msg)
	}
}
