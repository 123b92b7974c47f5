package proptest

import (
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// lyingDeafReplica is a MapReplica that, on every node but n0, takes no frame
// it receives, and whose Digest says every node holds the same records,
// whatever they hold.
type lyingDeafReplica struct {
	*MapReplica
	name string
}

func (r lyingDeafReplica) Receive(from string, payload []byte) []transport.Envelope {
	if r.name != "n0" {
		return nil
	}
	return r.MapReplica.Receive(from, payload)
}

func (r lyingDeafReplica) Digest() uint64 { return 0 }

// TestSimulateCatchesADigestThatLies: Simulate compares the nodes'
// digests (Digester) every round rather than their records; once they
// say the nodes agree, every node must hold what node 0 holds, or the
// run fails. A replica whose every node but one took nothing it received,
// and whose Digest was a constant, passed, measured as converged in the
// first round (found by review).
func TestSimulateCatchesADigestThatLies(t *testing.T) {
	base := MapFactory(DefaultMapConfig())
	f := func(name string, id crdt.NodeID, clock func() int64) (Replica, error) {
		r, err := base(name, id, clock)
		if err != nil {
			return nil, err
		}
		return lyingDeafReplica{r.(*MapReplica), name}, nil
	}
	res, err := Simulate(SimConfig{Factory: f, Nodes: 3, Keys: 20, Writes: 40, PerRound: 10, Seed: 1, Split: 0.1})
	if err == nil || !strings.Contains(err.Error(), "Digest") {
		t.Fatalf("a replica that replicates to n0 alone, with a constant Digest: %+v, %v; want an error naming the digest", res, err)
	}
}
