package proptest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bcache-go/bcache/crdt"
	"github.com/bcache-go/bcache/transport"
)

// panickyReplica panics on every frame it receives.
type panickyReplica struct{ Replica }

func (panickyReplica) Receive(string, []byte) []transport.Envelope { panic("replica broke") }

// TestSimulateWorkersPanicReachesTheCaller: a replica that panics under
// Simulate panics in the caller's goroutine, whatever Workers is, so
// that a caller (a test, rapid) can recover it and report it. With
// Workers above 1, the panic of a node a worker goroutine took ended
// the process, every other test of the binary with it (found by
// review).
func TestSimulateWorkersPanicReachesTheCaller(t *testing.T) {
	base := MapFactory(DefaultMapConfig())
	f := func(name string, id crdt.NodeID, clock func() int64) (Replica, error) {
		r, err := base(name, id, clock)
		return panickyReplica{r}, err
	}
	for _, workers := range []int{1, 4} {
		got := func() (p any) {
			defer func() { p = recover() }()
			Simulate(SimConfig{Factory: f, Nodes: 64, Keys: 200, Writes: 200, PerRound: 200, Seed: 1, Workers: workers})
			return nil
		}()
		if got == nil || !strings.Contains(fmt.Sprint(got), "replica broke") {
			t.Errorf("Workers %d: recovered %v, want the replica's panic", workers, got)
		}
	}
}
