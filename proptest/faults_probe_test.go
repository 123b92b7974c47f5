package proptest

import (
	"encoding/binary"
	"hash/fnv"
	"path/filepath"
	"testing"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"pgregory.net/rapid"
)

// faultProbe watches, from inside the replicas, what the network did to
// their frames: each frame is tagged with a number of its own as it is
// sent (and the tag stripped as it is received), so that a copy is told
// from a frame that merely has the same bytes.
type faultProbe struct {
	next     uint64
	sentAt   map[uint64]int64  // tag -> sender's phys at send
	sentBy   map[uint64]string // tag -> sender
	last     map[string]uint64 // receiver -> tag it received last
	seen     map[string]map[uint64]bool
	newest   map[[2]string]int64 // (from, to) -> newest send time received
	received int
	times    map[uint64]int // tag -> receipts, every receiver's
	// adjacent: copies received right after the frame they copy;
	// later: copies received with other frames between; maxDelay: the
	// longest time from a send to a receipt; inversions: frames received
	// after a frame their sender sent to the same receiver strictly
	// later (reordered across a round, not within one).
	adjacent, later, inversions int
	maxDelay                    time.Duration
}

func newFaultProbe() *faultProbe {
	return &faultProbe{sentAt: map[uint64]int64{}, sentBy: map[uint64]string{}, last: map[string]uint64{},
		seen: map[string]map[uint64]bool{}, newest: map[[2]string]int64{}, times: map[uint64]int{}}
}

type probed struct {
	Replica
	p    *faultProbe
	name string
	phys func() int64
}

func (p *faultProbe) factory(inner Factory) Factory {
	return func(name string, id crdt.NodeID, phys func() int64) (Replica, error) {
		r, err := inner(name, id, phys)
		if err != nil {
			return nil, err
		}
		return &probed{Replica: r, p: p, name: name, phys: phys}, nil
	}
}

func (r *probed) tag(envs []transport.Envelope) []transport.Envelope {
	for i := range envs {
		r.p.next++
		t := r.p.next
		r.p.sentAt[t], r.p.sentBy[t] = r.phys(), r.name
		envs[i].Payload = append(binary.BigEndian.AppendUint64(nil, t), envs[i].Payload...)
	}
	return envs
}

func (r *probed) Set(key string, value []byte, expires int64) (crdt.Record, []transport.Envelope) {
	rec, out := r.Replica.Set(key, value, expires)
	return rec, r.tag(out)
}

func (r *probed) Delete(key string) (crdt.Record, []transport.Envelope) {
	rec, out := r.Replica.Delete(key)
	return rec, r.tag(out)
}

func (r *probed) Tick() []transport.Envelope { return r.tag(r.Replica.Tick()) }

func (r *probed) StartSession(peer string) []transport.Envelope {
	return r.tag(r.Replica.StartSession(peer))
}

func (r *probed) Digest() uint64 { return r.Replica.(Digester).Digest() }

func (r *probed) Receive(from string, payload []byte) []transport.Envelope {
	p := r.p
	t := binary.BigEndian.Uint64(payload)
	p.received++
	p.times[t]++
	if p.seen[r.name] == nil {
		p.seen[r.name] = map[uint64]bool{}
	}
	switch {
	case p.last[r.name] == t:
		p.adjacent++
	case p.seen[r.name][t]:
		p.later++
	}
	p.seen[r.name][t] = true
	p.last[r.name] = t
	p.maxDelay = max(p.maxDelay, time.Duration(r.phys()-p.sentAt[t]))
	pair := [2]string{p.sentBy[t], r.name}
	if p.sentAt[t] < p.newest[pair] {
		p.inversions++
	}
	p.newest[pair] = max(p.newest[pair], p.sentAt[t])
	return r.tag(r.Replica.Receive(from, payload[8:]))
}

