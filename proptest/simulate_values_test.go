package proptest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// shortening is a replica that keeps the first byte alone of every value
// it is asked to write: every node holds every key at its newest
// version, the value cut short.
type shortening struct{ Replica }

func (r shortening) Set(key string, value []byte, expires int64) (crdt.Record, []transport.Envelope) {
	return r.Replica.Set(key, value[:min(1, len(value))], expires)
}

// TestSimulateFailsAClusterThatAgreesOnLostValues: what the nodes agree
// on must hold every key's last write, its value as well as its version.
// A replica that cut every value short on every node alike passed as
// converged: Simulate compared versions alone, and every value it wrote
// was 100 zero bytes.
func TestSimulateFailsAClusterThatAgreesOnLostValues(t *testing.T) {
	res, err := simulateWrapped(func(r Replica) Replica { return shortening{r} })
	if err == nil || !strings.Contains(err.Error(), "last write") {
		t.Fatalf("Simulate of a replica that cuts its values short: %v, %+v; want a failure naming a lost write", err, res)
	}
}

// sealing is a replica whose frames are sealed (here XOR, standing for a
// cipher) and which opens each one it receives in place, over the bytes
// it was given, as a replica that owns its receive buffer may.
type sealing struct {
	Replica
	in bool // opens and seals: false runs the replica as it is
}

func (r sealing) seal(envs []transport.Envelope) []transport.Envelope {
	if !r.in {
		return envs
	}
	for i := range envs {
		p := bytes.Clone(envs[i].Payload)
		for j := range p {
			p[j] ^= 0x5a
		}
		envs[i].Payload = p
	}
	return envs
}

func (r sealing) Set(key string, value []byte, expires int64) (crdt.Record, []transport.Envelope) {
	rec, out := r.Replica.Set(key, value, expires)
	return rec, r.seal(out)
}

func (r sealing) Tick() []transport.Envelope { return r.seal(r.Replica.Tick()) }

func (r sealing) StartSession(peer string) []transport.Envelope {
	return r.seal(r.Replica.StartSession(peer))
}

func (r sealing) Receive(from string, payload []byte) []transport.Envelope {
	if r.in {
		for j := range payload {
			payload[j] ^= 0x5a // opened in place
		}
	}
	return r.seal(r.Replica.Receive(from, payload))
}

func (r sealing) Digest() uint64 { return r.Replica.(Digester).Digest() }

// TestSimulateGivesEachDeliveryItsOwnBytes: a replica that opens its
// frames in place runs under Simulate as it runs without the sealing: a
// duplicate, and a broadcast's copies, shared the sender's bytes, so the
// second receiver got them opened already (refused, and repaired later
// by anti-entropy: other rounds and bytes, and with Workers two
// receivers opened one frame at once), as the harness and SimulateType
// gave each delivery its own bytes already.
func TestSimulateGivesEachDeliveryItsOwnBytes(t *testing.T) {
	run := func(in bool, workers int) SimResult {
		inner := MapFactory(DefaultMapConfig())
		f := func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
			r, err := inner(name, id, phys)
			return sealing{Replica: r, in: in}, err
		}
		res, err := Simulate(SimConfig{Factory: f, Nodes: 8, Keys: 200, Writes: 300, PerRound: 20, Seed: 1,
			Dup: 0.2, Split: 0.05, Workers: workers})
		if err != nil {
			t.Fatalf("sealed %v, %d workers: %v", in, workers, err)
		}
		return res
	}
	want := run(false, 1)
	for _, workers := range []int{1, 4} {
		if got := run(true, workers); got != want {
			t.Fatalf("sealed, opened in place, %d workers: %+v; as it is: %+v", workers, got, want)
		}
	}
}
