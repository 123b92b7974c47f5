package proptest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// bulkyReplica sends, with every write, a frame of 1 MiB more to n0 (a
// researcher's replica that ships its whole state with every delta), and
// counts its writes in sets.
type bulkyReplica struct {
	Replica
	sets *int
}

var bulkMark = []byte("bulk")

func (r bulkyReplica) Set(key string, value []byte, expires int64) (crdt.Record, []transport.Envelope) {
	rec, out := r.Replica.Set(key, value, expires)
	*r.sets++
	return rec, append(out, transport.Envelope{To: "n0", Payload: append(bytes.Clone(bulkMark), make([]byte, 1<<20)...)})
}

func (r bulkyReplica) Receive(from string, payload []byte) []transport.Envelope {
	if bytes.HasPrefix(payload, bulkMark) {
		return nil
	}
	return r.Replica.Receive(from, payload)
}

// TestSimulateBoundsTheWritesBytes: the frames a round's writes send
// count against SimConfig.MaxBytesInFlight as they are sent, as the
// deliveries' and the timers' do: a replica whose writes send more than
// it fails with ErrLivelock at the write that passes it. They were
// counted only once the round was over, after every one of PerRound
// writes had put its frames in flight (here 64 MiB against a bound of
// 8; a replica shipping its state with every write, at 100,000 writes a
// round, hundreds of gigabytes): found by review.
func TestSimulateBoundsTheWritesBytes(t *testing.T) {
	sets := 0
	base := MapFactory(DefaultMapConfig())
	f := func(name string, id crdt.NodeID, clock func() int64) (Replica, error) {
		r, err := base(name, id, clock)
		return bulkyReplica{r, &sets}, err
	}
	_, err := Simulate(SimConfig{Factory: f, Nodes: 3, Keys: 64, Writes: 64, PerRound: 64, Seed: 1, MaxBytesInFlight: 8 << 20})
	if !errors.Is(err, ErrLivelock) || !strings.Contains(err.Error(), "MaxBytesInFlight") {
		t.Fatalf("64 writes of 1 MiB frames a round, against 8 MiB: %v, want ErrLivelock naming MaxBytesInFlight", err)
	}
	if sets > 9 {
		t.Errorf("%d writes made before the bound of 8 MiB was found passed, want 9 at most", sets)
	}
}
