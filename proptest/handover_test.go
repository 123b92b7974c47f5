package proptest

import "testing"

// handingOver are weights with members leaving as a Cache's Close has
// them leave: a live peer pulls from the member first (the "hand over"
// action; weight 0 unless set).
func handingOver() map[string]int {
	w := DefaultWeights()
	w["hand over"] = 3
	return w
}

// TestLeavesHandOverWhatTheyHeld runs the harness over the production
// store with members leaving as a Cache's Close has them leave: once the
// pull of a peer the member reaches has completed, every record the
// member held, its writes whose deltas were lost or are still in flight
// among them, is held by a live member, or a newer version of its key is.
func TestLeavesHandOverWhatTheyHeld(t *testing.T) {
	Check(t, Config{Weights: handingOver()})
}

// hastyPuller says its pull has completed as soon as it has started.
type hastyPuller struct{ *StoreReplica }

func (hastyPuller) Pulled(string, uint64) bool { return true }

// TestHarnessCatchesAPullThatEndsBeforeItsSession is the broken variant of
// TestLeavesHandOverWhatTheyHeld: a puller that reports its pull
// completed before its session has run lets the member leave with what it
// alone held.
func TestHarnessCatchesAPullThatEndsBeforeItsSession(t *testing.T) {
	factory := wrapStores(func(r *StoreReplica) Replica { return hastyPuller{r} })
	caught(t, "pulls that end before their sessions", Config{Factory: factory, Weights: handingOver()},
		"lost with it", "pullers that report a pull before its session completed")
}
