package proptest

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"time"

	"github.com/bcache-go/bcache/transport"
	"github.com/bcache-go/bcache/transport/sim"
	"pgregory.net/rapid"
)

// TypeSimConfig shapes one run of SimulateType.
type TypeSimConfig struct {
	// Nodes is the cluster size. Ops is the number of operations, PerRound
	// of them each round, each on a random node and a random key of the
	// Spec's Keys, its kind drawn by the Spec's Weights (an operation
	// not weighed weighs 4: uniformly by weight, where CheckType's draws
	// lean to the heavier and earlier actions), its argument by the
	// kind's Arg. Nodes is 2 to 1,000 (maxTypeSimNodes): memory grows
	// with its square (every node's view of the others; the frames a
	// round may put in flight, an operation's and every node's Tick to
	// every node, and the bytes they may hold); past it SimulateType
	// returns an error naming Nodes.
	Nodes, Ops, PerRound int
	// SyncEvery, if positive, has every node start an exchange
	// (Object.Sync) with a random other node every SyncEvery rounds:
	// anti-entropy, for objects whose Tick does none. Without it, an
	// object that sends each operation once and never again does not
	// converge under Loss.
	SyncEvery int
	// PartitionOps, if positive, adds a phase after the first has
	// converged: the cluster is split in two halves, PartitionOps
	// operations are made on nodes of either side, one a round, and the
	// network heals.
	PartitionOps int
	// Seed drives every random choice: the same Spec and TypeSimConfig
	// give the same result.
	Seed uint64
	// Loss and Dup are the fractions of frames lost and duplicated (the
	// Spec's Loss and Duplication are CheckType's).
	Loss, Dup float64
	// MaxRounds bounds the rounds a phase may take to agree after its
	// last operation (0: 10,000); past it SimulateType fails.
	MaxRounds int
	// MaxBytesInFlight bounds the payload bytes of the frames in flight
	// after a round: past it the run fails with ErrLivelock, an error
	// naming this field (0: 32 MiB and 1 MiB a node more). Raise it for
	// an object that is meant to send that much.
	MaxBytesInFlight int64
}

// TypeSimResult is what one run of SimulateType measured.
type TypeSimResult struct {
	// OpRounds are the rounds from the first operation until every node
	// holds an equal State; DrainRounds those from the last operation.
	OpRounds, DrainRounds int
	// Frames and Bytes were sent until then, Busiest bytes by the
	// busiest node.
	Frames, Bytes, Busiest uint64
	// RepairRounds and RepairBytes are the rounds and bytes from the
	// heal of the partition phase until every node agrees again.
	RepairRounds int
	RepairBytes  uint64
}

