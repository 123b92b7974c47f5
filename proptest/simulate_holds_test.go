package proptest

import (
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// simulateWrapped runs a small Simulate (six map replicas, 300 writes
// of 200 keys, a partition) of replicas that wrap wraps.
func simulateWrapped(wrap func(Replica) Replica) (SimResult, error) {
	inner := MapFactory(DefaultMapConfig())
	f := func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		r, err := inner(name, id, phys)
		return wrap(r), err
	}
	return Simulate(SimConfig{Factory: f, Nodes: 6, Keys: 200, Writes: 300, PerRound: 20, Seed: 1, Split: 0.05})
}

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
	res, err := simulateWrapped(func(r Replica) Replica { return truncating{r} })
	if err == nil || !strings.Contains(err.Error(), "last write") {
		t.Fatalf("Simulate of a replica that cuts its keys short: %v, %+v; want a failure naming a lost write", err, res)
	}
}
