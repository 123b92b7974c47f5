package proptest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// growingReplica answers a "grow" frame with one twice its size, up to
// limit bytes: a researcher's replica whose frames grow at every hop
// (one that ships its whole state, and what it received, say).
type growingReplica struct {
	Replica
	limit int
}

var growMark = []byte("grow")

func (r growingReplica) Receive(from string, payload []byte) []transport.Envelope {
	if !bytes.HasPrefix(payload, growMark) {
		return r.Replica.Receive(from, payload)
	}
	if 2*len(payload) > r.limit {
		return nil
	}
	return []transport.Envelope{{To: from, Payload: append(payload, make([]byte, len(payload))...)}}
}

// TestDeliverAllBoundsTheBytesInFlight: DeliverAll fails with ErrLivelock
// once the frames in flight hold more than CheckType's bound (32 MiB), as
// CheckType, ExploreType, SimulateType and Simulate do. It counted
// deliveries alone, and frames that double at every hop (here stopping
// at 48 MiB; without that, past the machine's memory long before 200,000
// deliveries, the harness's budget) passed (found by review). The
// harness (Check) drains the network with it.
func TestDeliverAllBoundsTheBytesInFlight(t *testing.T) {
	base := MapFactory(DefaultMapConfig())
	f := func(name string, id crdt.NodeID, clock func() int64) (Replica, error) {
		r, err := base(name, id, clock)
		return growingReplica{r, 48 << 20}, err
	}
	c, err := NewCluster(2, f, start)
	if err != nil {
		t.Fatal(err)
	}
	c.send(0, []transport.Envelope{{To: c.Name(1), Payload: append(bytes.Clone(growMark), make([]byte, 1<<10)...)}})
	err = c.DeliverAll(budget)
	if !errors.Is(err, ErrLivelock) {
		t.Fatalf("frames doubling at every hop up to 48 MiB: DeliverAll: %v, want ErrLivelock", err)
	}
	if b := c.Net.Bytes(); b > 64<<20 {
		t.Errorf("%d B in flight as it failed", b)
	}
}