// SimulateType runs a cluster of a Spec's objects at scale,
// deterministically: the scale simulator (Simulate) for a data type of
// a researcher's. A round is one network step: every frame in flight is
// delivered (or lost or duplicated, at the given rates) in a seeded
// random order, then time moves on a millisecond and every node's Tick
// runs. Nodes agree when their States are equal (reflect.DeepEqual).
// The Spec's Model learns every operation and its result, as under
// CheckType, and checks the state the nodes agree on after each phase;
// the Invariant, if any, runs over the states after every round. An
// operation's argument is drawn by its kind's Arg outside any test
// (rapid's Generator.Example, from a seed of the run's). It is a measure
// of scale, not a checker: its clock seldom gives two writes one stamp,
// and a register that breaks ties wrongly passed it, which CheckType
// catches. A type whose frames multiply fails with ErrLivelock once more
// are in flight than max(200,000, 1,000 x Nodes) + (PerRound + Nodes) x
// Nodes: a round's operations and ticks may each send a frame to every
// node; and once the frames in flight hold more than
// TypeSimConfig.MaxBytesInFlight, by default 32 MiB and a MiB a node (a
// type whose frames grow at every hop; CheckType and ExploreType fail
// past 32 MiB).
func SimulateType(spec Spec, cfg TypeSimConfig) (TypeSimResult, error) {
	if err := spec.fill(); err != nil {
		return TypeSimResult{}, err
	}
	if cfg.Nodes > maxTypeSimNodes {
		return TypeSimResult{}, fmt.Errorf("proptest: simulate type: Nodes %d, more than %d: memory grows with the square of Nodes", cfg.Nodes, maxTypeSimNodes)
	}
	if cfg.Nodes < 2 || cfg.Ops < 1 || cfg.PerRound < 1 || cfg.SyncEvery < 0 || cfg.PartitionOps < 0 ||
		!(cfg.Loss >= 0 && cfg.Loss < 1) || !(cfg.Dup >= 0 && cfg.Dup <= 1) || cfg.MaxRounds < 0 || cfg.MaxBytesInFlight < 0 { // (NaN refused)
		return TypeSimResult{}, fmt.Errorf("proptest: simulate type: need 2 <= Nodes <= 1,000, Ops and PerRound >= 1, SyncEvery, PartitionOps, MaxRounds, MaxBytesInFlight >= 0, 0 <= Loss < 1, 0 <= Dup <= 1")
	}
	s := &typeSim{spec: spec, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.Nodes))), net: sim.New(),
		model: spec.Model(), now: start, byName: map[string]int{}}
	if s.model == nil {
		return TypeSimResult{}, errNilModel
	}
	if spec.Invariant != nil {
		s.invariant = spec.Invariant()
	}
	if s.cfg.MaxRounds == 0 {
		s.cfg.MaxRounds = 10_000
	}
	for _, k := range spec.Ops {
		for range spec.weight(k.Name) {
			s.kinds = append(s.kinds, k)
		}
	}
	if len(s.kinds) == 0 {
		return TypeSimResult{}, fmt.Errorf("proptest: simulate type: every operation weighs 0")
	}
	for i := range cfg.Nodes {
		name := fmt.Sprintf("n%d", i)
		obj, err := spec.newObject(name, 0, func() int64 { return s.now })
		if err != nil {
			return TypeSimResult{}, fmt.Errorf("proptest: simulate type: %w", err)
		}
		s.names, s.objs, s.byName[name] = append(s.names, name), append(s.objs, obj), i
	}
	s.views()
	var res TypeSimResult
	var err error
	if res.OpRounds, res.DrainRounds, err = s.phase(cfg.Ops, s.allNodes()); err != nil {
		return res, err
	}
	res.Frames, res.Bytes, res.Busiest = s.sent()
	if cfg.PartitionOps == 0 {
		return res, nil
	}
	var left, right []string
	for i, name := range s.names {
		if i%2 == 0 {
			left = append(left, name)
		} else {
			right = append(right, name)
		}
	}
	s.net.Partition(left, right)
	s.views()
	for range cfg.PartitionOps {
		if err := s.op(s.rng.IntN(len(s.objs))); err != nil { // either side
			return res, err
		}
		if err := s.step(); err != nil {
			return res, err
		}
	}
	_, before, _ := s.sent()
	s.net.Heal()
	s.views()
	if res.RepairRounds, _, err = s.phase(0, nil); err != nil {
		return res, fmt.Errorf("after the partition: %w", err)
	}
	_, after, _ := s.sent()
	res.RepairBytes = after - before
	return res, nil
}

// maxTypeSimNodes bounds TypeSimConfig.Nodes. It was unbounded, and a
// run's memory grows with the square of its nodes: each node is given a
// view of all (n² names), and the bounds on what may be in flight, which
// a correct type reaches (an operation's frame and every node's Tick to
// every node), are max(200,000, 1,000 n) + (PerRound + n) n frames and
// 32 MiB + n MiB (at 10 operations a round, 1,000 nodes: 2 million
// frames, 1 GiB; 10,000: 110 million, 10 GiB), so a Nodes that was too
// large ran the machine out of memory rather than failing (found by
// review: TestSimulateTypeRefusesTooManyNodes). Ten times the members of
// a run of CheckType (maxMembers), and as many as the README runs
// Simulate with.
const maxTypeSimNodes = 1000

// maxInFlight bounds the payload bytes in flight in SimulateType:
// TypeSimConfig.MaxBytesInFlight, or maxTypeInFlight and a mebibyte a
// node more.
func (s *typeSim) maxInFlight() uint64 {
	if s.cfg.MaxBytesInFlight > 0 {
		return uint64(s.cfg.MaxBytesInFlight)
	}
	return maxTypeInFlight + uint64(len(s.objs))<<20
}

