package proptest

import (
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/wire"
)

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

// lossyPuller completes its pull's session, but drops some of the
// records the leaver's Repairs carry (keep says which it keeps): what it
// pulled never reaches its store. Its other sessions are sound.
type lossyPuller struct {
	*StoreReplica
	keep    func(crdt.Record, int64) bool
	pulling map[string]bool
}

func (p *lossyPuller) Pull(peer string) ([]transport.Envelope, uint64) {
	if p.pulling == nil {
		p.pulling = map[string]bool{}
	}
	p.pulling[peer] = true
	return p.StoreReplica.Pull(peer)
}

// Pulled ends the pull's loss once it completed.
func (p *lossyPuller) Pulled(peer string, seq uint64) bool {
	done := p.StoreReplica.Pulled(peer, seq)
	if done {
		delete(p.pulling, peer)
	}
	return done
}

func (p *lossyPuller) Receive(from string, payload []byte) []transport.Envelope {
	if p.pulling[from] && len(payload) > 1 && wire.Kind(payload[1]) == wire.KindRepair {
		c := wire.NewCodec(wire.Limits{})
		if m, err := c.Decode(payload); err == nil {
			rep := m.(*wire.Repair)
			kept := rep.Records[:0:0]
			for _, rec := range rep.Records {
				if p.keep(rec, p.phys()) {
					kept = append(kept, rec)
				}
			}
			rep.Records = kept
			if b, err := c.Encode(nil, rep); err == nil {
				payload = b
			}
		}
	}
	return p.StoreReplica.Receive(from, payload)
}

// TestHarnessCatchesAPullThatDropsItsRepairs: a puller whose pull
// completes but keeps none of the leaver's records.
func TestHarnessCatchesAPullThatDropsItsRepairs(t *testing.T) {
	factory := wrapStores(func(r *StoreReplica) Replica {
		return &lossyPuller{StoreReplica: r, keep: func(crdt.Record, int64) bool { return false }}
	})
	caught(t, "pulls that drop their repairs", Config{Factory: factory, Weights: handingOver()},
		"lost with it", "pullers that drop what their pull repairs")
}

// TestHarnessCatchesAPullThatDropsDeletes: a puller whose pull
// completes but keeps only the leaver's values: a delete the leaver
// acknowledged, and held alone, is lost, and the older value it deleted,
// held by live members, is served again (the check skipped every dead
// record: found by review).
func TestHarnessCatchesAPullThatDropsDeletes(t *testing.T) {
	factory := wrapStores(func(r *StoreReplica) Replica {
		return &lossyPuller{StoreReplica: r, keep: func(rec crdt.Record, _ int64) bool { return !rec.Tombstone }}
	})
	caught(t, "pulls that drop deletes", Config{Factory: factory, Weights: handingOver()},
		"lost with it", "pullers that drop the deletes their pull repairs")
}
