package proptest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/sim"
)

// SimConfig shapes one run of the scale simulator (Simulate).
type SimConfig struct {
	// Factory builds every node's replica: bcache's own (MapFactory, as
	// command simulate runs) or a researcher's.
	Factory Factory
	// Nodes is the cluster size, 2 to 5,000 (maxSimNodes); Keys the
	// distinct keys written; Writes the writes, PerRound of them each
	// round until done.
	Nodes, Keys, Writes, PerRound int
	// Seed drives every random choice: the same SimConfig gives the same
	// result.
	Seed uint64
	// Loss and Dup are the fractions of frames lost and duplicated.
	Loss, Dup float64
	// Split sets the writes of the partition phase: twice Split times Keys
	// (at least two), each at a member drawn at random, on either side.
	// The members' views are left as they were: the repair after the heal
	// is anti-entropy's alone, not the sessions a member's arrival starts.
	Split float64
	// Workers is how many goroutines deliver a round's frames and run
	// the nodes' timers, each taking whole nodes (0 or 1: the calling
	// goroutine alone; at most one per eight nodes run, the others would
	// find no node to take). The result does not depend on it. More than one
	// needs replicas that share nothing unsynchronized between them
	// (bcache's share only a wire.Interner, which is safe for concurrent
	// use).
	Workers int
	// SessionEvery, if above 0, makes every node start an anti-entropy
	// session (Replica.StartSession) with a peer drawn at random every
	// SessionEvery rounds, for replicas whose timers start none (0: the
	// replicas' own timers alone, as bcache's run it). It must be longer
	// than a session takes, in rounds: bcache's node gives up a session
	// in flight to start the next, and at every 5 rounds or fewer none
	// completed. The peers are drawn from the run's random source, so a
	// run with it draws its losses and writes otherwise than one
	// without.
	SessionEvery int
	// MaxRounds bounds the rounds each phase runs after its last write
	// (the partition phase: after the heal): a cluster that has not
	// agreed within them fails the run (0: 100,000).
	MaxRounds int
	// MaxBytesInFlight bounds the payload bytes of the frames a round
	// sends, and of those in flight after it: a replica whose frames grow
	// (a researcher's that ships its whole state, or more at every hop)
	// fails the run with ErrLivelock, an error naming this field, as the
	// bytes pass it, rather than growing the process's memory until the
	// machine runs out. 0: 256 MiB + Nodes x (1 MiB + PerRound KiB),
	// about 267 MiB at 10 nodes and 100 writes a round, 1.3 GiB at 1,000
	// (bcache's replica at 1,000 nodes, as the README's table runs it,
	// peaked at 24 MB in flight; 256 MiB holds four of the wire's
	// largest frames). Raise it for a replica that is meant to send that
	// much; it is checked frame by frame, at no cost a frame beyond an
	// addition.
	MaxBytesInFlight int64
}

// maxSimNodes bounds SimConfig.Nodes. It was unbounded: the cluster is
// built member by member, and what it keeps grows with the square of its
// members (every member's view of the others, which incarnation saw
// which), as do the frames a round may send (limit), so a Nodes too large
// (1<<40) ran the machine out of memory building it rather than failing
// (found by review: TestSimulateRefusesTooManyNodes). Five times the
// largest cluster the README runs, as SimulateType's bound is that
// cluster (maxTypeSimNodes).
const maxSimNodes = 5000

// defaultMaxRounds is SimConfig.MaxRounds's default.
const defaultMaxRounds = 100_000

// defaultMaxBytesInFlight is SimConfig.MaxBytesInFlight's default for
// nodes and perRound (see there), at most math.MaxInt64.
func defaultMaxBytesInFlight(nodes, perRound int) int64 {
	per := min(uint64(perRound), math.MaxInt64>>10) << 10 // PerRound KiB
	if q := (math.MaxInt64 - (256 << 20)) / uint64(nodes); q <= 1<<20 || per > q-(1<<20) {
		return math.MaxInt64
	}
	return int64(256<<20 + uint64(nodes)*(1<<20+per))
}

