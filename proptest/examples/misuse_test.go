package examples

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bcache-go/bcache/proptest"
	"github.com/bcache-go/bcache/transport"
)

// Specs a researcher may get wrong, and networks a type may flood: each
// gets an error that says so, never a panic, a hang or the machine's
// memory (all found by review).

// TestDuplicationOneIsNoLivelock: Duplication 1 (every frame delivered
// twice), which Spec accepts, does not fail a correct counter. A fate's
// copy drew a fate of its own, so that at 1 every copy was doubled
// again, and "deliver all" never drained: a livelock reported of a
// correct type.
func TestDuplicationOneIsNoLivelock(t *testing.T) {
	spec := counterSpec(larger)
	spec.Duplication = 1
	if r := proptest.Counterexample(t, proptest.TypeProperty(spec)); r != "" {
		t.Fatalf("a correct counter failed at Duplication 1: %.300s", r)
	}
}

// TestNilObjectOrModelIsAnError: New returning a nil Object and no error,
// or Model returning nil, is a bad Spec: each entry point says so
// (SimulateType panicked; CheckType and Exploration reported a nil
// dereference).
func TestNilObjectOrModelIsAnError(t *testing.T) {
	script := []proptest.Scripted{{Member: 0, Op: proptest.Op{Name: "read", Key: "a"}}}
	for _, tc := range []struct {
		want string
		bad  func(*proptest.Spec)
	}{
		{"nil Object", func(s *proptest.Spec) {
			s.New = func(string, int, func() int64) (proptest.Object, error) { return nil, nil }
		}},
		{"nil Model", func(s *proptest.Spec) { s.Model = func() proptest.Model { return nil } }},
	} {
		spec := counterSpec(larger)
		tc.bad(&spec)
		if _, err := proptest.SimulateType(spec, proptest.TypeSimConfig{Nodes: 2, Ops: 1, PerRound: 1}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SimulateType of a Spec with a %s: %v", tc.want, err)
		}
		if _, err := proptest.Exploration(spec, script, proptest.Explore{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Exploration of a Spec with a %s: %.200v", tc.want, err)
		}
		if r := proptest.Counterexample(t, proptest.TypeProperty(spec)); !strings.Contains(r, tc.want) {
			t.Errorf("CheckType of a Spec with a %s: %.200s", tc.want, r)
		}
	}
}

// TestHeavyWeightsAreRefused: weights are ratios, and each run holds
// every action as many times as its weight: weights of millions took
// seconds and hundreds of megabytes a run (a property run hit the test's
// timeout). Past 10,000 a weight is refused.
func TestHeavyWeightsAreRefused(t *testing.T) {
	spec := counterSpec(larger)
	spec.Weights = map[string]int{"inc": 10_000_000, "read": 5_000_000, "sync": 1_000_000}
	if _, err := proptest.SimulateType(spec, proptest.TypeSimConfig{Nodes: 3, Ops: 10, PerRound: 1, SyncEvery: 1}); err == nil || !strings.Contains(err.Error(), "weight") {
		t.Errorf("SimulateType with weights of millions: %v", err)
	}
	if r := proptest.Counterexample(t, proptest.TypeProperty(spec)); !strings.Contains(r, "weight") {
		t.Errorf("TypeProperty with weights of millions: %.300q", r)
	}
}

// echo answers every frame it receives: a livelock.
type echo struct {
	name    string
	members []string
	n       int
}

func (e *echo) Do(proptest.Op) (any, []transport.Envelope) {
	var out []transport.Envelope
	for _, m := range e.members {
		if m != e.name {
			out = append(out, transport.Envelope{To: m, Payload: []byte("ping")})
		}
	}
	return nil, out
}
func (e *echo) Receive(from string, _ []byte) []transport.Envelope {
	return []transport.Envelope{{To: from, Payload: []byte("ping")}}
}
func (e *echo) Tick() []transport.Envelope       { return nil }
func (e *echo) Sync(string) []transport.Envelope { return nil }
func (e *echo) SetMembers(n []string)            { e.members = slices.Clone(n) }
func (e *echo) State() any                       { return 0 }

// flood sends every frame it receives on to every member it sees, its
// state changing with each: the frames multiply each round.
type flood struct{ echo }

func (f *flood) Receive(string, []byte) []transport.Envelope {
	f.n++
	_, out := f.Do(proptest.Op{})
	return out
}
func (f *flood) State() any { return fmt.Sprint(f.name, f.n) }

// noModel checks nothing.
type noModel struct{}

func (noModel) Did(string, int, proptest.Op, any) error { return nil }
func (noModel) Crashed(string, int)                     {}
func (noModel) Check(any) error                         { return nil }

// within runs f, failing the test if it has not returned within a
// minute: the faults below ran for good, their memory growing.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s still runs after a minute", what)
		return nil
	}
}

