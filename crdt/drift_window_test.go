package crdt

import (
	"errors"
	"math"
	"testing"
	"time"
)

// TestTheDriftBoundsOneNanosecondWindow pins what HLC.Update's doc says:
// a remote stamp exactly at the drift bound is taken whatever its
// counter; with the counter at its end, the next own stamp carries one
// nanosecond past the bound while the source stands still, and a peer
// reading the same physical time refuses it; once the source moves on,
// the clock is back within the bound.
func TestTheDriftBoundsOneNanosecondWindow(t *testing.T) {
	src := NewManualTime(1_000_000_000)
	c := NewHLC(1, src.Now, time.Second)
	peer := NewHLC(2, src.Now, time.Second)
	at := Timestamp{Wall: src.Now() + int64(time.Second), Logical: math.MaxUint32, Node: 3}
	if err := c.Update(at); err != nil {
		t.Fatalf("a stamp exactly at the bound refused: %v", err)
	}
	next := c.Now()
	if next.Wall != at.Wall+1 || next.Logical != 0 {
		t.Fatalf("next stamp %v, want the carry one nanosecond past the bound", next)
	}
	if err := peer.CheckDrift(next); !errors.Is(err, ErrClockDrift) {
		t.Fatalf("a peer at the same physical time took %v: %v (the documented window closed?)", next, err)
	}
	src.Advance(1)
	if err := peer.CheckDrift(next); err != nil {
		t.Fatalf("a nanosecond later the peer still refuses %v: %v", next, err)
	}
}
