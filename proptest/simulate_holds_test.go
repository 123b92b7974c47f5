package proptest

import (
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// truncating is a replica that cuts every key it is asked to write to its
// first four bytes ("key-"): every node holds one key, the same newest
// version of it, and the cluster agrees at once.
type truncating struct{ Replica }

func (r truncating) Set(key string, value []byte, expires int64) (crdt.Record, []transport.Envelope) {
	return r.Replica.Set(key[:min(4, len(key))], value, expires)
}

// TestSimulateFailsAClusterThatAgreesOnLostWrites: the nodes agreeing is
// not enough: what they agree on must hold every key's last write. A
// replica that lost all but one key on every node alike was measured as
// converged, its WriteRounds "until every node holds every write"
// (found by review).
func TestSimulateFailsAClusterThatAgreesOnLostWrites(t *testing.T) {
	inner := MapFactory(DefaultMapConfig())
	f := func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		r, err := inner(name, id, phys)
		return truncating{r}, err
	}
	res, err := Simulate(SimConfig{Factory: f, Nodes: 6, Keys: 200, Writes: 300, PerRound: 20, Seed: 1, Split: 0.05})
	if err == nil || !strings.Contains(err.Error(), "last write") {
		t.Fatalf("Simulate of a replica that cuts its keys short: %v, %+v; want a failure naming a lost write", err, res)
	}
}