// SimResult is what one simulation measured.
type SimResult struct {
	// WriteRounds are the rounds from the first write until every node
	// holds every write; DrainRounds those from the last write.
	WriteRounds, DrainRounds int
	// Frames and Bytes were sent while replicating the writes, Busiest
	// bytes by the busiest node; Payload is the mean key and value bytes
	// of a write.
	Frames, Bytes, Busiest uint64
	Payload                float64
	// RepairRounds and RepairBytes are the rounds and bytes from the heal
	// of the partition phase until every node agrees again.
	RepairRounds int
	RepairBytes  uint64
	// PartitionWrites is the writes made on each side's share of the
	// partition phase: twice as many are made in all, to members drawn
	// at random. Writes is the writes replicated before it (SimConfig.Writes),
	// those Frames, Bytes and Busiest were sent for, not every write of the
	// run: the run makes 2 x PartitionWrites more.
	PartitionWrites int
	Writes          int
}

// A Digester is a Replica that summarizes what it holds in one number,
// equal on two replicas exactly when they hold the same records (a
// Merkle root): the simulator compares those every round instead of
// every replica's records.
type Digester interface {
	Digest() uint64
}

// Digest implements Digester: the root of the map's Merkle tree.
func (r *MapReplica) Digest() uint64 { return r.m.Tree().Root().Hash() }

// Simulate runs a cluster of cfg.Nodes replicas deterministically: writes
// of 13-byte keys ("key-" and nine digits) with 100-byte values (each
// write's its own: its number in the first eight bytes) at
// cfg.PerRound a round, each to
// a random node, until every node holds them all; then a partition into
// two halves with writes on both sides, a heal, and anti-entropy until
// the cluster agrees again. A round is one network step: every frame in
// flight is delivered (or lost or duplicated, at the given rates) in a
// seeded random order, then every node's timers run after a millisecond
// (and, every SessionEvery rounds, every node starts a session).
// Nodes agree when their digests (Digester) or, for other replicas,
// their versions are equal; the state they agree on must then hold the
// last write of every key written, its version and its value, or the run
// fails. A replica whose
// frames multiply fails with ErrLivelock once the frames a round sends, or those in flight, pass
// max(200,000, 1,000 x Nodes) + 2 x (PerRound + 2 x Nodes) x Nodes:
// twice what a round of a correct replica may send; one whose frames
// grow, once their payload bytes a round sends, or those in flight, pass
// cfg.MaxBytesInFlight (see there for its default).
func Simulate(cfg SimConfig) (SimResult, error) {
	if cfg.Factory == nil || cfg.Nodes < 2 || cfg.Keys < 1 || cfg.Writes < 1 || cfg.PerRound < 1 ||
		!(cfg.Loss >= 0 && cfg.Loss < 1) || !(cfg.Dup >= 0 && cfg.Dup <= 1) || !(cfg.Split >= 0 && cfg.Split <= 1) || cfg.Workers < 0 ||
		cfg.SessionEvery < 0 || cfg.MaxRounds < 0 || cfg.MaxBytesInFlight < 0 {
		// (NaN compares false: written so, the checks refuse it; it ran as
		// 0, found by review.)
		return SimResult{}, fmt.Errorf("proptest: simulate: need a Factory, 2 <= Nodes <= 5,000, Keys, Writes, PerRound >= 1, 0 <= Loss < 1, 0 <= Dup <= 1, 0 <= Split <= 1, Workers, SessionEvery, MaxRounds, MaxBytesInFlight >= 0")
	}
	if cfg.Nodes > maxSimNodes {
		return SimResult{}, fmt.Errorf("proptest: simulate: Nodes %d, more than %d: memory grows with the square of Nodes", cfg.Nodes, maxSimNodes)
	}
	if cfg.MaxRounds == 0 {
		cfg.MaxRounds = defaultMaxRounds
	}
	if cfg.MaxBytesInFlight == 0 {
		cfg.MaxBytesInFlight = defaultMaxBytesInFlight(cfg.Nodes, cfg.PerRound)
	}
	c, err := NewCluster(cfg.Nodes, cfg.Factory, start)
	if err != nil {
		return SimResult{}, err
	}
	s := &simulation{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.Nodes))), c: c,
		inbox: make([][]sim.Packet, cfg.Nodes), out: make([][]transport.Envelope, cfg.Nodes),
	}
	res, err := s.replicate()
	if err != nil {
		return res, err
	}
	return s.partition(res)
}

