package transport

import (
	"fmt"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport/wire"
)

// TestABigBudgetBatchStaysWithinTheWireLimits: a node whose PacketBudget
// (a host sending its deltas over streams) holds more small writes than
// a frame may carry (wire.MaxRecords records, MaxFrame bytes) sends them
// all, in frames the codec takes: a batch past either failed to encode
// and every write of it was dropped from the delta path.
func TestABigBudgetBatchStaysWithinTheWireLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		recs int
	}{
		{"records", Config{PacketBudget: 4 << 20}, wire.MaxRecords + 100},
		{"bytes", Config{PacketBudget: 4 << 20, Limits: wire.Limits{MaxFrame: 64 << 10}}, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, 8, tc.cfg, "a", "b")
			a := n.nodes["a"]
			group := make([]crdt.Record, tc.recs)
			for i := range group {
				group[i] = crdt.Record{Key: fmt.Sprintf("k%05d", i), Value: make([]byte, 40), Time: a.cfg.Clock.Now()}
				n.reps["a"].Apply(group[i], false, 0)
			}
			out := a.WriteGroup(group, n.now.Now())
			if s := a.Stats(); s.EncodeErrors != 0 {
				t.Fatalf("%d batches failed to encode", s.EncodeErrors)
			}
			n.pump("a", out)
			for _, r := range group {
				if _, ok := n.reps["b"].Lookup(r.Key); !ok {
					t.Fatalf("write %q never reached b: %d frames sent", r.Key, len(out))
				}
			}
		})
	}
}
