package crdt

import (
	"errors"
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"
)

const t0 = int64(1_700_000_000_000_000_000)

func TestTimestampCompare(t *testing.T) {
	base := Timestamp{Wall: 10, Logical: 5, Node: 7}
	tests := []struct {
		name string
		a, b Timestamp
		want int
	}{
		{"equal", base, base, 0},
		{"wall decides", Timestamp{Wall: 9, Logical: 9, Node: 9}, base, -1},
		{"logical decides", Timestamp{Wall: 10, Logical: 6, Node: 1}, base, 1},
		{"node breaks ties", Timestamp{Wall: 10, Logical: 5, Node: 6}, base, -1},
		{"zero is older than the first reading at time zero", Timestamp{}, Timestamp{Node: 1}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Compare(tc.b); got != tc.want {
				t.Fatalf("Compare(%v, %v) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := tc.b.Compare(tc.a); got != -tc.want {
				t.Fatalf("Compare(%v, %v) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
		})
	}
}

func TestClockNow(t *testing.T) {
	tests := []struct {
		name  string
		moves []int64 // physical readings before each Now
		want  []Timestamp
	}{
		{"physical time advances", []int64{100, 200}, []Timestamp{{Wall: 100}, {Wall: 200}}},
		{"physical time stands still", []int64{100, 100, 100}, []Timestamp{{Wall: 100}, {Wall: 100, Logical: 1}, {Wall: 100, Logical: 2}}},
		{"physical time steps back", []int64{100, 50, 101}, []Timestamp{{Wall: 100}, {Wall: 100, Logical: 1}, {Wall: 101}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc := NewManualTime(0)
			c := NewHLC(3, pc.Now, 0)
			for i, p := range tc.moves {
				pc.Set(p)
				want := tc.want[i]
				want.Node = 3
				if got := c.Now(); got != want {
					t.Fatalf("Now #%d at physical %d = %v, want %v", i, p, got, want)
				}
			}
		})
	}
}

// TestClockCarry pins the carry rule: a full logical counter moves the wall
// reading forward by one nanosecond instead of overflowing.
func TestClockCarry(t *testing.T) {
	pc := NewManualTime(1000)
	c := NewHLC(1, pc.Now, 0)
	c.Now()
	c.logical = math.MaxUint32 - 1
	pc.Set(10) // a long step backwards: every Now below must still increase
	got := []Timestamp{c.Now(), c.Now(), c.Now()}
	want := []Timestamp{
		{Wall: 1000, Logical: math.MaxUint32, Node: 1},
		{Wall: 1001, Logical: 0, Node: 1},
		{Wall: 1001, Logical: 1, Node: 1},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Now #%d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestClockUpdate(t *testing.T) {
	tests := []struct {
		name    string
		remote  Timestamp
		wantErr bool
		wantNow Timestamp // next Now after the update, physical time at t0
	}{
		{"older remote changes nothing", Timestamp{Wall: t0 - 5, Logical: 9, Node: 2}, false, Timestamp{Wall: t0, Logical: 1, Node: 1}},
		{"same wall, higher logical", Timestamp{Wall: t0, Logical: 7, Node: 2}, false, Timestamp{Wall: t0, Logical: 8, Node: 1}},
		{"ahead within drift", Timestamp{Wall: t0 + int64(time.Second), Logical: 3, Node: 2}, false, Timestamp{Wall: t0 + int64(time.Second), Logical: 4, Node: 1}},
		{"exactly at the drift limit", Timestamp{Wall: t0 + int64(time.Minute), Node: 2}, false, Timestamp{Wall: t0 + int64(time.Minute), Logical: 1, Node: 1}},
		{"beyond the drift limit", Timestamp{Wall: t0 + int64(time.Minute) + 1, Node: 2}, true, Timestamp{Wall: t0, Logical: 1, Node: 1}},
		{"counter at its maximum", Timestamp{Wall: t0 + 10, Logical: math.MaxUint32, Node: 2}, false, Timestamp{Wall: t0 + 11, Node: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pc := NewManualTime(t0)
			c := NewHLC(1, pc.Now, time.Minute)
			c.Now()
			err := c.Update(tc.remote)
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrClockDrift)) {
				t.Fatalf("Update(%v) error = %v, want error %v", tc.remote, err, tc.wantErr)
			}
			if got := c.Now(); got != tc.wantNow {
				t.Fatalf("Now after Update(%v) = %v, want %v", tc.remote, got, tc.wantNow)
			}
		})
	}
}

func TestClockDefaultDrift(t *testing.T) {
	c := NewHLC(1, NewManualTime(0).Now, 0)
	if got := c.MaxDrift(); got != DefaultMaxClockDrift || got > time.Minute {
		t.Fatalf("MaxDrift() = %v, want %v (at most a minute)", got, DefaultMaxClockDrift)
	}
}

// TestClockProperties drives a clock with arbitrary physical moves (forwards
// and backwards) and received timestamps, and checks that Now strictly
// increases, passes every accepted remote timestamp, never runs further
// ahead of physical time than accepted remotes and carries allow, and that a
// rejected Update changes nothing.
func TestClockProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		const drift = int64(time.Second)
		pc := NewManualTime(rapid.Int64Range(0, 1<<40).Draw(t, "start"))
		c := NewHLC(1, pc.Now, time.Duration(drift))
		last := c.Now()
		maxRemote := Timestamp{}
		for step := range rapid.IntRange(1, 200).Draw(t, "steps") {
			switch rapid.IntRange(0, 3).Draw(t, "action") {
			case 0:
				pc.Advance(time.Duration(rapid.Int64Range(-int64(time.Hour), int64(time.Hour)).Draw(t, "move")))
			case 1: // jump the counter close to its maximum to exercise the carry
				c.logical = max(c.logical, rapid.Uint32Range(math.MaxUint32-3, math.MaxUint32).Draw(t, "counter"))
				last = c.Last()
			case 2:
				remote := Timestamp{
					Wall:    pc.Now() + rapid.Int64Range(-2*drift, 2*drift).Draw(t, "offset"),
					Logical: rapid.Uint32().Draw(t, "logical"),
					Node:    2,
				}
				before := c.Last()
				err := c.Update(remote)
				tooFar := remote.Wall-pc.Now() > drift
				if tooFar != (err != nil) {
					t.Fatalf("step %d: Update(%v) at physical %d: error %v, want error %v", step, remote, pc.Now(), err, tooFar)
				}
				if err != nil && c.Last() != before {
					t.Fatalf("step %d: rejected Update moved the clock from %v to %v", step, before, c.Last())
				}
				if err == nil && maxRemote.Less(remote) {
					maxRemote = remote
				}
			case 3:
				now := c.Now()
				if !last.Less(now) {
					t.Fatalf("step %d: Now went from %v to %v", step, last, now)
				}
				if !maxRemote.Less(now) {
					t.Fatalf("step %d: Now %v not past accepted remote %v", step, now, maxRemote)
				}
				last = now
			}
		}
	})
}

// TestClockStopsAtTheLastTimestamp: at the greatest wall time with a full
// logical counter, Now stays there: it wrapped to the least wall time,
// going backwards (found by review).
func TestClockStopsAtTheLastTimestamp(t *testing.T) {
	pc := NewManualTime(math.MaxInt64)
	c := NewHLC(1, pc.Now, 0)
	if err := c.Update(Timestamp{Wall: math.MaxInt64, Logical: math.MaxUint32, Node: 2}); err != nil {
		t.Fatal(err)
	}
	last := c.Last()
	if got := c.Now(); got.Less(last) {
		t.Fatalf("Now after %v = %v: backwards", last, got)
	}
}

// TestManualTimeSaturates: a ManualTime advanced past the end of the
// int64 range stays at its end (it wrapped to 1677: found by review).
func TestManualTimeSaturates(t *testing.T) {
	m := NewManualTime(math.MaxInt64 - 5)
	m.Advance(10)
	if got := m.Now(); got != math.MaxInt64 {
		t.Fatalf("advanced past the end: %d", got)
	}
	m = NewManualTime(math.MinInt64 + 5)
	m.Advance(-10)
	if got := m.Now(); got != math.MinInt64 {
		t.Fatalf("moved back past the start: %d", got)
	}
}