type simulation struct {
	cfg SimConfig
	rng *rand.Rand
	c   *Cluster
	// inbox holds, per node, the frames it receives this round, in the
	// order it receives them; out what each node sends while it does.
	inbox [][]sim.Packet
	out   [][]transport.Envelope
	round int      // rounds run
	peers []string // the peer each node starts a session with, SessionEvery's
	// copies are the ids of the copies the round put in flight.
	copies map[uint64]bool
	// newest is, per key written, the version of its last write and the
	// write's number (its value's, simValue): what every node must hold
	// once the cluster agrees (agreeing alone, a replica that lost writes
	// everywhere alike passed as converged).
	newest map[string]written
	writes int // writes made so far
	// sending counts the frames the nodes sent in this round, against
	// limit (see step), and sendingBytes their payload bytes, against
	// cfg.MaxBytesInFlight; over says either passed its bound.
	sending      atomic.Int64
	sendingBytes atomic.Int64
	over         atomic.Bool
}

// count adds envs, sent in this round, to the round's bytes, and sets
// over once they pass cfg.MaxBytesInFlight: a cost of one addition a
// frame.
func (s *simulation) count(envs []transport.Envelope) {
	var n int64
	for _, e := range envs {
		n += int64(len(e.Payload))
	}
	if s.sendingBytes.Add(n) > s.cfg.MaxBytesInFlight {
		s.over.Store(true)
	}
}

// overErr is the error of a round (its number) whose frames passed a
// bound: the count's, if it is past it, or else the bytes'.
func (s *simulation) overErr(limit, round int) error {
	if s.sending.Load() > int64(limit) {
		return fmt.Errorf("proptest: simulate: %w: more than %d frames in flight in round %d", ErrLivelock, limit, round)
	}
	return fmt.Errorf("proptest: simulate: %w: more than %d B in flight in round %d (SimConfig.MaxBytesInFlight)", ErrLivelock, s.cfg.MaxBytesInFlight, round)
}

// limit bounds the frames in flight, and those sent in a round: what a
// round may send of a correct replica is a write's frame to every node,
// and every node's timers and session to every node; twice over (bcache's
// replica at 100 nodes and 2,000 writes a round peaked at 179,000 frames,
// under half of it).
func (s *simulation) limit() int {
	n := s.c.Size()
	// PerRound is clamped before 2n is added: PerRound+2n wrapped around
	// past math.MaxInt, and the bound fell to its floor (found by review:
	// TestSimulateFrameBoundGrowsWithPerRound).
	return max(budget, 1000*n) + 2*(min(s.cfg.PerRound, math.MaxInt/(4*n)-2*n)+2*n)*n
}