// TestExplorationOfALivelockEnds: a type that answers every frame never
// runs out of options; one run of Exploration went on for good, its
// trace growing (477 MB in 20 s). It ends at the harness's step budget
// with ErrLivelock.
func TestExplorationOfALivelockEnds(t *testing.T) {
	spec := proptest.Spec{
		New:   func(name string, _ int, _ func() int64) (proptest.Object, error) { return &echo{name: name}, nil },
		Ops:   []proptest.OpKind{{Name: "ping"}},
		Model: func() proptest.Model { return noModel{} },
	}
	err := within(t, "Exploration of a type that answers every frame", func() error {
		_, err := proptest.Exploration(spec, []proptest.Scripted{{Member: 0, Op: proptest.Op{Name: "ping", Key: "a"}}}, proptest.Explore{MaxTicks: -1})
		return err
	})
	if !errors.Is(err, proptest.ErrLivelock) {
		t.Fatalf("Exploration of a livelock: %.200v, want ErrLivelock", err)
	}
}

// TestSimulationOfAFloodEnds: a type whose frames multiply grew the
// simulated network past the machine's memory (1.5 GB in 20 s at 20
// nodes) instead of failing; it fails with ErrLivelock.
func TestSimulationOfAFloodEnds(t *testing.T) {
	spec := proptest.Spec{
		New: func(name string, _ int, _ func() int64) (proptest.Object, error) {
			return &flood{echo{name: name}}, nil
		},
		Ops:   []proptest.OpKind{{Name: "ping"}},
		Model: func() proptest.Model { return noModel{} },
	}
	err := within(t, "SimulateType of a type whose frames multiply", func() error {
		_, err := proptest.SimulateType(spec, proptest.TypeSimConfig{Nodes: 20, Ops: 1, PerRound: 1})
		return err
	})
	if !errors.Is(err, proptest.ErrLivelock) {
		t.Fatalf("SimulateType of a flood: %.200v, want ErrLivelock", err)
	}
}

// inPlace wraps an Object's frames in a trivial cipher that it opens in
// place, as an AEAD's Open(p[:0], ...) does: the frame it is handed is
// its own. A frame opened once is marked so ('D'), and refused after.
type inPlace struct{ proptest.Object }

func seal(out []transport.Envelope) []transport.Envelope {
	for i := range out {
		b := append([]byte{'E'}, out[i].Payload...)
		for j := 1; j < len(b); j++ {
			b[j] ^= 0x5a
		}
		out[i].Payload = b
	}
	return out
}

func (w inPlace) Do(op proptest.Op) (any, []transport.Envelope) {
	r, out := w.Object.Do(op)
	return r, seal(out)
}
func (w inPlace) Receive(from string, p []byte) []transport.Envelope {
	if len(p) == 0 || p[0] != 'E' {
		return nil // not a sealed frame: refused
	}
	p[0] = 'D'
	for j := 1; j < len(p); j++ {
		p[j] ^= 0x5a
	}
	return seal(w.Object.Receive(from, p[1:]))
}
func (w inPlace) Tick() []transport.Envelope            { return seal(w.Object.Tick()) }
func (w inPlace) Sync(peer string) []transport.Envelope { return seal(w.Object.Sync(peer)) }

