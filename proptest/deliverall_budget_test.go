package proptest

import (
	"errors"
	"math"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// echoReplica answers every frame with one back, up to left times: a
// replica whose frames never settle, within left.
type echoReplica struct {
	Replica
	left *int
}

func (r echoReplica) Receive(from string, payload []byte) []transport.Envelope {
	r.Replica.Receive(from, payload)
	if *r.left <= 0 {
		return nil
	}
	*r.left--
	return []transport.Envelope{{To: from, Payload: []byte("echo")}}
}

// TestDeliverAllNegativeBudgetIsABound: DeliverAll fails with
// ErrLivelock after budget deliveries; a budget below 0 is none, as 0 is.
// It was no bound at all (n == budget never held), and a replica whose
// frames never settle ran DeliverAll(-1) for ever: here, frames in
// flight, it delivered them and returned nil (found by review).
func TestDeliverAllNegativeBudgetIsABound(t *testing.T) {
	for _, budget := range []int{-1, math.MinInt} {
		left := 10_000
		base := MapFactory(DefaultMapConfig())
		f := func(name string, id crdt.NodeID, clock func() int64) (Replica, error) {
			r, err := base(name, id, clock)
			return echoReplica{r, &left}, err
		}
		c, err := NewCluster(2, f, start)
		if err != nil {
			t.Fatal(err)
		}
		c.Set(0, "k", []byte("v"), 0)
		if err := c.DeliverAll(budget); !errors.Is(err, ErrLivelock) {
			t.Errorf("DeliverAll(%d) with frames in flight: %v after %d echoes, want ErrLivelock at once", budget, err, 10_000-left)
		}
	}
}