// step is one round: deliver everything in flight in a random order with
// loss and duplication, then advance a millisecond and run the timers.
//
// A node's frames reach it in the shuffled order, and one node after
// another takes its frames of the round: a frame's effects stay on its
// receiver until the next round (what it sends is in flight then), so the
// order between receivers changes nothing, and taking one node's frames
// together keeps its state in the processor's caches (delivering them
// interleaved, each frame to another of a thousand nodes, missed the
// cache at every lookup). Nodes are independent within a round, so
// Workers take them in parallel; what they send goes in flight in node
// order, so the run does not depend on how many workers there are.
func (s *simulation) step() error {
	limit := s.limit()
	s.sending.Store(0)
	s.sendingBytes.Store(0)
	pkts := s.c.Net.TakeAll()
	// The copies made last round: all in flight then, all taken now.
	copies := s.copies
	s.copies = make(map[uint64]bool)
	s.rng.Shuffle(len(pkts), func(i, j int) { pkts[i], pkts[j] = pkts[j], pkts[i] })
	for _, p := range pkts {
		if s.rng.Float64() < s.cfg.Loss {
			continue
		}
		to, ok := s.c.byName[p.To]
		if !ok {
			continue // no such member (Simulate's cluster has no outsider)
		}
		s.inbox[to] = append(s.inbox[to], p)
		// A copy is not copied again: Dup is the share of frames
		// duplicated (a copy drawn again arrived 1/(1-Dup) times, and at
		// Dup 1 every frame for ever).
		if s.rng.Float64() < s.cfg.Dup && !copies[p.ID] {
			// The copy goes back in flight, to arrive in a later round
			// among other frames: appended right behind its original, a
			// copy always came next, before the receiver's answers to
			// the original had even left (found by review).
			s.copies[s.c.Net.Requeue(p, true)] = true
		}
	}
	s.each(func(i int, out []transport.Envelope) []transport.Envelope {
		m := s.c.members[i]
		for _, p := range s.inbox[i] {
			if m.down || s.over.Load() {
				break
			}
			// Its own bytes, as under the harness and SimulateType: a
			// duplicate, and a broadcast's copies, share the sender's,
			// which a receiver that opens its frames in place changed for
			// the others (and, with Workers, while they read them: found
			// by review).
			got := m.r.Receive(p.Sender(), bytes.Clone(p.Payload))
			out = append(out, got...)
			// Stopped as the round's frames pass the bound, not after:
			// a round of a replica whose frames multiply by the nodes
			// sent up to their number times the bound (at 1,000 nodes,
			// billions of frames) before a check at its end (found by
			// review).
			if s.sending.Add(int64(len(got))) > int64(limit) {
				s.over.Store(true)
			}
			// Their bytes too: frames that grow at every hop, not in
			// number, passed the count's bound never, and the machine's
			// memory ran out instead.
			s.count(got)
		}
		clear(s.inbox[i]) // the payloads are garbage once received
		s.inbox[i] = s.inbox[i][:0]
		return out
	})
	if s.over.Load() {
		return s.overErr(limit, s.round+1)
	}
	s.c.Advance(time.Millisecond)
	// The timers' and sessions' bytes count as the deliveries' do (a
	// timer's frames alone, a whole state to every node, can be the
	// ones that grow); their frames are the count's bound's after the
	// round.
	s.each(func(i int, out []transport.Envelope) []transport.Envelope {
		if m := s.c.members[i]; !m.down && !s.over.Load() {
			got := m.r.Tick()
			s.count(got)
			out = append(out, got...)
		}
		return out
	})
	if s.over.Load() {
		return s.overErr(limit, s.round+1)
	}
	s.round++
	if s.cfg.SessionEvery > 0 && s.round%s.cfg.SessionEvery == 0 {
		s.sessions()
		if s.over.Load() {
			return s.overErr(limit, s.round)
		}
	}
	// A replica whose frames multiply (each one received sent on to
	// every node) grew the network past the machine's memory instead of
	// failing, as SimulateType's did before its bound (found by review).
	if s.c.Net.Len() > limit {
		return fmt.Errorf("proptest: simulate: %w: more than %d frames in flight in round %d", ErrLivelock, limit, s.round)
	}
	// The copies of duplicated frames are in flight as well, sent by
	// none this round.
	if b := s.c.Net.Bytes(); b > uint64(s.cfg.MaxBytesInFlight) {
		return fmt.Errorf("proptest: simulate: %w: %d B in flight in round %d, more than %d (SimConfig.MaxBytesInFlight)", ErrLivelock, b, s.round, s.cfg.MaxBytesInFlight)
	}
	return nil
}

// sessions makes every node start a session with a peer drawn at random
// (SimConfig.SessionEvery). The peers are drawn first, in node order, so
// that the run does not depend on the workers.
func (s *simulation) sessions() {
	n := s.c.Size()
	s.peers = s.peers[:0]
	for i := range n {
		j := s.rng.IntN(n - 1)
		if j >= i {
			j++
		}
		s.peers = append(s.peers, s.c.Name(j))
	}
	s.each(func(i int, out []transport.Envelope) []transport.Envelope {
		if m := s.c.members[i]; !m.down && !s.over.Load() {
			got := m.r.StartSession(s.peers[i])
			s.count(got)
			out = append(out, got...)
		}
		return out
	})
}

// each runs f for every node, on cfg.Workers goroutines, and then puts
// in flight, in node order, what f returned for each (f appends it to the
// slice it is given).
func (s *simulation) each(f func(i int, out []transport.Envelope) []transport.Envelope) {
	const chunk = 8 // nodes a worker takes at a time
	var next atomic.Int64
	work := func() {
		for {
			lo := int(next.Add(chunk)) - chunk
			if lo >= len(s.out) {
				return
			}
			for i := lo; i < min(lo+chunk, len(s.out)); i++ {
				s.out[i] = f(i, s.out[i][:0])
			}
		}
	}
	// A replica's panic on a worker's goroutine ended the process, past
	// any recover of the caller's (found by review:
	// TestSimulateWorkersPanicReachesTheCaller): every goroutine's is
	// recovered, and the first panics again on the caller's, once all
	// have stopped.
	var panicked sync.Once
	var first any
	guarded := func() {
		defer func() {
			if p := recover(); p != nil {
				panicked.Do(func() { first = p })
			}
		}()
		work()
	}
	// No more goroutines than chunks of nodes to take: the others found
	// no work, and a huge Workers started that many each half round.
	if extra := min(s.cfg.Workers, (len(s.out)+chunk-1)/chunk) - 1; extra <= 0 {
		work() // the caller's goroutine alone: a panic keeps its stack
	} else {
		var wg sync.WaitGroup
		for range extra {
			wg.Go(guarded)
		}
		guarded()
		wg.Wait()
		if first != nil {
			panic(first)
		}
	}
	for i, envs := range s.out {
		s.c.send(i, envs)
		clear(envs)
	}
}

