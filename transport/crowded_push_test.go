package transport

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestEachPartOfACrowdedLeafIsClosedOnce: with a fifth of the
// initiator's Repairs lost, one session pushing a crowded leaf (listed in
// parts) leaves about as many records behind as one pushing the same
// number of records spread over the leaves. A Repair lost just before a
// part's last ask is sent again at one more ask (answerRepair's closed),
// once a leaf: keyed by leaf and never cleared between parts, only the
// first part had it, and the crowded push left 5,071 of 30,720 records
// behind against 3,015 spread.
func TestEachPartOfACrowdedLeafIsClosedOnce(t *testing.T) {
	const bits, leaf = 8, 90
	cfg := Config{Limits: wire.Limits{MaxFrame: 4096}, MaxRepairBytes: 2048}
	room := leafVersionsRoom(cfg.Limits.MaxFrame, false)
	leftBehind := func(keys []string) int {
		left := 0
		for seed := uint64(1); seed <= 20; seed++ {
			rng := rand.New(rand.NewPCG(seed, 9))
			n := newTestNet(t, bits, cfg, "a", "b")
			for _, k := range keys {
				n.reps["a"].recs[k] = crdt.Record{Key: k, Value: []byte(k), Time: crdt.Timestamp{Wall: 100, Node: 1}}
				if rng.IntN(2) == 0 {
					n.reps["b"].recs[k] = crdt.Record{Key: k, Value: []byte(k), Time: crdt.Timestamp{Wall: 90, Node: 2}}
				}
			}
			a := n.nodes["a"]
			n.drop = func(from string, e Envelope) bool {
				return from == "a" && e.Kind == wire.KindRepair && rng.IntN(5) == 0
			}
			n.pump("a", a.StartSession("b", n.now.Now()))
			for tick := 0; tick < 400 && a.ae.active; tick++ {
				n.now.Advance(50 * time.Millisecond)
				n.pump("a", a.Tick(n.now.Now()))
			}
			for _, k := range keys {
				if n.reps["b"].recs[k].Time.Wall != 100 {
					left++
				}
			}
		}
		return left
	}
	crowded := keysOfLeaf("push", leaf, bits, 12*room)
	var spread []string
	for i := range len(crowded) {
		spread = append(spread, fmt.Sprintf("spread%d", i))
	}
	c, s := leftBehind(crowded), leftBehind(spread)
	if c > s+s/4 {
		t.Errorf("a crowded leaf's push left %d of %d records behind, spread %d", c, 20*len(crowded), s)
	}
}
