package proptest

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
)

// TestSimulateRefusesTooManyNodes: a SimConfig.Nodes past maxSimNodes is
// refused with an error naming Nodes, before any replica is built; the
// bound itself is taken. Nodes was unbounded: NewCluster built members
// one by one, and the cluster's bookkeeping grows with the square of
// them (every member's view and who saw whom), so Nodes 1<<40 ran the
// machine out of memory rather than failing (found by review). The
// first case returned the factory's error before, not one naming Nodes.
func TestSimulateRefusesTooManyNodes(t *testing.T) {
	const bound = 5000 // maxSimNodes
	made := 0
	f := func(string, crdt.NodeID, func() int64) (Replica, error) {
		made++
		return nil, errors.New("no replica here")
	}
	for _, n := range []int{bound + 1, 1 << 30, math.MaxInt} {
		made = 0
		_, err := Simulate(SimConfig{Factory: f, Nodes: n, Keys: 1, Writes: 1, PerRound: 1})
		if err == nil || !strings.Contains(err.Error(), "Nodes") || made > 0 {
			t.Errorf("Nodes %d: %v (%d replicas built), want an error naming Nodes before any replica", n, err, made)
		}
	}
	made = 0
	if _, err := Simulate(SimConfig{Factory: f, Nodes: bound, Keys: 1, Writes: 1, PerRound: 1}); err == nil || !strings.Contains(err.Error(), "no replica here") || made != 1 {
		t.Errorf("Nodes %d, the bound: %v (%d replicas built), want the factory's error", bound, err, made)
	}
}

// TestNewClusterRefusesTooManyMembers: NewCluster, exported, is bounded
// as Simulate is; NewCluster(1<<40, ...) made members until the memory ran
// out (found by review).
func TestNewClusterRefusesTooManyMembers(t *testing.T) {
	f := func(string, crdt.NodeID, func() int64) (Replica, error) { return nil, errors.New("no replica here") }
	for _, n := range []int{5001, 1 << 30, math.MaxInt} {
		if _, err := NewCluster(n, f, 0); err == nil || !strings.Contains(err.Error(), "members") {
			t.Errorf("NewCluster(%d): %v, want an error naming the members", n, err)
		}
	}
}

// TestSimulateFrameBoundGrowsWithPerRound: the bound on the frames a
// round may send (limit: max(200,000, 1,000 x Nodes) + 2 x (PerRound + 2
// x Nodes) x Nodes, as Simulate's doc says) never shrinks as PerRound
// grows. PerRound + 2 x Nodes wrapped around past math.MaxInt, and the
// bound fell to its floor (200,030 at PerRound math.MaxInt on 3 nodes,
// against billions at 1<<40): a replica that sends a frame a write to
// every peer failed with ErrLivelock at the rate math.MaxInt and ran at
// 1<<40 (found by review; SimulateType's had the same, fixed before).
func TestSimulateFrameBoundGrowsWithPerRound(t *testing.T) {
	for _, nodes := range []int{2, 3, 100} {
		c, err := NewCluster(nodes, MapFactory(DefaultMapConfig()), 0)
		if err != nil {
			t.Fatal(err)
		}
		prev := 0
		for _, per := range []int{1, 1 << 20, 1 << 30, math.MaxInt/2 - 1, math.MaxInt - 2*nodes, math.MaxInt - 5, math.MaxInt} {
			s := &simulation{cfg: SimConfig{Nodes: nodes, PerRound: per}, c: c}
			got := s.limit()
			if got < prev {
				t.Errorf("%d nodes, PerRound %d: a bound of %d frames, below %d at a lower PerRound", nodes, per, got, prev)
			}
			prev = got
		}
	}
}
