package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/bcache-go/bcache/proptest"
)

type params struct {
	nodes, keys, writes, perRound, fanout int
	seed                                  uint64
	loss, dup, split                      float64
}

// result is what one simulation measured.
type result struct {
	writeRounds     int     // rounds from the first write until every node holds every write
	drainRounds     int     // rounds from the last write until every node holds every write
	frames, bytes   uint64  // sent while replicating the writes
	busiest         uint64  // bytes sent by the busiest node while replicating
	payload         float64 // mean key+value bytes per write
	repairRounds    int     // rounds from the heal until converged again
	repairBytes     uint64  // bytes sent from the heal until converged again
	partitionWrites int
	writes          int
}

const header = "nodes  rounds  after last write  frames/node/round  bytes/node/round  bytes/write  x(N-1)*payload  busiest bytes/write  repair rounds  repair bytes"

func (r result) row(n int) string {
	perNodeRound := func(v uint64) float64 { return float64(v) / float64(n) / float64(max(r.writeRounds, 1)) }
	total := float64(r.bytes) / float64(r.writes)
	return fmt.Sprintf("%5d  %6d  %16d  %17.2f  %16.1f  %11.0f  %14.2f  %19.1f  %13d  %12d",
		n, r.writeRounds, r.drainRounds, perNodeRound(r.frames), perNodeRound(r.bytes), total,
		total/(float64(n-1)*r.payload), float64(r.busiest)/float64(r.writes),
		r.repairRounds, r.repairBytes)
}

type sim struct {
	p   params
	rng *rand.Rand
	c   *proptest.Cluster
}

func simulate(p params) (result, error) {
	c, err := proptest.NewCluster(p.nodes, proptest.MapFactory(replicaConfig(p.fanout)), 1_750_000_000_000_000_000)
	if err != nil {
		return result{}, err
	}
	s := &sim{p: p, rng: rand.New(rand.NewPCG(p.seed, uint64(p.nodes))), c: c}
	var res result
	if res, err = s.replicate(); err != nil {
		return res, err
	}
	return s.partition(res)
}

// step is one round: deliver everything in flight in a random order with
// loss and duplication, then advance a millisecond and run the timers.
func (s *sim) step() {
	pkts := s.c.Net.TakeAll()
	s.rng.Shuffle(len(pkts), func(i, j int) { pkts[i], pkts[j] = pkts[j], pkts[i] })
	for _, p := range pkts {
		if s.rng.Float64() < s.p.loss {
			continue
		}
		s.c.DeliverPacket(p)
		if s.rng.Float64() < s.p.dup {
			s.c.DeliverPacket(p)
		}
	}
	s.c.Advance(time.Millisecond)
	s.c.Tick()
}

// converged reports whether every node's digest equals node 0's.
func (s *sim) converged() bool {
	root := s.root(0)
	for i := 1; i < s.c.Size(); i++ {
		if s.root(i) != root {
			return false
		}
	}
	return true
}

func (s *sim) root(i int) uint64 {
	return s.c.Replica(i).(*proptest.MapReplica).Map().Tree().Root().Hash()
}

// sent returns the frames and bytes every node has sent so far, in total
// and for the busiest node.
func (s *sim) sent() (frames, bytes, busiest uint64) {
	for i := range s.c.Size() {
		st := s.c.Replica(i).(*proptest.MapReplica).Node().Stats()
		frames += st.FramesSent
		bytes += st.BytesSent
		busiest = max(busiest, st.BytesSent)
	}
	return frames, bytes, busiest
}

// settle runs rounds until every node's digest is the same, up to a limit.
func (s *sim) settle(from int) (int, error) {
	for round := from; ; round++ {
		if s.converged() {
			return round, nil
		}
		if round > 100_000 {
			return round, fmt.Errorf("not converged after %d rounds", round)
		}
		s.step()
	}
}

func (s *sim) write() int {
	node := s.rng.IntN(s.c.Size())
	key := fmt.Sprintf("key-%09d", s.rng.IntN(s.p.keys))
	value := make([]byte, 100)
	s.c.Set(node, key, value, 0)
	return len(key) + len(value)
}

// replicate issues the writes at the given rate and runs until every node
// holds all of them.
func (s *sim) replicate() (result, error) {
	var res result
	var payload int
	round := 0
	for w := 0; w < s.p.writes; round++ {
		for i := 0; i < s.p.perRound && w < s.p.writes; i, w = i+1, w+1 {
			payload += s.write()
		}
		s.step()
	}
	var err error
	if res.writeRounds, err = s.settle(round); err != nil {
		return res, err
	}
	res.drainRounds = res.writeRounds - round
	res.frames, res.bytes, res.busiest = s.sent()
	res.payload = float64(payload) / float64(s.p.writes)
	res.writes = s.p.writes
	return res, nil
}

// partition splits the cluster in two halves, writes on both sides, heals
// and measures what anti-entropy sends until the cluster agrees again.
func (s *sim) partition(res result) (result, error) {
	var left, right []string
	for i := range s.c.Size() {
		if i%2 == 0 {
			left = append(left, s.c.Name(i))
		} else {
			right = append(right, s.c.Name(i))
		}
	}
	s.c.Net.Partition(left, right)
	res.partitionWrites = max(1, int(s.p.split*float64(s.p.keys)))
	for w := 0; w < 2*res.partitionWrites; w++ {
		s.write()
		s.step()
	}
	for range 10 {
		s.step()
	}
	_, before, _ := s.sent()
	s.c.Net.Heal()
	rounds, err := s.settle(0)
	if err != nil {
		return res, fmt.Errorf("after the partition: %w", err)
	}
	_, after, _ := s.sent()
	res.repairRounds, res.repairBytes = rounds, after-before
	return res, nil
}
