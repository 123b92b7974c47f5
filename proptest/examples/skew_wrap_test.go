package examples

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

// clockReader is a data type with one operation, "now", whose result is
// the member's clock; it holds nothing.
type clockReader struct{ phys func() int64 }

func (c clockReader) Do(proptest.Op) (any, []transport.Envelope) { return c.phys(), nil }
func (clockReader) Receive(string, []byte) []transport.Envelope  { return nil }
func (clockReader) Tick() []transport.Envelope                   { return nil }
func (clockReader) Sync(string) []transport.Envelope             { return nil }
func (clockReader) SetMembers([]string)                          {}
func (clockReader) State() any                                   { return nil }

// clockModel refuses a clock outside [base-skew, MaxInt64]: base is the
// time every member's clock read at the start, before any skew.
type clockModel struct {
	base *int64
	skew time.Duration
}

func (m clockModel) Did(member string, _ int, _ proptest.Op, result any) error {
	if v, low := result.(int64), *m.base-int64(m.skew); v < low {
		return fmt.Errorf("%s's clock reads %d, below the start less MaxSkew (%d): it wrapped around", member, v, low)
	}
	return nil
}
func (clockModel) Crashed(string, int) {}
func (clockModel) Check(any) error     { return nil }

// TestAHugeMaxSkewDoesNotWrapTheClock: a Spec's MaxSkew may be any
// positive duration (fill refuses only a negative one), and a researcher
// who wants "any skew" sets the largest. A member skewed past the int64
// range read a clock that wrapped around to 1677, and the end moved it
// further: time sums saturate, the clock a Spec's member reads too.
func TestAHugeMaxSkewDoesNotWrapTheClock(t *testing.T) {
	var base int64
	spec := proptest.Spec{
		New: func(_ string, inc int, phys func() int64) (proptest.Object, error) {
			if inc == 0 && base == 0 {
				base = phys()
			}
			return clockReader{phys}, nil
		},
		Ops:     []proptest.OpKind{{Name: "now"}},
		Model:   func() proptest.Model { return clockModel{&base, time.Duration(math.MaxInt64)} },
		MaxSkew: time.Duration(math.MaxInt64),
		Weights: map[string]int{"skew": 4, "crash": 0, "partition": 0},
	}
	setFlags(t, "rapid.seed", "1", "rapid.checks", "300")
	rapid.Check(t, proptest.TypeProperty(spec))
}
