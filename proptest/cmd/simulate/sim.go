package main

import (
	"fmt"

	"github.com/bcache-go/bcache/proptest"
)

type params struct {
	nodes, keys, writes, perRound, fanout, workers int
	seed                                           uint64
	loss, dup, split                               float64
	// SimConfig's bounds and session timer: 0 takes its default.
	maxRounds, sessionEvery int
	maxBytesInFlight        int64
}

const header = "nodes  rounds  after last write  frames/node/round  bytes/node/round  bytes/write  x(N-1)*payload  busiest bytes/write  repair rounds  repair bytes"

// row formats one simulation's result for a cluster of n.
func row(r proptest.SimResult, n int) string {
	perNodeRound := func(v uint64) float64 { return float64(v) / float64(n) / float64(max(r.WriteRounds, 1)) }
	total := float64(r.Bytes) / float64(r.Writes)
	return fmt.Sprintf("%5d  %6d  %16d  %17.2f  %16.1f  %11.0f  %14.2f  %19.1f  %13d  %12d",
		n, r.WriteRounds, r.DrainRounds, perNodeRound(r.Frames), perNodeRound(r.Bytes), total,
		total/(float64(n-1)*r.Payload), float64(r.Busiest)/float64(r.Writes),
		r.RepairRounds, r.RepairBytes)
}

// simulate runs bcache's replica (replicaConfig) with p.
func simulate(p params) (proptest.SimResult, error) {
	return proptest.Simulate(proptest.SimConfig{
		Factory: proptest.MapFactory(replicaConfig(p.fanout)),
		Nodes:   p.nodes, Keys: p.keys, Writes: p.writes, PerRound: p.perRound,
		Seed: p.seed, Loss: p.loss, Dup: p.dup, Split: p.split, Workers: p.workers,
		MaxRounds: p.maxRounds, SessionEvery: p.sessionEvery, MaxBytesInFlight: p.maxBytesInFlight,
	})
}