// typeSim is one run of SimulateType.
type typeSim struct {
	spec      Spec
	cfg       TypeSimConfig
	rng       *rand.Rand
	net       *sim.Network
	model     Model
	invariant func(map[string]any) error
	now       int64
	names     []string
	objs      []Object
	byName    map[string]int
	kinds     []OpKind // each kind as often as its weight
	round     int
	copies    map[uint64]bool // the ids of the copies the round put in flight
}

func (s *typeSim) allNodes() []int {
	all := make([]int, len(s.objs))
	for i := range all {
		all[i] = i
	}
	return all
}

// phase performs ops operations, PerRound a round, and runs rounds until
// the nodes agree; it returns the rounds from its start and from its last
// operation.
func (s *typeSim) phase(ops int, nodes []int) (total, drain int, err error) {
	round := 0
	for done := 0; done < ops; round++ {
		for i := 0; i < s.cfg.PerRound && done < ops; i, done = i+1, done+1 {
			if err := s.op(nodes[s.rng.IntN(len(nodes))]); err != nil {
				return round, 0, err
			}
		}
		if err := s.step(); err != nil {
			return round, 0, err
		}
	}
	for drain = 0; !s.agreed(); drain++ {
		if drain >= s.cfg.MaxRounds {
			return round + drain, drain, fmt.Errorf("proptest: simulate type: not agreed %d rounds after the last operation: %s", drain, s.disagreement())
		}
		if err := s.step(); err != nil {
			return round + drain, drain, err
		}
	}
	if err := s.model.Check(s.objs[0].State()); err != nil {
		return round + drain, drain, fmt.Errorf("proptest: simulate type: the state the nodes agree on: %w", err)
	}
	return round + drain, drain, nil
}

// drawArg draws an argument of kind from seed. Example panics when the
// generator fails: that alone is recovered here (a panic of the data
// type's Do, recovered with it, was blamed on the argument: found by
// review).
func drawArg(kind OpKind, seed int) (arg any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("proptest: simulate type: draw an argument of %s: %v", kind.Name, r)
		}
	}()
	return rapid.Custom(func(t *rapid.T) any { return kind.Arg(t) }).Example(seed), nil
}

// op performs one operation on node i and tells the model.
func (s *typeSim) op(i int) (err error) {
	kind := s.kinds[s.rng.IntN(len(s.kinds))]
	op := Op{Name: kind.Name, Key: s.spec.Keys[s.rng.IntN(len(s.spec.Keys))]}
	if kind.Arg != nil {
		if op.Arg, err = drawArg(kind, int(s.rng.Uint64()>>1)); err != nil {
			return err
		}
	}
	result, out, err := perform(s.model, s.objs[i], s.names[i], 0, op)
	if err != nil {
		return fmt.Errorf("proptest: simulate type: %s did %v and got %v: %w", s.names[i], op, result, err)
	}
	return s.send(i, out)
}

// send sends node i's frames, failing on one to a name no node has (it
// was checked as delivered, and a frame lost or cut by a partition passed:
// found by review).
func (s *typeSim) send(i int, out []transport.Envelope) error {
	for _, e := range out {
		if _, ok := s.byName[e.To]; !ok {
			return fmt.Errorf("proptest: simulate type: %w", strayFrame{s.names[i], e.To})
		}
	}
	s.net.Send(s.names[i], out)
	// A type whose frames multiply (each one received sent on to every
	// member) grew the network past the machine's memory in a few rounds
	// instead of failing (found by review).
	// The bound grows with what a round may send of a correct type: an
	// operation's frame to every node, and every node's Tick to every
	// node (the shipped counter at 5,000 updates a round on 50 nodes put
	// 245,000 frames in flight, bounded, and failed as a livelock: found
	// by review).
	n := len(s.objs)
	// PerRound is clamped before n is added: PerRound+n wrapped around
	// at math.MaxInt, and the bound came out negative (found by review:
	// TestAHugePerRoundIsNoLivelock).
	if limit := max(budget, 1000*n) + (min(s.cfg.PerRound, math.MaxInt/(2*n)-n)+n)*n; s.net.Len() > limit {
		return fmt.Errorf("proptest: simulate type: %w: more than %d frames in flight in round %d", ErrLivelock, limit, s.round+1)
	}
	// Frames that grow with every hop, not in number, ran the machine
	// out of memory (found by review).
	if b, limit := s.net.Bytes(), s.maxInFlight(); b > limit {
		return fmt.Errorf("proptest: simulate type: %w: %d B in flight in round %d, more than %d (TypeSimConfig.MaxBytesInFlight)", ErrLivelock, b, s.round+1, limit)
	}
	return nil
}