// TestDuplicatesOfAnInPlaceDecoderAreDuplicates: the counter that counts
// a duplicated delta twice is found whether or not it opens its frames
// in place. A duplicate, and a broadcast's copies, were handed the bytes
// of the original, opened already by the first delivery: the duplicate
// was refused, and the bug hidden from all three entry points.
func TestDuplicatesOfAnInPlaceDecoderAreDuplicates(t *testing.T) {
	spec := batchCounterSpec(false)
	inner := spec.New
	spec.New = func(name string, inc int, phys func() int64) (proptest.Object, error) {
		o, err := inner(name, inc, phys)
		return inPlace{o}, err
	}
	if n, err := proptest.Exploration(spec, batchScript, proptest.Explore{MaxTicks: -1}); err == nil {
		t.Errorf("Exploration passed the counter that counts a duplicate twice, opening frames in place: %d runs", n)
	}
	dup := spec
	dup.Duplication = 0.5
	if proptest.Counterexample(t, proptest.TypeProperty(dup)) == "" {
		t.Errorf("CheckType passed the counter that counts a duplicate twice, opening frames in place")
	}
	if res, err := proptest.SimulateType(spec, proptest.TypeSimConfig{Nodes: 5, Ops: 50, PerRound: 2, Dup: 0.5, Seed: 3}); err == nil {
		t.Errorf("SimulateType at Dup 0.5 passed the counter that counts a duplicate twice, opening frames in place: %+v", res)
	}
}

// TestABusyRoundOfTheShippedCounterIsNoLivelock: the shipped
// counter sends each operation once to every other node, and answers
// nothing; a round of PerRound operations on N nodes puts PerRound x (N-1)
// frames in flight, bounded, and all delivered the next round. Since
// 1abf32d SimulateType fails with ErrLivelock past max(200,000, 1,000 x N)
// frames in flight, whatever the rate: 5,000 updates a round on 50
// nodes (245,000 frames) was reported as a type whose frames multiply.
func TestABusyRoundOfTheShippedCounterIsNoLivelock(t *testing.T) {
	spec := proptest.Spec{New: NewCounter, Ops: CounterOps(), Model: NewCounterModel, Weights: map[string]int{"read": 0}} // increments and decrements alone
	if _, err := proptest.SimulateType(spec, proptest.TypeSimConfig{Nodes: 50, Ops: 5000, PerRound: 5000, Seed: 1}); err != nil {
		t.Fatalf("a correct counter at 5,000 operations a round on 50 nodes: %v", err)
	}
}

// TestSimulateTypeBytesInFlightIsTheCallers: TypeSimConfig's
// MaxBytesInFlight bounds the bytes in flight (the bound was fixed, 32
// MiB and a MiB a node, with no field to raise or lower it): an object
// whose frames never drain fails at the bound given, with ErrLivelock
// naming the field; a bound below 0 is refused.
func TestSimulateTypeBytesInFlightIsTheCallers(t *testing.T) {
	spec := proptest.Spec{
		New: func(name string, _ int, _ func() int64) (proptest.Object, error) {
			return &echo{name: name}, nil
		},
		Ops:   []proptest.OpKind{{Name: "ping"}},
		Model: func() proptest.Model { return noModel{} },
	}
	// Two nodes answer each other's 4-byte frames for ever: 4 bytes in
	// flight after every round, past a bound of 3.
	_, err := proptest.SimulateType(spec, proptest.TypeSimConfig{Nodes: 2, Ops: 1, PerRound: 1, MaxRounds: 50, MaxBytesInFlight: 3})
	if !errors.Is(err, proptest.ErrLivelock) || !strings.Contains(err.Error(), "MaxBytesInFlight") {
		t.Fatalf("frames of 4 B in flight, a bound of 3: %v, want ErrLivelock naming MaxBytesInFlight", err)
	}
	if _, err := proptest.SimulateType(spec, proptest.TypeSimConfig{Nodes: 2, Ops: 1, PerRound: 1, MaxBytesInFlight: -1}); err == nil || !strings.Contains(err.Error(), "MaxBytesInFlight") {
		t.Fatalf("MaxBytesInFlight -1: %v, want it refused", err)
	}
}
