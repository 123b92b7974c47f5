package store

import (
	"math"
	"time"

	"github.com/bcache-go/bcache/crdt"
)

// The rules of a clock floor kept on disk (bcache's clockfloor.go), for
// the Cache and the property harness's replica alike.

// FloorCut returns the cut a member that keeps a clock floor reports for
// a cut at now (transport.Config.CutCeiling): now, unless it passes the
// floor; then the floor, every stamp at its wall below it, and past says
// the floor must be raised to now.Wall.
func FloorCut(now crdt.Timestamp, floor int64) (cut crdt.Timestamp, past bool) {
	if now.Wall <= floor {
		return now, false
	}
	return crdt.Timestamp{Wall: floor, Logical: math.MaxUint32, Node: now.Node}, true
}

// CutNear returns now, the clock's reading for a cut, held to at most
// skew (MaxClockSkew) past phys, the physical clock's reading: every
// stamp at that wall, if now passes it. A member that keeps a floor
// reports no cut further ahead of its own clock, so that the floor, which
// follows the cuts, is never more than skew ahead of the clock it was
// written by. A peer's stamp up to MaxClockDrift ahead (a clock far off,
// or a key holder's) moved the clock, and the floor, that far ahead;
// restarted with its clock a few seconds behind, the member found its
// floor more than MaxClockDrift ahead and failed New (ErrAheadOfClock).
// A cut lower than the clock promises less, and is safe: its peers
// collect early later, by as much.
func CutNear(now crdt.Timestamp, phys int64, skew time.Duration) crdt.Timestamp {
	if limit := crdt.AddSat(phys, int64(skew)); now.Wall > limit {
		return crdt.Timestamp{Wall: limit, Logical: math.MaxUint32, Node: now.Node}
	}
	return now
}

// PastFloor is the stamp a restarted member's clock is moved past
// (crdt.HLC.Update) to start past the floor its last life kept: every
// stamp at the floor's wall.
func PastFloor(floor int64) crdt.Timestamp {
	return crdt.Timestamp{Wall: floor, Logical: math.MaxUint32}
}

// StartedOnPeersClock returns a function that gives a process's start
// (started, on its clock's physical time) on the clock of the peers it
// has heard from, less skew (MaxClockSkew): what KeepAnswered takes.
// elapsed gives the time since the start by a monotonic clock. The
// clock's lead over the time elapsed, which every timestamp received
// moves past the sender's clock, up to drift (MaxClockDrift), is added
// to the start; the time elapsed is the longer of the physical clock's
// and the monotonic clock's (bcache's Cache.startedOnPeersClock says
// why).
func StartedOnPeersClock(clock *crdt.HLC, started int64, elapsed func() time.Duration, drift, skew time.Duration) func() int64 {
	return func() int64 {
		since := max(crdt.SubSat(clock.Physical(), started), int64(elapsed()))
		lead := min(max(crdt.SubSat(clock.Last().Wall, crdt.AddSat(started, since)), 0), int64(drift))
		return crdt.SubSat(crdt.AddSat(started, lead), int64(skew))
	}
}