// converged reports whether every node holds what node 0 holds.
func (s *simulation) converged() bool {
	if d, ok := s.c.Replica(0).(Digester); ok {
		root := d.Digest()
		for i := 1; i < s.c.Size(); i++ {
			if d, ok := s.c.Replica(i).(Digester); !ok || d.Digest() != root {
				return false
			}
		}
		return true
	}
	first := Versions(s.c.Replica(0))
	for i := 1; i < s.c.Size(); i++ {
		vs := Versions(s.c.Replica(i))
		if len(vs) != len(first) {
			return false
		}
		for j := range vs {
			if vs[j] != first[j] {
				return false
			}
		}
	}
	return true
}

// digestsTold checks, once the digests say the nodes agree, that every
// node holds the versions node 0 holds: a Digester's word was taken alone,
// and a replica whose Digest said equal of different records (a constant,
// a hash of the keys alone) was measured as converged, its nodes holding
// what they held (found by review: TestSimulateCatchesADigestThatLies).
// Once a phase, against three nodes at most (the second, the middle one
// and the last): every node's versions, copied and sorted, took the
// thousand-member run from about 25 s to 40.
func (s *simulation) digestsTold() error {
	if _, ok := s.c.Replica(0).(Digester); !ok {
		return nil // converged compared the versions themselves
	}
	first := Versions(s.c.Replica(0))
	n := s.c.Size()
	for _, i := range slices.Compact([]int{1, n / 2, n - 1}) {
		if i < 1 {
			continue
		}
		if vs := Versions(s.c.Replica(i)); !slices.Equal(vs, first) {
			return fmt.Errorf("proptest: simulate: every node's Digest is %d, but %s holds %d versions and %s %d, not the same: a Digest must differ when the records do (Digester)",
				s.c.Replica(0).(Digester).Digest(), s.c.Name(0), len(first), s.c.Name(i), len(vs))
		}
	}
	return nil
}

// sent returns the frames and bytes every node has sent so far, in total
// and for the busiest node.
func (s *simulation) sent() (frames, bytes, busiest uint64) {
	for i := range s.c.Size() {
		f, b := s.c.Net.SentBy(s.c.Name(i))
		frames += f
		bytes += b
		busiest = max(busiest, b)
	}
	return frames, bytes, busiest
}

// settle runs rounds until every node agrees, up to a limit.
func (s *simulation) settle(from int) (int, error) {
	for round := from; ; round++ {
		if s.converged() {
			if err := s.digestsTold(); err != nil {
				return round, err
			}
			return round, s.holdsEveryWrite()
		}
		if round-from >= s.cfg.MaxRounds {
			// A hint, not a diagnosis: heavy Loss alone (sessions whose
			// steps are lost) or a replica that does not converge give the
			// same error.
			hint := "a replica whose timers start no anti-entropy needs SessionEvery; heavy Loss slows every session"
			if s.cfg.SessionEvery > 0 {
				hint = "SessionEvery may be shorter than a session takes; heavy Loss slows every session"
			}
			return round, fmt.Errorf("proptest: simulate: not agreed within %d rounds (SimConfig.MaxRounds; %s)", round-from, hint)
		}
		if err := s.step(); err != nil {
			return round, err
		}
	}
}

// written is a key's last write: its version, and its number (simValue).
type written struct {
	v crdt.Version
	n int
}

// simValue is the value of write n: 100 bytes, the first eight its number
// (every value was 100 zero bytes, and a replica that cut values short,
// or swapped them, agreed on the right versions and passed: found by
// review).
func simValue(n int) []byte {
	value := make([]byte, 100)
	binary.BigEndian.PutUint64(value, uint64(n)+1)
	return value
}

