package crdt

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// DefaultMaxClockDrift is how far ahead of local physical time a received
// timestamp may be before [HLC.Update] refuses it.
const DefaultMaxClockDrift = 30 * time.Second

// ErrClockDrift is returned (wrapped) by [HLC.Update] when a remote
// timestamp is further ahead of local physical time than the clock's
// maximum drift.
var ErrClockDrift = errors.New("crdt: timestamp too far ahead of local clock")

// HLC is a hybrid logical clock. It is safe for concurrent use.
//
// Now returns strictly increasing timestamps whatever the physical source
// does, until the last timestamp there is (wall math.MaxInt64, counter
// math.MaxUint32: a source that reads within the drift of the year 2262,
// or jumped there), which it then returns again and again (see Now). When
// the source stands still or steps backwards, Now keeps the last
// wall reading and increments the logical counter. The carry rule: when the
// counter is at its maximum, the wall reading advances by one nanosecond and
// the counter restarts at zero, so a long backward step under heavy write
// load never overflows; it only lets the clock run ahead of physical time
// by one nanosecond per 2^32 timestamps.
type HLC struct {
	phys     func() int64
	node     NodeID
	maxDrift int64

	mu      sync.Mutex
	wall    int64
	logical uint32
}

// NewHLC returns a clock for the given node reading physical time (Unix
// nanoseconds) from phys. A maxDrift of zero or less selects
// [DefaultMaxClockDrift].
func NewHLC(node NodeID, phys func() int64, maxDrift time.Duration) *HLC {
	if maxDrift <= 0 {
		maxDrift = DefaultMaxClockDrift
	}
	// The least wall time, not 0: a physical source before 1970 is stamped
	// as it reads; from 0, the clock stamped the epoch, ahead of physical
	// time by the whole distance, and peers refused its writes as drifted.
	return &HLC{phys: phys, node: node, maxDrift: int64(maxDrift), wall: math.MinInt64}
}

// Node returns the id stamped on every timestamp this clock issues.
func (c *HLC) Node() NodeID { return c.node }

// MaxDrift returns the maximum drift this clock accepts in Update.
func (c *HLC) MaxDrift() time.Duration { return time.Duration(c.maxDrift) }

// Physical returns the current reading of the physical source.
func (c *HLC) Physical() int64 { return c.phys() }

// Now returns a timestamp greater than every timestamp this clock issued or
// accepted through Update before (once the last one there is, that one).
func (c *HLC) Now() Timestamp {
	pt := c.phys()
	c.mu.Lock()
	switch {
	case pt > c.wall:
		c.wall, c.logical = pt, 0
	case c.logical == math.MaxUint32 && c.wall == math.MaxInt64:
		// The last timestamp there is (the year 2262, or a peer's that far
		// ahead within the drift allowed): it stays, rather than wrap to
		// the first.
	case c.logical == math.MaxUint32:
		c.wall, c.logical = c.wall+1, 0
	default:
		c.logical++
	}
	t := Timestamp{Wall: c.wall, Logical: c.logical, Node: c.node}
	c.mu.Unlock()
	return t
}

// Last returns the newest reading the clock has issued or accepted, without
// advancing it.
func (c *HLC) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Timestamp{Wall: c.wall, Logical: c.logical, Node: c.node}
}

// Update moves the clock past a timestamp received from another replica, so
// that every later Now is greater than remote (except past the last
// timestamp there is: a remote stamp at wall math.MaxInt64 with a full
// counter leaves Now at that reading, which is less than remote's where
// remote's node id is the greater). If remote is more than the
// maximum drift ahead of local physical time, Update changes nothing and
// returns an error wrapping [ErrClockDrift].
//
// A remote stamp exactly at the bound is taken whatever its counter, and
// a peer may send one with its counter near the end: this clock's next
// stamps then carry (see HLC) one nanosecond past the bound unless the
// physical source moves on first, and a peer reading the same physical
// time refuses them. A real clock moves on within the next stamp or so; a
// source stood still ([ManualTime]) does not. Refusing stamps at the
// bound with a high counter only moves the window: whatever the rule, the
// highest stamp it takes leaves this clock a next stamp the same rule
// refuses (tried and withdrawn, found by review). Only a Now that waits
// for the source to move would close it.
func (c *HLC) Update(remote Timestamp) error {
	if err := c.CheckDrift(remote); err != nil {
		return err
	}
	c.advance(remote)
	return nil
}

