// Package wallclock is the physical time source of production replicas:
// Unix nanoseconds read in one monotonic-clock call instead of the two that
// time.Now makes, re-anchored to the wall clock every millisecond so that
// steps of the system clock are followed. It is safe for concurrent use.
//
// The monotonic clock stands still while the machine is suspended (Linux's
// CLOCK_MONOTONIC), and the wall clock does not: after a suspend, until the
// next re-anchoring, Now is behind by the suspend's length. Re-anchored every
// second, a laptop or edge device woken from an hour's sleep stamped the
// writes of its first second an hour early (they lost to every write its
// peers made meanwhile, their TTLs ran from an hour before) and refused its
// peers' records as an hour ahead (found by review). A millisecond bounds
// that window at the cost of one time.Now a millisecond.
package wallclock

import (
	"sync/atomic"
	"time"
)

// reanchorEvery bounds how long the source runs on the monotonic clock alone.
const reanchorEvery = time.Millisecond

type anchor struct {
	wall int64     // Unix ns at the anchor
	mono time.Time // the same instant, carrying a monotonic reading
}

// Source reads wall-clock time in Unix nanoseconds.
type Source struct {
	a atomic.Pointer[anchor]
}

// New returns a Source anchored now.
func New() *Source {
	s := &Source{}
	s.reanchor()
	return s
}

func (s *Source) reanchor() int64 {
	t := time.Now()
	s.a.Store(&anchor{wall: t.UnixNano(), mono: t})
	return t.UnixNano()
}

// Now returns the current wall-clock time in Unix nanoseconds. Between
// re-anchorings it advances with the monotonic clock; at a re-anchoring it
// may step (also backwards) to follow the system clock, which a hybrid
// logical clock absorbs.
func (s *Source) Now() int64 {
	a := s.a.Load()
	d := time.Since(a.mono)
	if d >= reanchorEvery || d < 0 {
		return s.reanchor()
	}
	return a.wall + int64(d)
}