// write makes one write, and returns its key and value bytes. It fails
// once the frames in flight pass a bound, as a round's deliveries do: the
// writes' frames were counted only after the round, every one of
// PerRound writes' in flight by then (found by review:
// TestSimulateBoundsTheWritesBytes).
func (s *simulation) write() (int, error) {
	node := s.rng.IntN(s.c.Size())
	key := fmt.Sprintf("key-%09d", s.rng.IntN(s.cfg.Keys))
	n := s.writes
	s.writes++
	value := simValue(n)
	rec := s.c.Set(node, key, value, 0)
	if s.newest == nil {
		s.newest = map[string]written{}
	}
	if w, ok := s.newest[key]; !ok || rec.Version().Compare(w.v) > 0 {
		s.newest[key] = written{rec.Version(), n}
	}
	if limit := s.limit(); s.c.Net.Len() > limit {
		return 0, fmt.Errorf("proptest: simulate: %w: more than %d frames in flight at write %d", ErrLivelock, limit, n+1)
	}
	if b := s.c.Net.Bytes(); b > uint64(s.cfg.MaxBytesInFlight) {
		return 0, fmt.Errorf("proptest: simulate: %w: %d B in flight at write %d, more than %d (SimConfig.MaxBytesInFlight)", ErrLivelock, b, n+1, s.cfg.MaxBytesInFlight)
	}
	return len(key) + len(value), nil
}

// holdsEveryWrite checks that the state the nodes agree on (node 0's)
// holds the last write of every key written: a replica that lost writes
// on every node alike (a key cut short, a value collected) agreed, and
// its run was measured as converged (found by review).
func (s *simulation) holdsEveryWrite() error {
	held := map[string]crdt.Record{}
	for _, rec := range s.c.Replica(0).Records() {
		if h, ok := held[rec.Key]; !ok || rec.Version().Compare(h.Version()) > 0 {
			held[rec.Key] = rec
		}
	}
	for _, key := range slices.Sorted(maps.Keys(s.newest)) {
		want := s.newest[key]
		rec, ok := held[key]
		var got crdt.Version
		if ok {
			got = rec.Version()
		}
		if got != want.v {
			return fmt.Errorf("proptest: simulate: the nodes agree, but hold %+v of key %q, not its last write %+v", got, key, want.v)
		}
		// An evicted record's value is dropped on purpose: its version
		// alone is held.
		if !rec.Evicted && !bytes.Equal(rec.Value, simValue(want.n)) {
			return fmt.Errorf("proptest: simulate: the nodes agree, but hold the value %x of key %q, not its last write's %x", rec.Value, key, simValue(want.n))
		}
	}
	return nil
}

// replicate issues the writes at the given rate and runs until every node
// holds all of them.
func (s *simulation) replicate() (SimResult, error) {
	var res SimResult
	var payload int
	round := 0
	for w := 0; w < s.cfg.Writes; round++ {
		for i := 0; i < s.cfg.PerRound && w < s.cfg.Writes; i, w = i+1, w+1 {
			n, err := s.write()
			if err != nil {
				return res, err
			}
			payload += n
		}
		if err := s.step(); err != nil {
			return res, err
		}
	}
	var err error
	if res.WriteRounds, err = s.settle(round); err != nil {
		return res, err
	}
	res.DrainRounds = res.WriteRounds - round
	res.Frames, res.Bytes, res.Busiest = s.sent()
	res.Payload = float64(payload) / float64(s.cfg.Writes)
	res.Writes = s.cfg.Writes
	return res, nil
}

// partition splits the cluster in two halves, writes on both sides, heals
// and measures what anti-entropy sends until the cluster agrees again.
func (s *simulation) partition(res SimResult) (SimResult, error) {
	var left, right []string
	for i := range s.c.Size() {
		if i%2 == 0 {
			left = append(left, s.c.Name(i))
		} else {
			right = append(right, s.c.Name(i))
		}
	}
	s.c.Net.Partition(left, right)
	res.PartitionWrites = max(1, int(s.cfg.Split*float64(s.cfg.Keys)))
	for w := 0; w < 2*res.PartitionWrites; w++ {
		if _, err := s.write(); err != nil {
			return res, err
		}
		if err := s.step(); err != nil {
			return res, err
		}
	}
	for range 10 {
		if err := s.step(); err != nil {
			return res, err
		}
	}
	_, before, _ := s.sent()
	s.c.Net.Heal()
	rounds, err := s.settle(0)
	if err != nil {
		return res, fmt.Errorf("after the partition: %w", err)
	}
	_, after, _ := s.sent()
	res.RepairRounds, res.RepairBytes = rounds, after-before
	return res, nil
}
