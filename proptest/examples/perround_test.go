package examples

import (
	"math"
	"testing"

	"github.com/bcache-go/bcache/proptest"
)

// TestAHugePerRoundIsNoLivelock: PerRound is how many operations a round
// makes at most, and one past Ops means them all in one round. At
// math.MaxInt the bound on frames in flight overflowed (PerRound + Nodes
// wrapped around before the min that guarded the product): on 3 or 5
// nodes the bound came out negative and the first operation's frames
// failed the run as a livelock ("more than -9223372036854575802 frames").
func TestAHugePerRoundIsNoLivelock(t *testing.T) {
	spec := proptest.Spec{New: NewCounter, Ops: CounterOps(), Model: NewCounterModel}
	for _, n := range []int{2, 3, 4, 5} {
		if _, err := proptest.SimulateType(spec, proptest.TypeSimConfig{Nodes: n, Ops: 20, PerRound: math.MaxInt, Seed: 1}); err != nil {
			t.Errorf("%d nodes, every operation in one round: %v", n, err)
		}
	}
}
