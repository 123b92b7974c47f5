package proptest

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// TestSimulateTypeRefusesTooManyNodes: a TypeSimConfig.Nodes past
// maxTypeSimNodes is refused with an error naming Nodes, before any object
// is made; the bound itself is taken. Nodes was unbounded, and a run's
// memory grows with its square (found by review). Each case returned
// quickly with the wrong error before: the one of New, which fails here.
func TestSimulateTypeRefusesTooManyNodes(t *testing.T) {
	const bound = 1000 // maxTypeSimNodes
	made := 0
	spec := gsetSpec(func(*gset) {})
	spec.New = func(string, int, func() int64) (Object, error) {
		made++
		return nil, errors.New("no object here")
	}
	for _, n := range []int{bound + 1, 1 << 20, math.MaxInt} {
		made = 0
		_, err := SimulateType(spec, TypeSimConfig{Nodes: n, Ops: 1, PerRound: 1})
		if err == nil || !strings.Contains(err.Error(), "Nodes") || !strings.Contains(err.Error(), "more than 1000") {
			t.Errorf("Nodes %d: %v, want an error naming Nodes and its bound", n, err)
		}
		if made > 0 {
			t.Errorf("Nodes %d: %d objects made before it was refused", n, made)
		}
	}
	made = 0
	if _, err := SimulateType(spec, TypeSimConfig{Nodes: bound, Ops: 1, PerRound: 1}); err == nil || !strings.Contains(err.Error(), "no object here") || made != 1 {
		t.Errorf("Nodes %d, the bound: %v (%d objects made), want New's error", bound, err, made)
	}
	if _, err := SimulateType(spec, TypeSimConfig{Nodes: 1, Ops: 1, PerRound: 1}); err == nil || !strings.Contains(err.Error(), "2 <= Nodes <= 1,000") {
		t.Errorf("Nodes 1: %v, want an error naming Nodes and its bounds", err)
	}
}
