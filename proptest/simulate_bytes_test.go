package proptest

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/wire"
)

// swellTag opens every frame of a swelling replica's own.
var swellTag = []byte("swell:")

// swelling is a map replica that, besides the map's frames, passes one
// frame of its own around the ring of members, each receiver sending it
// on to the next twice as large, up to most bytes: as many frames in
// flight every round (one a member), ever more bytes. The map's frames
// are the map's: the cluster agrees as the map's does.
type swelling struct {
	Replica
	name    string
	next    string
	started bool
	most    int
	phys    func() int64
	sent    map[int64]int // payload bytes sent by every swelling replica, by the time of its clock
}

func (r *swelling) SetMembers(names []string) {
	r.Replica.SetMembers(names)
	ring := slices.Sorted(slices.Values(names))
	if i, ok := slices.BinarySearch(ring, r.name); ok && len(ring) > 1 {
		r.next = ring[(i+1)%len(ring)]
	}
}

func (r *swelling) frame(size int) []transport.Envelope {
	if r.next == "" {
		return nil
	}
	payload := append(slices.Clone(swellTag), make([]byte, max(size, 1))...)
	r.sent[r.phys()] += len(payload)
	return []transport.Envelope{{To: r.next, Kind: wire.KindDelta, Payload: payload}}
}

func (r *swelling) Tick() []transport.Envelope {
	out := r.Replica.Tick()
	if !r.started {
		r.started = true
		out = append(out, r.frame(1<<10)...)
	}
	return out
}

func (r *swelling) Receive(from string, payload []byte) []transport.Envelope {
	if !bytes.HasPrefix(payload, swellTag) {
		return r.Replica.Receive(from, payload)
	}
	return r.frame(min(2*(len(payload)-len(swellTag)), r.most))
}

// TestSimulateBoundsBytesInFlight: a replica whose frames grow, not in
// number, fails Simulate with ErrLivelock naming SimConfig.MaxBytesInFlight
// once their bytes pass it, and a round stops as they pass it: the
// frame count's bound alone let such a replica grow the process's memory
// without an error (here, where the frames stop growing at 512 KiB a
// member, 3 MiB in flight for ever, the run succeeded).
//
// Broken variants caught (each tried, then undone): no bound on bytes
// (the run agrees, no error); the bytes in flight checked only after
// each round (a round sent 1.5 MB past the bound of 1 MiB).
func TestSimulateBoundsBytesInFlight(t *testing.T) {
	const nodes, most, bound = 6, 512 << 10, 1 << 20
	sent := map[int64]int{}
	inner := MapFactory(DefaultMapConfig())
	f := func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		r, err := inner(name, id, phys)
		return &swelling{Replica: r, name: name, most: most, phys: phys, sent: sent}, err
	}
	cfg := SimConfig{Factory: f, Nodes: nodes, Keys: 200, Writes: 300, PerRound: 20, Seed: 1, Split: 0.05, MaxRounds: 2_000,
		MaxBytesInFlight: bound}
	res, err := Simulate(cfg)
	if !errors.Is(err, ErrLivelock) || !strings.Contains(err.Error(), "SimConfig.MaxBytesInFlight") || !strings.Contains(err.Error(), "B in flight") {
		t.Fatalf("Simulate of a replica whose frames grow past %d B in flight: %v, %+v; want ErrLivelock naming SimConfig.MaxBytesInFlight", bound, err, res)
	}
	for round, n := range sent {
		// A round stops after the frame that passed the bound: one
		// receiver's frame (most and its tag) over it, at the most.
		if n > bound+most+len(swellTag) {
			t.Errorf("a round (clock %d) sent %d B past a bound of %d", round, n, bound)
		}
	}
	// The default bound is far above what these frames put in flight:
	// the run agrees (the frames circulate, but the map's state is all
	// that is compared).
	clear(sent)
	cfg.MaxBytesInFlight = 0
	if _, err := Simulate(cfg); err != nil {
		t.Fatalf("Simulate with the default MaxBytesInFlight, 3 MiB in flight: %v", err)
	}
}

// TestSimulateDefaultBytesInFlight: MaxBytesInFlight's default is the one
// its doc gives, and does not wrap around for a huge PerRound.
func TestSimulateDefaultBytesInFlight(t *testing.T) {
	type tc struct {
		nodes, perRound int
		want            int64
	}
	cases := []tc{
		{10, 100, 256<<20 + 10*(1<<20+100<<10)},
		{1000, 100, 256<<20 + 1000*(1<<20+100<<10)},
	}
	if huge := math.MaxInt; strconv.IntSize == 64 { // values only a 64-bit int holds
		cases = append(cases, tc{2, huge >> 1, math.MaxInt64}, tc{huge >> 19, 1, math.MaxInt64})
	}
	for _, c := range cases {
		if got := defaultMaxBytesInFlight(c.nodes, c.perRound); got != c.want {
			t.Errorf("defaultMaxBytesInFlight(%d, %d) = %d, want %d", c.nodes, c.perRound, got, c.want)
		}
	}
}