// step is one round: deliver everything in flight in a random order, with
// loss and duplication, then move time on a millisecond and run the
// nodes' timers (and, every SyncEvery rounds, their exchanges).
func (s *typeSim) step() error {
	pkts := s.net.TakeAll()
	// The copies made last round: all in flight then, all taken now.
	copies := s.copies
	s.copies = make(map[uint64]bool)
	s.rng.Shuffle(len(pkts), func(i, j int) { pkts[i], pkts[j] = pkts[j], pkts[i] })
	for _, p := range pkts {
		if s.rng.Float64() < s.cfg.Loss {
			continue
		}
		if s.rng.Float64() < s.cfg.Dup && !copies[p.ID] {
			// The copy goes back in flight, to arrive in a later round
			// among other frames, not right behind its original (found
			// by review); it is not copied again (Dup is the share of
			// frames duplicated).
			s.copies[s.net.Requeue(p, true)] = true
		}
		to := s.byName[p.To] // a node's: send checks
		// Its own bytes, as under CheckType.
		if err := s.send(to, s.objs[to].Receive(p.Sender(), bytes.Clone(p.Payload))); err != nil {
			return err
		}
	}
	s.now += int64(time.Millisecond)
	s.round++
	for i, obj := range s.objs {
		if err := s.send(i, obj.Tick()); err != nil {
			return err
		}
		if s.cfg.SyncEvery > 0 && s.round%s.cfg.SyncEvery == 0 {
			if j := s.rng.IntN(len(s.objs) - 1); s.net.Connected(s.names[i], s.names[(i+1+j)%len(s.objs)]) {
				if err := s.send(i, obj.Sync(s.names[(i+1+j)%len(s.objs)])); err != nil {
					return err
				}
			}
		}
	}
	if s.invariant != nil {
		states := make(map[string]any, len(s.objs))
		for i, obj := range s.objs {
			states[s.names[i]] = obj.State()
		}
		if err := s.invariant(states); err != nil {
			return fmt.Errorf("proptest: simulate type: invariant after round %d: %w", s.round, err)
		}
	}
	return nil
}

// views gives every node the nodes it can reach.
func (s *typeSim) views() {
	for i, name := range s.names {
		var view []string
		for _, other := range s.names {
			if s.net.Connected(name, other) {
				view = append(view, other)
			}
		}
		s.objs[i].SetMembers(view)
	}
}

// agreed reports whether every node's State equals node 0's.
func (s *typeSim) agreed() bool {
	first := s.objs[0].State()
	for _, obj := range s.objs[1:] {
		if !reflect.DeepEqual(obj.State(), first) {
			return false
		}
	}
	return true
}

// disagreement names a node whose State differs from node 0's, and both
// States, as CheckType's "not converged" does (the error said only that
// the nodes did not agree: found by review).
func (s *typeSim) disagreement() string {
	first := s.objs[0].State()
	for i, obj := range s.objs[1:] {
		if st := obj.State(); !reflect.DeepEqual(st, first) {
			return fmt.Sprintf("%s holds %v, %s holds %v", s.names[i+1], shown(st), s.names[0], shown(first))
		}
	}
	return "every node holds the same" // not reached: agreed() was false
}

// sent returns the frames and bytes every node has sent so far, in total
// and for the busiest node.
func (s *typeSim) sent() (frames, bytes, busiest uint64) {
	for _, name := range s.names {
		f, b := s.net.SentBy(name)
		frames += f
		bytes += b
		busiest = max(busiest, b)
	}
	return frames, bytes, busiest
}
