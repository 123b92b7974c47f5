package examples

import (
	"testing"

	"github.com/bcache-go/bcache/internal/rapidfail"
	"github.com/bcache-go/bcache/proptest"
)

func counterSpec(merge func(held, received int64) int64) proptest.Spec {
	return proptest.Spec{
		New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
			return newCounter(name, inc, merge), nil
		},
		Ops: CounterOps(), Model: NewCounterModel, Describe: func(b []byte) string { return string(b) },
	}
}

func setSpec(removeUnseen bool) proptest.Spec {
	return proptest.Spec{
		New: func(name string, inc int, _ func() int64) (proptest.Object, error) {
			s := newSet(name, inc)
			s.removeUnseen = removeUnseen
			return s, nil
		},
		Ops: SetOps(), Model: NewSetModel, Describe: func(b []byte) string { return string(b) },
	}
}

// TestCounter runs the harness over the PN-counter.
func TestCounter(t *testing.T) {
	proptest.CheckType(t, proptest.Spec{New: NewCounter, Ops: CounterOps(), Model: NewCounterModel})
}

// TestSet runs the harness over the add-wins set.
func TestSet(t *testing.T) {
	proptest.CheckType(t, proptest.Spec{New: NewSet, Ops: SetOps(), Model: NewSetModel})
}

// TestHarnessCatchesBrokenCounters: counters that add what they receive
// to what they hold (a duplicate or a second sync counts twice), or take
// the last count received (a reordered frame takes a count back), must
// fail.
func TestHarnessCatchesBrokenCounters(t *testing.T) {
	for name, merge := range map[string]func(held, received int64) int64{
		"sum":           func(held, received int64) int64 { return held + received },
		"last received": func(_, received int64) int64 { return received },
	} {
		t.Run(name, func(t *testing.T) {
			if !rapidfail.Fails(t, "BrokenCounter_"+name, proptest.TypeProperty(counterSpec(merge))) {
				t.Fatalf("the harness passed a counter whose merge is %s", name)
			}
		})
	}
}

// TestHarnessCatchesBrokenSets: a set whose removes also remove adds
// their sender had not seen (remove wins over a concurrent add) must
// fail.
func TestHarnessCatchesBrokenSets(t *testing.T) {
	if !rapidfail.Fails(t, "BrokenSet_remove_unseen", proptest.TypeProperty(setSpec(true))) {
		t.Fatal("the harness passed a set whose removes remove adds they did not see")
	}
}