// advance moves the clock to t if t is past it.
func (c *HLC) advance(t Timestamp) {
	c.mu.Lock()
	if past(t, Timestamp{Wall: c.wall, Logical: c.logical}) {
		c.wall, c.logical = t.Wall, t.Logical
	}
	c.mu.Unlock()
}

// past reports whether a is past b on the clock: by wall, then counter
// (the node does not order a clock's readings).
func past(a, b Timestamp) bool { return a.Wall > b.Wall || a.Wall == b.Wall && a.Logical > b.Logical }

// UpdateAll is Update of every record of recs, in one step: one reading
// of the physical source and one hold of the lock, where a receiver that
// called Update per record paid both for each (on this machine the
// reading alone is about 30 ns, a tenth of applying a received record).
// It moves the clock past the newest timestamp among the records Update
// would take, and returns the bound they were checked against: a record
// whose Wall is above it is one Update would refuse (ErrClockDrift), and
// the clock did not move for it. Every record is checked against the
// same reading, taken as the call begins, where Update per record read
// the source again for each: a stamp at the very edge of the drift may
// be refused here that a later reading would have taken: a difference
// of the microseconds a received frame takes to apply, or of a whole
// restore, whose snapshot is replayed in one call (only a clock that
// stepped back since the snapshot was written meets that edge).
func (c *HLC) UpdateAll(recs []Record) (bound int64) {
	bound = AddSat(c.phys(), c.maxDrift)
	newest, found := Timestamp{}, false
	for i := range recs {
		t := recs[i].Time
		if t.Wall <= bound && (!found || past(t, newest)) {
			newest, found = t, true
		}
	}
	if found {
		c.advance(newest)
	}
	return bound
}

// CheckDrift reports, without changing the clock, whether Update would
// accept remote.
func (c *HLC) CheckDrift(remote Timestamp) error {
	// Against the bound UpdateAll returns, not SubSat(remote.Wall, pt) >
	// maxDrift: that distance saturates at math.MaxInt64 where it does not
	// fit (a reading below zero, a wall near the top), and with the
	// largest drift, math.MaxInt64, a stamp further ahead than it was taken
	// here while UpdateAll refused it (found by review). The bound is
	// exact: it saturates only where no wall is above the true sum.
	pt := c.phys()
	if remote.Wall > AddSat(pt, c.maxDrift) {
		return fmt.Errorf("crdt: timestamp %v: %w (ahead by %v, limit %v)",
			remote, ErrClockDrift, time.Duration(SubSat(remote.Wall, pt)), time.Duration(c.maxDrift))
	}
	return nil
}

// ManualTime is a physical time source moved by hand, for tests and
// simulations. It is safe for concurrent use.
type ManualTime struct {
	mu sync.Mutex
	ns int64
}

// NewManualTime returns a ManualTime reading ns.
func NewManualTime(ns int64) *ManualTime { return &ManualTime{ns: ns} }

// Now returns the current reading in Unix nanoseconds; pass the method
// value as an [HLC]'s physical source.
func (m *ManualTime) Now() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ns
}

// Set moves the clock to ns, forwards or backwards.
func (m *ManualTime) Set(ns int64) {
	m.mu.Lock()
	m.ns = ns
	m.mu.Unlock()
}

// Advance moves the clock by d, which may be negative, saturating at the
// ends of the int64 range (it wrapped: found by review).
func (m *ManualTime) Advance(d time.Duration) {
	m.mu.Lock()
	m.ns = AddSat(m.ns, int64(d))
	m.mu.Unlock()
}