// TestSimulatesCopiesArriveAmongOtherFrames: Simulate says it duplicates a
// share of the frames and delivers in a random order. Every copy it made
// was received immediately after its original (appended to the inbox
// right behind it), and every frame exactly one round (1 ms) after it was
// sent: a stale copy (of a session step already answered) never reached a
// node, and a replica that dropped only "the frame I just received" as a
// copy passed Simulate (found by review). A copy now goes back in flight
// and arrives in a later round among other frames. (An original is still
// never held past the next round.)
func TestSimulatesCopiesArriveAmongOtherFrames(t *testing.T) {
	p := newFaultProbe()
	res, err := Simulate(SimConfig{Factory: p.factory(MapFactory(DefaultMapConfig())), Nodes: 8, Keys: 20, Writes: 400,
		PerRound: 4, Seed: 3, Loss: 0.05, Dup: 0.3, Split: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d frames received: copies adjacent %d, later %d; longest delay %v; inversions across rounds %d (%+v)",
		p.received, p.adjacent, p.later, p.maxDelay, p.inversions, res)
	if p.adjacent+p.later == 0 {
		t.Fatal("no copy at all: the probe is broken")
	}
	if p.later == 0 {
		t.Errorf("of %d copies, none was received other than right behind its original", p.adjacent)
	}
	if p.maxDelay <= time.Millisecond {
		t.Errorf("no frame was held past the round after its send (longest %v)", p.maxDelay)
	}
}

// TestASeedReplaysFrameForFrame: a run replays from its seed frame for
// frame (every frame's bytes, in the order the trace shows them). Frames
// are described only in runs rapid logs: -rapid.v logs every run (with a
// trace file, every passing run described every frame; no more).
func TestASeedReplaysFrameForFrame(t *testing.T) {
	setRapidFlags(t, map[string]string{"rapid.seed": "7", "rapid.checks": "20", "rapid.steps": "100", "rapid.v": "true"})
	run := func() (uint64, int) {
		h, n := fnv.New64a(), 0
		cfg := Config{TraceFile: filepath.Join(t.TempDir(), "trace"), Describe: func(b []byte) string {
			h.Write(b)
			n++
			return ""
		}}
		rapid.Check(t, Property(cfg))
		return h.Sum64(), n
	}
	a, na := run()
	b, nb := run()
	if na == 0 {
		t.Fatal("no frame described")
	}
	if a != b || na != nb {
		t.Fatalf("one seed, two runs: %d frames (%x) then %d (%x)", na, a, nb, b)
	}
	t.Logf("%d frames described, the same twice", na)
}

// TestHandOverUnderLossAndDuplication: the hand over's pull is "subject to
// Config.Loss and Duplication", but no test sets them with it drawn: its
// frames were never lost, doubled, or delivered out of order.
func TestHandOverUnderLossAndDuplication(t *testing.T) {
	cov := &Coverage{}
	Check(t, Config{Weights: handingOver(), Loss: 0.1, Duplication: 0.1, Coverage: cov})
	if cov.Actions["hand over"] == 0 {
		t.Fatal("no hand over ran")
	}
}

// TestSimulateDuplicatesAFrameOnce: SimConfig.Dup is the fraction of
// frames duplicated, and Simulate takes Dup up to 1: every frame then
// arrives twice. Since the copy went back in flight (sim.Network.Requeue)
// it met the duplication draw again as it was taken, so that a copy was
// copied in turn: a frame arrived 1/(1-Dup) times on average, not 1+Dup,
// and at Dup 1 every frame ever sent came back every round, for ever
// (found by review).
func TestSimulateDuplicatesAFrameOnce(t *testing.T) {
	p := newFaultProbe()
	_, err := Simulate(SimConfig{Factory: p.factory(MapFactory(DefaultMapConfig())), Nodes: 4, Keys: 10, Writes: 20, PerRound: 2, Seed: 1, Dup: 1, Split: 0.2, MaxRounds: 2000})
	most := 0
	for _, n := range p.times {
		most = max(most, n)
	}
	t.Logf("%d frames sent, %d received, one received %d times (%v)", p.next, p.received, most, err)
	if err != nil {
		t.Fatal(err)
	}
	if most > 2 {
		t.Errorf("at Dup 1 a frame was received %d times, want 2", most)
	}
}
